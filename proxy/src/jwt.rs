//! Bearer JWTs of the local HTTP endpoint (the proxy as an OAuth resource
//! server): signature against a JWKS, `iss`, `aud`, `exp`/`nbf`, the
//! algorithm allow-list and required scopes; the [`Principal`] each valid
//! token stands for; a bounded cache of tokens already validated.
//!
//! The cryptography is `jsonwebtoken`'s (over `ring`); this module chooses
//! the key, builds the validation rules and keeps the caches. What is
//! trusted comes from the proxy's configuration only: a token's `jku`, `jwk`
//! or `x5u` header is never followed, an HMAC (`oct`) key in the JWKS is
//! ignored, and the token's `alg` must be on the allow-list *and* fit the
//! key type (so an RSA public key can never be used as an HMAC secret).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{DecodingKey, Validation};
use portcullis_core::Principal;
use tokio::time::Instant;

use crate::log::Log;

/// Where the signing keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS document on disk (re-read on an unknown `kid`, and when older
    /// than [`KEYS_MAX_AGE`]).
    File(PathBuf),
    /// A JWKS URL (`jwks_uri` of the authorization server), fetched at
    /// start-up and again on an unknown `kid`: `https://`, or `http://` to a
    /// loopback host only ([`check_jwks_url`]).
    Url(String),
}

/// `url` as logs and errors show it: without the user-info (`user:pass@`)
/// of its authority. A URL that cannot be parsed is shown only up to its
/// host when it has an `@` (whatever precedes it may be a password).
pub fn shown_url(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(u) if u.authority().is_some_and(|a| a.as_str().contains('@')) => {
            let host = u
                .authority()
                .map(|a| a.as_str().rsplit_once('@').map_or("", |(_, h)| h))
                .unwrap_or("");
            format!(
                "{}://{host}{}",
                u.scheme_str().unwrap_or(""),
                u.path_and_query().map_or("", |p| p.as_str())
            )
        }
        Ok(_) => url.to_string(),
        Err(_) => crate::state::redact_dsn(url),
    }
}

/// Checks a JWKS URL: `https://`, or `http://` to a loopback host
/// (127.0.0.0/8, `::1` or `localhost`), where nothing on the network can
/// swap the keys in transit. Err: why, naming the URL without credentials.
pub fn check_jwks_url(url: &str) -> Result<(), String> {
    let shown = shown_url(url);
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let https = scheme.eq_ignore_ascii_case("https");
    if !https && !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("--jwks-url `{shown}` is not an https:// URL"));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("--jwks-url `{shown}` is not a URL: {e}"))?;
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(format!(
            "--jwks-url `{shown}` is not a URL: it names no host"
        ));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if https || loopback {
        return Ok(());
    }
    Err(format!(
        "--jwks-url `{shown}` is plain http:// to {host}, which is not a loopback address: anyone on the path could replace the signing keys and mint tokens"
    ))
}

/// The algorithms accepted unless configured otherwise: asymmetric only.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The key set is fetched again at most this often (an unknown `kid` asks
/// for it; the read at start-up does not count).
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// A key set older than this is refreshed on the next request (so a key the
/// authorization server withdrew stops being trusted), at most every
/// [`REFRESH_EVERY`]; if that fails, the old keys keep serving. A request
/// whose token is cached does not wait for that read (it runs in the
/// background); one whose token is validated now does.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(600);

