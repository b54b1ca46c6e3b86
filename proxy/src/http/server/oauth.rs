//! The endpoint as an OAuth 2.1 resource server (MCP authorization,
//! RFC 9728, RFC 6750): Protected Resource Metadata, the bearer JWT every
//! request to `/mcp` carries (checked by [`crate::jwt::Verifier`]), the
//! `401`/`403` answers with `WWW-Authenticate`, and the binding of an MCP
//! session to the principal that opened it.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use portcullis_core::Principal;
use portcullis_core::jsonrpc::INVALID_REQUEST;

use super::Server;
use super::body::{Body, http_error, json_response};
use crate::jwt::{Refusal, Verifier};

/// The well-known path of Protected Resource Metadata (RFC 9728 §3).
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The endpoint's resource-server settings.
#[derive(Clone)]
pub struct OAuth {
    /// Validates the bearer tokens.
    pub verifier: Arc<Verifier>,
    /// The endpoint's canonical URL as clients reach it (`resource` in the
    /// metadata, e.g. `https://mcp.example.com/mcp`).
    pub resource: String,
    /// Authorization servers that issue tokens for it (issuer URLs).
    pub authorization_servers: Vec<String>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("resource", &self.resource)
            .field("authorization_servers", &self.authorization_servers)
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// Completes the settings once the endpoint listens at `local`: the
    /// resource URL defaults to `http://ADDR:PORT/mcp`, and is the audience
    /// unless audiences were configured.
    pub(super) fn resolve(&mut self, local: std::net::SocketAddr) {
        if self.resource.is_empty() {
            self.resource = match local {
                std::net::SocketAddr::V6(a) => format!("http://[{}]:{}/mcp", a.ip(), a.port()),
                std::net::SocketAddr::V4(a) => format!("http://{a}/mcp"),
            };
        }
        self.verifier.default_audience(&self.resource);
    }

    /// `scheme://authority` and path of the resource URL.
    fn split(&self) -> (&str, &str) {
        let after = self.resource.find("://").map_or(0, |i| i + 3);
        match self.resource[after..].find('/') {
            Some(i) => self.resource.split_at(after + i),
            None => (&self.resource, ""),
        }
    }

    /// The metadata's URL, path-suffixed with the resource's path (RFC 9728 §3.1).
    pub fn metadata_url(&self) -> String {
        let (origin, path) = self.split();
        format!("{origin}{METADATA_PATH}{}", path.trim_end_matches('/'))
    }

    /// The metadata document.
    fn metadata(&self) -> Vec<u8> {
        let strings = |v: &[String]| {
            serde_json::Value::Array(v.iter().cloned().map(serde_json::Value::String).collect())
        };
        let mut doc = serde_json::Map::new();
        doc.insert("resource".into(), self.resource.clone().into());
        doc.insert(
            "authorization_servers".into(),
            strings(&self.authorization_servers),
        );
        doc.insert(
            "bearer_methods_supported".into(),
            strings(&["header".into()]),
        );
        let scopes = &self.verifier.options().required_scopes;
        if !scopes.is_empty() {
            doc.insert("scopes_supported".into(), strings(scopes));
        }
        serde_json::to_vec(&serde_json::Value::Object(doc)).unwrap_or_default()
    }

    /// The `WWW-Authenticate` value of a refusal.
    fn challenge(&self, error: Option<(&str, &str)>) -> HeaderValue {
        let mut v = String::from("Bearer ");
        if let Some((code, description)) = error {
            v.push_str(&format!(
                "error=\"{code}\", error_description=\"{}\", ",
                description.replace(['"', '\\'], "'")
            ));
        }
        v.push_str(&format!("resource_metadata=\"{}\"", self.metadata_url()));
        let scopes = &self.verifier.options().required_scopes;
        if !scopes.is_empty() {
            v.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
        }
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

/// True when the query string carries a token (`access_token=`, RFC 6750 §2.3).
fn token_in_query(req: &Request<Incoming>) -> bool {
    req.uri().query().is_some_and(|q| {
        q.split('&').any(|p| {
            p.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("access_token"))
        })
    })
}

impl Server {
    /// The metadata document, for a GET of one of its paths.
    pub(super) fn protected_resource_metadata(
        &self,
        req: &Request<Incoming>,
    ) -> Option<Response<Body>> {
        let oauth = self.opts.oauth.as_ref()?;
        let path = req.uri().path();
        let suffixed = oauth.metadata_url();
        let suffixed = &suffixed[oauth.split().0.len()..];
        if path != METADATA_PATH && path != suffixed {
            return None;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = http_error(
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID_REQUEST,
                "Method Not Allowed: use GET",
            );
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(r);
        }
        let mut r = json_response(oauth.metadata());
        // Public metadata: browser-based clients (the MCP Inspector) read it cross-origin.
        r.headers_mut().insert(
            hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        Some(r)
    }

    /// With `--jwks-*`: the principal of the request's bearer token, or the
    /// refusal to answer (400, 401, 403 or 503). Ok(None): tokens are not checked.
    pub(super) async fn authenticate(
        &self,
        req: &Request<Incoming>,
    ) -> Result<Option<Arc<Principal>>, Response<Body>> {
        let Some(oauth) = &self.opts.oauth else {
            return Ok(None);
        };
        if token_in_query(req) {
            let why = "tokens in the query string are refused: send Authorization: Bearer";
            let mut r = http_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                &format!("Bad Request: {why}"),
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                oauth.challenge(Some(("invalid_request", why))),
            );
            self.refused(why);
            return Err(r);
        }
        let authorization = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let refusal = match oauth.verifier.authenticate(authorization).await {
            Ok(p) => return Ok(Some(p)),
            Err(r) => r,
        };
        let (status, message, error) = match refusal {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized: send Authorization: Bearer <an access token for this resource>",
                None,
            ),
            Refusal::Invalid(why) => (StatusCode::UNAUTHORIZED, why, Some(("invalid_token", why))),
            Refusal::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "Forbidden: the token lacks a required scope",
                Some(("insufficient_scope", "the token lacks a required scope")),
            ),
            Refusal::NoKeys => {
                self.log.warn(format_args!(
                    "refused a request: no signing key could be read from the JWKS yet (503)"
                ));
                let mut r = http_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    INVALID_REQUEST,
                    "Service Unavailable: the proxy cannot read its token signing keys",
                );
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("60"));
                return Err(r);
            }
        };
        self.refused(match refusal {
            Refusal::Missing => "no bearer token",
            _ => error.map_or("", |e| e.1),
        });
        let message = if message.starts_with("Unauthorized") || message.starts_with("Forbidden") {
            message.to_string()
        } else {
            format!("Unauthorized: {message}")
        };
        let mut r = http_error(status, INVALID_REQUEST, &message);
        r.headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, oauth.challenge(error));
        Err(r)
    }

    /// Counts a refusal for the rate-limited log line.
    fn refused(&self, why: &str) {
        self.unauthorized
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log_unauthorized(Some(why));
    }
}

/// True when a request by `caller` may use a session opened by `owner`:
/// the same issuer and subject (the scopes and expiry of its token may
/// differ), or no authentication at all.
pub(super) fn may_use(owner: Option<&Principal>, caller: Option<&Principal>) -> bool {
    match (owner, caller) {
        (Some(o), Some(c)) => o.same_caller(c),
        (None, _) => true,
        (Some(_), None) => false,
    }
}
