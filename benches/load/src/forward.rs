//! `mcp-load http-forward --upstream URL [--port N]`: the cheapest HTTP
//! proxy built on the same HTTP stack as Portcullis (hyper's HTTP/1 server
//! in, hyper-util's pooled client out, a current-thread tokio runtime), with
//! no parsing and no policy: each POST body is read whole and sent on, and
//! the answer's status, MCP headers and body come back. It is the HTTP
//! counterpart of `mcp-load relay`: what any separate-process hyper-to-hyper
//! hop costs on this machine, measured in the same run as the proxy.

use std::convert::Infallible;
use std::io::{self, Write};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The request and answer headers an MCP exchange needs carried across.
const CARRIED: [&str; 4] = [
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
];

type Upstream = Client<HttpConnector, Full<Bytes>>;

async fn forward(client: Upstream, upstream: Uri, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let fail = |status: StatusCode| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = status;
        r
    };
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return fail(StatusCode::BAD_REQUEST);
    };
    let mut out = Request::builder().method(parts.method).uri(upstream);
    for name in CARRIED {
        if let Some(v) = parts.headers.get(name) {
            out = out.header(name, v);
        }
    }
    let Ok(out) = out.body(Full::new(body)) else {
        return fail(StatusCode::BAD_REQUEST);
    };
    let Ok(answer) = client.request(out).await else {
        return fail(StatusCode::BAD_GATEWAY);
    };
    let (parts, body) = answer.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return fail(StatusCode::BAD_GATEWAY);
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = parts.status;
    for name in CARRIED {
        if let Some(v) = parts.headers.get(name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

/// Forwards every request on 127.0.0.1:`port` (0: any) to `upstream` until
/// killed; prints `listening on PORT`.
pub fn run(upstream: &str, port: u16) -> io::Result<()> {
    let upstream: Uri = upstream
        .parse()
        .map_err(|e| io::Error::other(format!("bad --upstream {upstream}: {e}")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on {}", listener.local_addr()?.port());
        io::stdout().flush()?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(http);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (client, upstream) = (client.clone(), upstream.clone());
                    async move { Ok::<_, Infallible>(forward(client, upstream, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