/// Tokens kept validated, at most.
pub const CACHE_CAPACITY: usize = 4096;

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// How tokens are validated.
#[derive(Debug, Clone)]
pub struct JwtOptions {
    /// The signing keys.
    pub jwks: JwksSource,
    /// The exact `iss` required.
    pub issuer: String,
    /// Accepted `aud` values (one must be in the token's `aud`); empty: the
    /// endpoint's resource URL, once known ([`Verifier::default_audience`]).
    pub audiences: Vec<String>,
    /// Accepted `alg` values.
    pub algorithms: Vec<Algorithm>,
    /// Scopes every token must grant (403 `insufficient_scope` otherwise).
    pub required_scopes: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token (401 without an error code, RFC 6750 §3.1).
    Missing,
    /// A token that is not valid (401 `invalid_token`); the reason is for the log and the client.
    Invalid(&'static str),
    /// A valid token without a required scope (403 `insufficient_scope`).
    InsufficientScope,
    /// No signing key is known (the JWKS could never be read): 503, fail closed.
    NoKeys,
}

/// One signing key of the set.
struct Key {
    kid: Option<String>,
    /// The algorithms this key may verify: its type's, narrowed by its `alg`.
    algs: Vec<Algorithm>,
    key: DecodingKey,
    /// The JWK as read (to tell whether a new read changed the set).
    jwk: String,
}

struct Keys {
    keys: Vec<Key>,
    /// When they were read (None: never).
    read: Option<Instant>,
    /// Counts the reads that changed the key set: a cached token validated
    /// under an older generation is validated again before it is trusted
    /// (its key may have been withdrawn).
    generation: u64,
}

/// A validated token.
struct Cached {
    principal: Arc<Principal>,
    /// `exp`, seconds since the epoch.
    exp: u64,
    /// The key set's generation it was validated under.
    generation: u64,
}

/// Validates bearer tokens; cheap to share (`Arc`).
pub struct Verifier {
    opts: JwtOptions,
    keys: RwLock<Keys>,
    /// Serializes fetches; holds when the last one started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    /// A background refresh (started by a cached token) is running.
    refreshing: AtomicBool,
    cache: Mutex<HashMap<Box<str>, Cached, foldhash::fast::RandomState>>,
    client: Option<crate::http::upstream::HttpClient>,
    log: Log,
    /// The audience when none is configured: the resource URL (known once the endpoint listens).
    default_audience: std::sync::OnceLock<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The algorithms a JWK may verify (never an HMAC one).
fn algorithms_of(jwk: &Jwk) -> Vec<Algorithm> {
    use jsonwebtoken::jwk::EllipticCurve;
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        // A symmetric key has no business in a public key set.
        AlgorithmParameters::OctetKey(_) => &[],
    };
    // An `alg` that names no signature algorithm (RSA-OAEP...) makes the key unusable here.
    let named = match jwk.common.key_algorithm {
        None => None,
        Some(a) => match a.to_string().parse::<Algorithm>() {
            Ok(a) => Some(a),
            Err(_) => return Vec::new(),
        },
    };
    by_type
        .iter()
        .copied()
        .filter(|a| named.is_none_or(|n| n == *a))
        .collect()
}

/// Reads a JWKS document: the usable signing keys, and how many were skipped.
fn parse_jwks(bytes: &[u8]) -> Result<(Vec<Key>, usize), String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Some(list) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Err("no `keys` array".into());
    };
    let (mut keys, mut skipped) = (Vec::new(), 0);
    for k in list {
        let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
            skipped += 1;
            continue;
        };
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            skipped += 1;
            continue;
        }
        let algs = algorithms_of(&jwk);
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) if !algs.is_empty() => keys.push(Key {
                kid: jwk.common.key_id.clone(),
                algs,
                key,
                jwk: k.to_string(),
            }),
            _ => skipped += 1,
        }
    }
    Ok((keys, skipped))
}

impl Verifier {
    /// A verifier; reads (or fetches) the key set once. A key set that
    /// cannot be read now is not fatal for a URL (it is tried again on
    /// requests, at most every [`REFRESH_EVERY`]; until then requests get
    /// 503): Err only for a file that cannot be read or holds no usable key.
    pub async fn new(opts: JwtOptions, log: Log) -> Result<Verifier, String> {
        let client = match &opts.jwks {
            JwksSource::Url(url) => {
                check_jwks_url(url)?;
                Some(crate::http::upstream::client(Duration::from_secs(5)))
            }
            JwksSource::File(_) => None,
        };
        let v = Verifier {
            opts,
            keys: RwLock::new(Keys {
                keys: Vec::new(),
                read: None,
                generation: 0,
            }),
            fetching: tokio::sync::Mutex::new(None),
            refreshing: AtomicBool::new(false),
            cache: Mutex::new(HashMap::default()),
            client,
            log,
            default_audience: std::sync::OnceLock::new(),
        };
        match (v.refresh(true).await, &v.opts.jwks) {
            (Ok(0), JwksSource::File(p)) => Err(format!(
                "the JWKS file {} holds no usable signing key (RSA, EC P-256/P-384 or Ed25519)",
                p.display()
            )),
            (Err(e), JwksSource::File(_)) => Err(e),
            (Err(e), JwksSource::Url(_)) => {
                log.warn(format_args!(
                    "{e}; requests are refused (503) until the key set can be read"
                ));
                Ok(v)
            }
            (Ok(_), _) => Ok(v),
        }
    }

