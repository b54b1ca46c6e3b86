//! `portcullis ui`: a local web page to review a policy directory (servers,
//! their tools by risk, each tool's effect and the rules behind it), edit a
//! tool's effect (with the diff, `validate` and the policy's tests shown
//! before saving), and watch the decisions of running proxies.
//!
//! Security (docs/operations.md, "portcullis ui"): loopback only unless
//! `--allow-remote`; a random 128-bit token, printed in the URL on start, is
//! required on every request; state-changing requests must carry it in a
//! header (never only the URL), as JSON, from the page's own origin (Host
//! and Origin checked), so another site open in the same browser can
//! neither read nor change anything. The page, its script and style are
//! compiled into the binary: nothing is fetched from anywhere else.

#[cfg(feature = "dynamic")]
mod edit;
#[cfg(feature = "dynamic")]
mod model;

/// Without the `dynamic` feature this binary has no policy writer.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &crate::cli::UiArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it cannot edit policies\n  = help: use a development build (default features)"
    );
    2
}

#[cfg(feature = "dynamic")]
pub use server::run;

#[cfg(feature = "dynamic")]
mod server {
    use std::convert::Infallible;
    use std::net::{IpAddr, SocketAddr};
    use std::path::PathBuf;
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full, Limited};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Method, Request, Response, StatusCode};
    use portcullis_core::counters::UnixMillis;
    use serde_json::{Value, json};

    use super::model;
    use crate::cli::UiArgs;

    const PAGE: &str = include_str!("page/index.html");
    const SCRIPT: &str = include_str!("page/app.js");
    const STYLE: &str = include_str!("page/style.css");
    /// Largest request body (an edit is a few hundred bytes).
    const MAX_BODY: usize = 64 * 1024;

    struct Ui {
        token: String,
        /// `Host` values the page may be reached as (None: any, with --allow-remote).
        hosts: Option<Vec<String>>,
        dir: PathBuf,
        logs: Vec<PathBuf>,
    }

    /// Serves the page until interrupted; 0 on a clean stop, 1 or 2 on errors.
    pub fn run(args: &UiArgs) -> i32 {
        let fail = |msg: &str, help: &str| {
            eprintln!("error: {msg}");
            if !help.is_empty() {
                eprintln!("  = help: {help}");
            }
            2
        };
        let ip: IpAddr = match args.bind.trim_matches(['[', ']']).parse() {
            Ok(ip) => ip,
            Err(_) if args.bind == "localhost" => IpAddr::from([127, 0, 0, 1]),
            Err(_) => {
                return fail(
                    &format!("--bind {}: not an IP address", args.bind),
                    "e.g. --bind 127.0.0.1",
                );
            }
        };
        if !ip.is_loopback() {
            if !args.allow_remote {
                return fail(
                    &format!(
                        "--bind {ip} is not a loopback address: anyone who can reach it could try to edit your policies"
                    ),
                    "add --allow-remote to mean it, or tunnel the port (ssh -L) and keep the default 127.0.0.1",
                );
            }
            eprintln!(
                "warning: serving policies on {ip}, beyond this machine: anyone with the URL (its token) can change them; the page is plain HTTP"
            );
        }
        if !args.policy_dir.is_dir() {
            return fail(
                &format!(
                    "--policy-dir {}: no such directory",
                    args.policy_dir.display()
                ),
                "name the directory of your policies, e.g. --policy-dir policies/prod",
            );
        }
        let mut raw = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut raw) {
            return fail(&format!("no randomness for the access token: {e}"), "");
        }
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return fail(&format!("starting the runtime: {e}"), ""),
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(SocketAddr::new(ip, args.port)).await
            {
                Ok(l) => l,
                Err(e) => {
                    return fail(
                        &format!("listening on {ip}:{}: {e}", args.port),
                        "pick another --port, or 0 for any free one",
                    );
                }
            };
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
            let shown = match ip {
                IpAddr::V6(_) => format!("[{ip}]:{port}"),
                IpAddr::V4(_) => format!("{ip}:{port}"),
            };
            let hosts = if ip.is_loopback() {
                Some(vec![shown.clone(), format!("localhost:{port}")])
            } else {
                None
            };
            let ui = Arc::new(Ui {
                token,
                hosts,
                dir: args.policy_dir.clone(),
                logs: args.audit_logs.clone(),
            });
            println!("portcullis ui: http://{shown}/?token={}", ui.token);
            eprintln!(
                "serving {} (decision logs: {}); Ctrl-C stops",
                ui.dir.display(),
                if ui.logs.is_empty() {
                    "none, see --audit-log".to_string()
                } else {
                    ui.logs
                        .iter()
                        .map(|l| l.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let ui = ui.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let ui = ui.clone();
                        async move { Ok::<_, Infallible>(handle(&ui, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    }

    fn respond(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(body.into()));
        *r.status_mut() = status;
        let h = r.headers_mut();
        let set = |h: &mut hyper::HeaderMap, k: &'static str, v: &str| {
            if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
                h.insert(k, v);
            }
        };
        set(h, "content-type", kind);
        set(h, "cache-control", "no-store");
        set(h, "x-content-type-options", "nosniff");
        // The token is in the page's URL: never send it on as a Referer.
        set(h, "referrer-policy", "no-referrer");
        set(h, "x-frame-options", "DENY");
        set(
            h,
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        );
        r
    }

    fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
        respond(status, "application/json", v.to_string())
    }

    fn error(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
        json_response(status, &json!({ "error": msg }))
    }

    /// Equal, in time independent of where they differ.
    fn same(a: &str, b: &str) -> bool {
        a.len() == b.len()
            && a.bytes()
                .zip(b.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }

    fn query_token(req: &Request<Incoming>) -> Option<String> {
        req.uri()
            .query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(str::to_string))
    }

    fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
        req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    async fn handle(ui: &Ui, req: Request<Incoming>) -> Response<Full<Bytes>> {
        // The Host a browser sends is the name it resolved: a page of another
        // site that rebinds its name to 127.0.0.1 is refused here.
        let host = header(&req, "host").unwrap_or("").to_string();
        if let Some(hosts) = &ui.hosts
            && !hosts.iter().any(|h| h.eq_ignore_ascii_case(&host))
        {
            return error(StatusCode::FORBIDDEN, "unexpected Host header");
        }
        let state_changing = req.method() != Method::GET && req.method() != Method::HEAD;
        // The token: in the header; in the URL only for reading.
        let given = header(&req, "x-portcullis-token")
            .map(str::to_string)
            .or_else(|| {
                if state_changing {
                    None
                } else {
                    query_token(&req)
                }
            });
        if !given.is_some_and(|t| same(&t, &ui.token)) {
            return error(
                StatusCode::UNAUTHORIZED,
                if state_changing {
                    "missing or wrong token: send it in the X-Portcullis-Token header"
                } else {
                    "missing or wrong token: open the URL `portcullis ui` printed"
                },
            );
        }
        if state_changing {
            // Cross-site requests: a browser sends Origin (and Sec-Fetch-Site) with them.
            if let Some(origin) = header(&req, "origin")
                && !same_origin(origin, &host)
            {
                return error(StatusCode::FORBIDDEN, "cross-origin request refused");
            }
            if header(&req, "sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
                return error(StatusCode::FORBIDDEN, "cross-site request refused");
            }
            if !header(&req, "content-type").is_some_and(|c| c.starts_with("application/json")) {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send JSON (Content-Type: application/json)",
                );
            }
        }
        let path = req.uri().path().to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/") => respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                PAGE.replace("{{TOKEN}}", &ui.token),
            ),
            (Method::GET, "/app.js") => {
                respond(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT)
            }
            (Method::GET, "/style.css") => {
                respond(StatusCode::OK, "text/css; charset=utf-8", STYLE)
            }
            (Method::GET, "/api/servers") => {
                json_response(StatusCode::OK, &model::servers(&ui.dir))
            }
            (Method::GET, "/api/decisions") => json_response(StatusCode::OK, &decisions(&ui.logs)),
            (Method::POST, "/api/preview" | "/api/save") => {
                let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
                };
                let change: model::Change = match serde_json::from_slice(&body) {
                    Ok(c) => c,
                    Err(e) => return error(StatusCode::BAD_REQUEST, &format!("the request: {e}")),
                };
                edit_request(ui, &change, path == "/api/save")
            }
            (
                _,
                "/" | "/app.js" | "/style.css" | "/api/servers" | "/api/decisions" | "/api/preview"
                | "/api/save",
            ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// True when `origin` is `http://<host>`.
    fn same_origin(origin: &str, host: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
    }

    fn edit_request(ui: &Ui, change: &model::Change, save: bool) -> Response<Full<Bytes>> {
        let p = match model::preview(&ui.dir, change) {
            Ok(p) => p,
            Err(e) => {
                return json_response(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "error": e }));
            }
        };
        let mut report = p.report;
        if !save {
            return json_response(StatusCode::OK, &report);
        }
        if change.digest.as_deref().is_some_and(|d| d != p.digest) {
            report["error"] = json!("the file changed since the preview: preview again");
            return json_response(StatusCode::CONFLICT, &report);
        }
        if !p.valid {
            report["error"] = json!("the edit does not validate: nothing was written");
            return json_response(StatusCode::UNPROCESSABLE_ENTITY, &report);
        }
        if !p.tests_pass && !change.accept_failing_tests {
            report["error"] = json!(
                "the policy's tests fail with this edit: nothing was written (save anyway, then update the tests)"
            );
            return json_response(StatusCode::CONFLICT, &report);
        }
        // Write beside, then rename: a reader (a proxy reloading with -c) sees the old file or the new one.
        let tmp = p.path.with_file_name(format!(
            ".{}.ui-{}",
            p.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("policy"),
            std::process::id()
        ));
        if let Err(e) = std::fs::write(&tmp, &p.text).and_then(|_| std::fs::rename(&tmp, &p.path)) {
            let _ = std::fs::remove_file(&tmp);
            report["error"] = json!(format!("writing {}: {e}", p.path.display()));
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, &report);
        }
        eprintln!(
            "ui: wrote {} ({} set to {})",
            p.path.display(),
            change.tool,
            change.effect
        );
        report["saved"] = json!(true);
        json_response(StatusCode::OK, &report)
    }

    /// Minutes the chart shows.
    const CHART_MINUTES: i64 = 30;

    /// What `status` reports, plus denials per rule per minute for the chart.
    fn decisions(logs: &[PathBuf]) -> Value {
        if logs.is_empty() {
            return json!({"configured": false});
        }
        let now = UnixMillis::now();
        let report = match crate::commands::status::load(logs, now) {
            Ok(r) => r,
            Err(e) => return json!({"configured": true, "error": e}),
        };
        let last = now.0.div_euclid(60_000) * 60_000;
        let first = last - (CHART_MINUTES - 1) * 60_000;
        let minutes: Vec<i64> = (0..CHART_MINUTES).map(|k| first + k * 60_000).collect();
        let calls: Vec<u64> = minutes
            .iter()
            .map(|m| report.minutes.get(m).copied().unwrap_or(0))
            .collect();
        let mut by_rule: std::collections::BTreeMap<&str, Vec<u64>> =
            std::collections::BTreeMap::new();
        for d in report.denials.iter().filter(|d| d.at >= first) {
            let slot = ((d.at.div_euclid(60_000) * 60_000 - first) / 60_000) as usize;
            if let Some(c) = by_rule
                .entry(d.rule.as_str())
                .or_insert_with(|| vec![0; minutes.len()])
                .get_mut(slot)
            {
                *c += 1;
            }
        }
        let series: Vec<Value> = by_rule
            .into_iter()
            .map(|(rule, counts)| json!({"rule": rule, "counts": counts}))
            .collect();
        let minutes: Vec<String> = minutes
            .iter()
            .map(|m| UnixMillis(*m).to_rfc3339())
            .collect();
        let summary = report.summary(&crate::commands::status::process_exists);
        json!({
            "configured": true,
            "summary": summary,
            "chart": {"minutes": minutes, "calls": calls, "denials": series},
        })
    }
}
