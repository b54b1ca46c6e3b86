//! Who may use the endpoint: the client token (`Authorization: Bearer`),
//! the `Origin` rule, and the `Host` rule of a loopback bind (DNS rebinding).

use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use tokio::time::Instant;

use super::Server;
use super::body::{Body, header, http_error};
use crate::http::lock;
use portcullis_core::jsonrpc::INVALID_REQUEST;

/// A bearer secret of which only the SHA-256 is kept; a presented token is
/// hashed and the digests compared in constant time, so neither the
/// comparison's duration nor the token's length tells an attacker anything.
/// The endpoint's [`ClientToken`] and the admin API's token are both one.
#[derive(Clone)]
pub struct BearerToken([u8; 32]);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<hidden>)")
    }
}

impl BearerToken {
    /// Shortest secret accepted.
    pub const MIN_LEN: usize = 16;

    /// A token from its secret (surrounding whitespace removed); `what`
    /// names it in errors ("client token"). Err: the secret is too short or
    /// holds characters a header cannot carry.
    pub fn new(secret: &str, what: &str) -> Result<BearerToken, String> {
        let secret = secret.trim();
        if secret.len() < Self::MIN_LEN {
            return Err(format!(
                "the {what} must be at least {} characters long (it has {})",
                Self::MIN_LEN,
                secret.len()
            ));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "the {what} must be printable ASCII without spaces (it travels in an HTTP header)"
            ));
        }
        Ok(BearerToken(Self::digest(secret.as_bytes())))
    }

    fn digest(bytes: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(bytes).into()
    }

    /// True when `authorization` (the header's value) is `Bearer <this token>`.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        // The scheme is case-insensitive (RFC 9110 §11.1); one space follows it.
        let Some(presented) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..])
        else {
            return false;
        };
        let digest = Self::digest(presented);
        // Constant time: every byte is compared whatever the first difference.
        digest
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The secret clients of the endpoint present (`--client-token*`).
#[derive(Clone)]
pub struct ClientToken(BearerToken);

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientToken(<hidden>)")
    }
}

impl ClientToken {
    /// A token from its secret (surrounding whitespace removed). Err: the
    /// secret is too short or holds characters a header cannot carry.
    pub fn new(secret: &str) -> Result<ClientToken, String> {
        BearerToken::new(secret, "client token").map(ClientToken)
    }

    /// True when `authorization` (the header's value) is `Bearer <this token>`.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        self.0.accepts(authorization)
    }
}

/// Refusals for a missing or wrong client token are logged at most this often.
const UNAUTHORIZED_LOG_EVERY: Duration = Duration::from_secs(10);

/// True for an `Origin` the endpoint accepts: a loopback host (any scheme
/// and port) or one of `allowed` exactly. `null` and anything else are refused.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https") || rest.contains('/') {
        return false;
    }
    is_loopback_host(rest)
}

/// `host[:port]` names the loopback interface.
fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, rest)) if rest.is_empty() || rest.starts_with(':') => h,
            _ => return false,
        }
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Server {
    /// Origin, Host and client token: Err is the refusal (403 or 401) to answer.
    pub(super) fn admit(&self, req: &Request<Incoming>) -> Result<(), Response<Body>> {
        if let Some(origin) = req.headers().get(hyper::header::ORIGIN) {
            let ok = origin
                .to_str()
                .is_ok_and(|o| origin_allowed(o, &self.opts.allowed_origins));
            if !ok {
                self.log.warn(format_args!(
                    "refused a request from origin {origin:?} (403); allow it with --allow-origin"
                ));
                return Err(http_error(
                    StatusCode::FORBIDDEN,
                    INVALID_REQUEST,
                    "Forbidden: origin not allowed",
                ));
            }
        }
        if self.loopback
            && let Some(host) = header(req, &hyper::header::HOST)
            && !is_loopback_host(host)
        {
            return Err(http_error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "Forbidden: the Host header does not name this loopback endpoint",
            ));
        }
        if let Some(token) = &self.opts.client_token {
            let authorization = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            if !token.accepts(authorization) {
                // Anyone who reaches the port can send these: log a count,
                // at most every UNAUTHORIZED_LOG_EVERY, not a line each.
                self.unauthorized
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.log_unauthorized(Some(if authorization.is_some() {
                    "wrong token"
                } else {
                    "no Authorization header"
                }));
                let mut r = http_error(
                    StatusCode::UNAUTHORIZED,
                    INVALID_REQUEST,
                    "Unauthorized: send Authorization: Bearer <the proxy's client token>",
                );
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis\""),
                );
                return Err(r);
            }
        }
        Ok(())
    }

    /// Logs the refusals for a missing or wrong client token counted since
    /// the last line, if UNAUTHORIZED_LOG_EVERY has passed (`latest`: what
    /// the latest one lacked; None from the sweep, which flushes a burst
    /// that stopped).
    pub(super) fn log_unauthorized(&self, latest: Option<&str>) {
        let mut last = lock(&self.unauthorized_logged);
        if last.is_some_and(|t| t.elapsed() < UNAUTHORIZED_LOG_EVERY) {
            return;
        }
        let n = self
            .unauthorized
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        if n == 0 {
            return;
        }
        *last = Some(Instant::now());
        match latest {
            Some(why) => self.log.warn(format_args!(
                "refused {n} request(s) without valid credentials (the latest: {why})"
            )),
            None => self.log.warn(format_args!(
                "refused {n} more request(s) without valid credentials"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_are_checked_exactly() {
        use super::ClientToken;
        let t = ClientToken::new("  s3cret-s3cret-s3cret\n").unwrap();
        assert!(t.accepts(Some(b"Bearer s3cret-s3cret-s3cret")));
        assert!(
            t.accepts(Some(b"bearer s3cret-s3cret-s3cret")),
            "the scheme is case-insensitive"
        );
        for wrong in [
            &b"Bearer s3cret-s3cret-s3cre"[..],
            b"Bearer s3cret-s3cret-s3cretX",
            b"Bearer S3CRET-S3CRET-S3CRET",
            b"Bearer  s3cret-s3cret-s3cret",
            b"Basic s3cret-s3cret-s3cret",
            b"s3cret-s3cret-s3cret",
            b"Bearer",
            b"",
        ] {
            assert!(
                !t.accepts(Some(wrong)),
                "{}",
                String::from_utf8_lossy(wrong)
            );
        }
        assert!(!t.accepts(None));
        assert!(
            ClientToken::new("short")
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(ClientToken::new("with a space inside it").is_err());
        assert_eq!(format!("{t:?}"), "ClientToken(<hidden>)");
    }

    #[test]
    fn only_loopback_origins_pass_unless_allowed() {
        for o in [
            "http://localhost",
            "http://localhost:6274",
            "https://127.0.0.1:8443",
            "http://[::1]:3000",
            "http://app.localhost:1",
        ] {
            assert!(origin_allowed(o, &[]), "{o}");
        }
        for o in [
            "null",
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "file://",
            "http://localhost/path",
            "ftp://localhost",
        ] {
            assert!(!origin_allowed(o, &[]), "{o}");
        }
        assert!(origin_allowed(
            "https://app.example.com",
            &["https://app.example.com".into()]
        ));
    }
}