    /// The audience accepted when `audiences` is empty (the endpoint's
    /// canonical URL); set once, later calls are ignored.
    pub fn default_audience(&self, resource: &str) {
        let _ = self.default_audience.set(resource.to_string());
    }

    /// The options.
    pub fn options(&self) -> &JwtOptions {
        &self.opts
    }

    /// Reads the key set again unless that was done less than
    /// [`REFRESH_EVERY`] ago (`force`: at start-up). Ok: usable keys now
    /// held. A failure keeps the keys held before.
    async fn refresh(&self, force: bool) -> Result<usize, String> {
        let mut last = self.fetching.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return Ok(self
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .len());
        }
        // The start-up read does not count: the first unknown `kid` after
        // it may fetch at once (a rotation right after a restart).
        if !force {
            *last = Some(Instant::now());
        }
        let bytes = self.read_jwks().await?;
        let (keys, skipped) = parse_jwks(&bytes).map_err(|e| format!("the JWKS {e}"))?;
        let n = keys.len();
        if n == 0 && skipped > 0 {
            return Err(format!(
                "the JWKS has {skipped} key(s), none usable for signatures"
            ));
        }
        let mut held = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let set = |keys: &[Key]| {
            let mut jwks: Vec<&str> = keys.iter().map(|k| k.jwk.as_str()).collect();
            jwks.sort_unstable();
            jwks.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        let changed = set(&held.keys) != set(&keys);
        let generation = held.generation + u64::from(changed);
        self.log.info(format_args!(
            "read {n} signing key(s) from the JWKS ({skipped} skipped){}",
            if changed && held.read.is_some() {
                "; the key set changed: cached tokens are validated again"
            } else {
                ""
            }
        ));
        *held = Keys {
            keys,
            read: Some(Instant::now()),
            generation,
        };
        Ok(n)
    }

    /// A refresh of a stale key set that no request waits for (a cached
    /// token was served with the keys held); one at a time.
    fn refresh_in_background(self: &Arc<Self>) {
        match self.fetching.try_lock() {
            // Nothing read for a minute: worth a task.
            Ok(last) if last.is_none_or(|t| t.elapsed() >= REFRESH_EVERY) => {}
            // Read (or tried) less than a minute ago, or being read now.
            _ => return,
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let v = self.clone();
        runtime.spawn(async move {
            if let Err(e) = v.refresh(false).await {
                v.log.warn(format_args!("{e}; serving with the keys held"));
            }
            v.refreshing.store(false, Ordering::Release);
        });
    }

    async fn read_jwks(&self) -> Result<Vec<u8>, String> {
        match &self.opts.jwks {
            JwksSource::File(p) => std::fs::read(p)
                .map_err(|e| format!("cannot read the JWKS file {}: {e}", p.display())),
            JwksSource::Url(url) => {
                use http_body_util::{BodyExt, Full, Limited};
                let shown = shown_url(url);
                let fail = |e: String| format!("cannot fetch the JWKS from {shown}: {e}");
                let uri: hyper::Uri = url.parse().map_err(|e| fail(format!("{e}")))?;
                let req = hyper::Request::get(uri)
                    .header(hyper::header::ACCEPT, "application/json")
                    .body(Full::new(bytes::Bytes::new()))
                    .map_err(|e| fail(e.to_string()))?;
                let client = self.client.as_ref().expect("a client for a JWKS URL");
                let get = async {
                    let resp = client.request(req).await.map_err(|e| fail(e.to_string()))?;
                    if !resp.status().is_success() {
                        return Err(fail(format!("HTTP {}", resp.status())));
                    }
                    Limited::new(resp.into_body(), MAX_JWKS_BYTES)
                        .collect()
                        .await
                        .map(|b| b.to_bytes().to_vec())
                        .map_err(|e| fail(e.to_string()))
                };
                tokio::time::timeout(Duration::from_secs(10), get)
                    .await
                    .unwrap_or_else(|_| Err(fail("timed out".into())))
            }
        }
    }

    /// The principal of `authorization` (the `Authorization` header's value,
    /// if any), or why the request is refused.
    pub async fn authenticate(
        self: &Arc<Self>,
        authorization: Option<&[u8]>,
    ) -> Result<Arc<Principal>, Refusal> {
        let Some(value) = authorization else {
            return Err(Refusal::Missing);
        };
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let token = match value.get(..7) {
            Some(s) if s.eq_ignore_ascii_case(b"bearer ") => &value[7..],
            _ => return Err(Refusal::Missing),
        };
        let token = std::str::from_utf8(token)
            .map_err(|_| Refusal::Invalid("the token is not a JWT"))?
            .trim();
        let principal = self.principal(token).await?;
        if self
            .opts
            .required_scopes
            .iter()
            .any(|s| !principal.has_scope(s))
        {
            return Err(Refusal::InsufficientScope);
        }
        Ok(principal)
    }

    /// The principal of a token: from the cache (when it was validated
    /// under the key set held now), or validated now.
    async fn principal(self: &Arc<Self>, token: &str) -> Result<Arc<Principal>, Refusal> {
        let now = now_secs();
        let leeway = self.opts.leeway.as_secs();
        let (generation, stale) = {
            let k = self.keys.read().unwrap_or_else(|e| e.into_inner());
            (
                k.generation,
                k.read.is_none_or(|t| t.elapsed() > KEYS_MAX_AGE),
            )
        };
        {
            let mut cache = lock(&self.cache);
            if let Some(c) = cache.get(token) {
                if now > c.exp.saturating_add(leeway) {
                    cache.remove(token);
                    return Err(Refusal::Invalid("the token has expired"));
                }
                if c.generation == generation {
                    let principal = c.principal.clone();
                    drop(cache);
                    if stale {
                        self.refresh_in_background();
                    }
                    return Ok(principal);
                }
                // The key set changed since: its key may be gone.
                cache.remove(token);
            }
        }
        if stale && let Err(e) = self.refresh(false).await {
            self.log
                .warn(format_args!("{e}; serving with the keys held"));
        }
        let (principal, exp, generation) = match self.validate(token) {
            Err(Invalid::UnknownKey) => {
                // A rotation: the key set may have a new key.
                if let Err(e) = self.refresh(false).await {
                    self.log
                        .warn(format_args!("{e}; serving with the keys held"));
                }
                self.validate(token)
            }
            other => other,
        }
        .map_err(|e| match e {
            Invalid::UnknownKey
                if self
                    .keys
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys
                    .is_empty() =>
            {
                Refusal::NoKeys
            }
            Invalid::UnknownKey => Refusal::Invalid("no known key signed the token (kid)"),
            Invalid::Token(why) => Refusal::Invalid(why),
        })?;
        let principal = Arc::new(principal);
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| now <= c.exp.saturating_add(leeway));
            if cache.len() >= CACHE_CAPACITY
                && let Some(k) = cache.keys().next().cloned()
            {
                cache.remove(&k);
            }
        }
        cache.insert(
            token.into(),
            Cached {
                principal: principal.clone(),
                exp,
                generation,
            },
        );
        Ok(principal)
    }

    /// Full validation of a token not in the cache: the principal, `exp`
    /// and the generation of the key set that validated it.
    fn validate(&self, token: &str) -> Result<(Principal, u64, u64), Invalid> {
        let bad = Invalid::Token;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| bad("the token is not a JWT with a supported `alg` (never `none`)"))?;
        if !self.opts.algorithms.contains(&header.alg) {
            return Err(bad("the token's `alg` is not accepted"));
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut candidates = keys.keys.iter().filter(|k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            // No `kid`: only a set of exactly one key says which key it is.
            None => keys.keys.len() == 1,
        });
        let Some(key) = candidates.next() else {
            return Err(Invalid::UnknownKey);
        };
        if !key.algs.contains(&header.alg) {
            return Err(bad("the token's `alg` does not fit its key"));
        }
        let mut v = Validation::new(header.alg);
        v.leeway = self.opts.leeway.as_secs();
        v.validate_nbf = true;
        v.set_issuer(&[&self.opts.issuer]);
        match (&self.opts.audiences[..], self.default_audience.get()) {
            ([], Some(resource)) => v.set_audience(&[resource]),
            // No audience known: `aud` is required and nothing matches it.
            ([], None) => v.set_audience::<&str>(&[]),
            (auds, _) => v.set_audience(auds),
        }
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<serde::de::IgnoredAny>(token, &key.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            bad(match e.kind() {
                K::ExpiredSignature => "the token has expired",
                K::ImmatureSignature => "the token is not valid yet (nbf)",
                K::InvalidIssuer => "the token's issuer is not accepted",
                K::InvalidAudience => "the token is not for this resource (aud)",
                K::InvalidSignature => "the token's signature does not verify",
                K::MissingRequiredClaim(_) => "the token lacks exp, iss, aud or sub",
                K::InvalidAlgorithm => "the token's `alg` does not fit its key",
                _ => "the token is malformed",
            })
        })?;
        // The payload again, as bytes, for the principal: the signature over
        // it was just verified.
        let payload = token
            .split('.')
            .nth(1)
            .ok_or(bad("the token is malformed"))?;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| bad("the token is malformed"))?;
        let principal = Principal::from_claims(claims).map_err(|e| {
            bad(match e {
                portcullis_core::principal::PrincipalErrorKind::NotJson => {
                    "the token's claims repeat a key"
                }
                _ => "the token lacks a string sub or iss",
            })
        })?;
        let exp = principal
            .claim("exp")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()?.parse::<f64>().ok())
            .map_or(0, |e| e as u64);
        Ok((principal, exp, keys.generation))
    }
}

/// Why a token failed before the cache.
enum Invalid {
    /// No key of the set has the token's `kid`.
    UnknownKey,
    Token(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_never_used() {
        let jwks = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"EC","kid":"e","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
            {"kty":"RSA","kid":"ps","alg":"PS256","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"oaep","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"},
            {"kty":"weird"}
        ]}"#;
        let (keys, skipped) = parse_jwks(jwks).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["e", "ps"]);
        assert_eq!(skipped, 4);
        assert_eq!(keys[0].algs, [Algorithm::ES256]);
        assert_eq!(keys[1].algs, [Algorithm::PS256], "narrowed by its alg");
        assert!(parse_jwks(b"{}").is_err());
    }

    #[test]
    fn a_jwks_url_is_https_or_plain_http_to_loopback_only() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "HTTPS://idp.example.com/jwks",
            "http://127.0.0.1:8080/jwks.json",
            "http://127.3.4.5/jwks",
            "http://[::1]:9000/jwks",
            "http://localhost/jwks",
            "http://LocalHost:1/jwks",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://example.com/jwks", "not a loopback address"),
            ("http://10.0.0.1/jwks", "not a loopback address"),
            ("http://[::2]/jwks", "not a loopback address"),
            ("http://localhost.evil.test/jwks", "not a loopback address"),
            ("http://127.0.0.1.nip.io/jwks", "not a loopback address"),
            ("ftp://idp.example.com/jwks", "not an https:// URL"),
            ("idp.example.com/jwks", "not an https:// URL"),
            ("https:///jwks", "not a URL"),
        ] {
            let e = check_jwks_url(bad).unwrap_err();
            assert!(e.starts_with("--jwks-url `"), "{e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
        // Credentials never appear in the message.
        let e = check_jwks_url("http://user:hunter2@example.com/jwks").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("`http://example.com/jwks`"), "{e}");
        assert_eq!(
            shown_url("https://u:p@idp.test:8443/k?x=1"),
            "https://idp.test:8443/k?x=1"
        );
        assert_eq!(shown_url("https://idp.test/k"), "https://idp.test/k");
    }

    // Two Ed25519 keys made by `openssl genpkey -algorithm ed25519`, and
    // their public halves (the last 32 bytes of the DER public key).
    const KEY_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHojOrfdS3e+ae7UDTtKPoKwq9c5mTgerq6AJ3Kshfe6\n-----END PRIVATE KEY-----\n";
    const JWK_A: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"a","x":"YCbn24c6h95qVEexXoE3GBJgm0OVqNG0ht37D_La9uY"}"#;
    const KEY_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGgl36xrMIpl2dZRKCGJao6cRqakbPLpVxrVQsbyBYOG\n-----END PRIVATE KEY-----\n";
    const JWK_B: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"b","x":"e6-3tyhF8Osp2baWdLIclBOOIbCnYrU1sTYySsPPwYM"}"#;

    fn sign(pem: &str, kid: &str, sub: &str) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        let claims = serde_json::json!({
            "iss": "https://idp.test", "sub": sub, "aud": "https://mcp.test/mcp",
            "exp": now_secs() + 3600,
        });
        let key = jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    /// A token accepted and cached stops being accepted once a periodic
    /// re-read of the key set no longer has its key; a cached hit starts
    /// that re-read without waiting for it; a token whose key stayed is
    /// accepted after the change (validated again).
    #[tokio::test(start_paused = true)]
    async fn a_cached_token_does_not_outlive_the_removal_of_its_key() {
        let dir =
            std::env::temp_dir().join(format!("portcullis-jwt-rotation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jwks.json");
        std::fs::write(&file, format!(r#"{{"keys":[{JWK_A},{JWK_B}]}}"#)).unwrap();
        let v = Arc::new(
            Verifier::new(
                JwtOptions {
                    jwks: JwksSource::File(file.clone()),
                    issuer: "https://idp.test".into(),
                    audiences: vec!["https://mcp.test/mcp".into()],
                    algorithms: DEFAULT_ALGORITHMS.to_vec(),
                    required_scopes: Vec::new(),
                    leeway: DEFAULT_LEEWAY,
                },
                Log {
                    level: crate::log::Level::Error,
                },
            )
            .await
            .unwrap(),
        );
        let generation = || v.keys.read().unwrap().generation;
        let (by_a, by_b) = (sign(KEY_A, "a", "alice"), sign(KEY_B, "b", "bob"));
        let alice = v.authenticate(Some(&bearer(&by_a))).await.unwrap();
        assert_eq!(alice.sub(), "alice");
        assert!(v.authenticate(Some(&bearer(&by_b))).await.is_ok());
        let first = generation();

        // Key `a` is withdrawn. Until the key set is old, the cached token
        // still passes (no read per request).
        std::fs::write(&file, format!(r#"{{"keys":[{JWK_B}]}}"#)).unwrap();
        tokio::time::advance(KEYS_MAX_AGE / 2).await;
        assert!(v.authenticate(Some(&bearer(&by_a))).await.is_ok());
        assert_eq!(generation(), first);

        // Past KEYS_MAX_AGE: the cached hit is answered at once (with the
        // keys held) and starts the re-read in the background.
        tokio::time::advance(KEYS_MAX_AGE).await;
        assert!(v.authenticate(Some(&bearer(&by_a))).await.is_ok());
        for _ in 0..100 {
            if generation() != first {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(generation(), first + 1, "the re-read changed the set");

        // The same token now: its key is gone.
        assert_eq!(
            v.authenticate(Some(&bearer(&by_a))).await.unwrap_err(),
            Refusal::Invalid("no known key signed the token (kid)")
        );
        // Bob's key stayed: validated again under the new set, and cached.
        let bob = v.authenticate(Some(&bearer(&by_b))).await.unwrap();
        assert_eq!(bob.sub(), "bob");
        let cached = lock(&v.cache).get(by_b.as_str()).map(|c| c.generation);
        assert_eq!(cached, Some(first + 1));

        // A re-read that finds the same keys changes nothing.
        tokio::time::advance(KEYS_MAX_AGE + REFRESH_EVERY).await;
        assert!(v.authenticate(Some(&bearer(&by_b))).await.is_ok());
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            v.keys.read().unwrap().read.unwrap().elapsed() < REFRESH_EVERY,
            "read again"
        );
        assert_eq!(generation(), first + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
