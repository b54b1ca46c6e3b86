//! The local HTTP endpoint as an OAuth resource server (issue 14): bearer
//! JWTs signed by RSA and EC keys the openssl CLI generates here, checked by
//! the real binary in front of the real server-everything (every byte it
//! receives is tapped), with the JWKS in a file or served over HTTP by a
//! tiny server of this test that can rotate keys and go down. Decision-log
//! lines name the token's caller (`sub`, `iss`); sessions without tokens act
//! as the local user or `--principal-claims`.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{ACCEPT, INIT, JSON, Terminated, header, http_text};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ISSUER: &str = "https://idp.test/realms/mcp";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A signing key made by openssl: its private PEM (PKCS#8), its public
/// PEM, and its public JWK.
struct TestKey {
    kid: String,
    alg: Algorithm,
    private: Vec<u8>,
    public_pem: Vec<u8>,
    jwk: String,
}

impl TestKey {
    fn rsa(dir: &Path, kid: &str) -> TestKey {
        let path = dir.join(format!("{kid}.pem"));
        let p = path.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]);
        let modulus = String::from_utf8(openssl(&["rsa", "-in", p, "-noout", "-modulus"])).unwrap();
        let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            private: std::fs::read(&path).unwrap(),
            public_pem: openssl(&["pkey", "-in", p, "-pubout"]),
            jwk: format!(
                r#"{{"kty":"RSA","kid":"{kid}","use":"sig","n":"{}","e":"AQAB"}}"#,
                b64(&n)
            ),
        }
    }

    fn ec(dir: &Path, kid: &str) -> TestKey {
        let path = dir.join(format!("{kid}.pem"));
        let p = path.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            p,
        ]);
        // The DER public key ends with the uncompressed point 04 || x || y.
        let der = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
        let point = &der[der.len() - 65..];
        assert_eq!(point[0], 4);
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            private: std::fs::read(&path).unwrap(),
            public_pem: openssl(&["pkey", "-in", p, "-pubout"]),
            jwk: format!(
                r#"{{"kty":"EC","kid":"{kid}","crv":"P-256","x":"{}","y":"{}"}}"#,
                b64(&point[1..33]),
                b64(&point[33..])
            ),
        }
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let key = match self.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&self.private).unwrap(),
            _ => EncodingKey::from_ec_pem(&self.private).unwrap(),
        };
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn jwks(keys: &[&TestKey]) -> String {
    let keys: Vec<&str> = keys.iter().map(|k| k.jwk.as_str()).collect();
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid token for `aud`, by `sub`.
fn claims(aud: &str, sub: &str) -> serde_json::Value {
    serde_json::json!({
        "iss": ISSUER, "sub": sub, "aud": aud,
        "iat": now(), "nbf": now() - 5, "exp": now() + 600,
        "scope": "mcp:tools openid", "groups": ["finance"],
    })
}

/// `portcullis --transport http --port 0 ARGS -- tap.sh TAP node server-everything`.
struct Endpoint {
    _proxy: Terminated,
    url: String,
    tap: PathBuf,
    dir: PathBuf,
}

impl Endpoint {
    fn start(name: &str, args: &[&str]) -> Endpoint {
        Endpoint::start_with(name, &["--server", "everything"], args)
    }

    /// Like [`Endpoint::start`], with the policy chosen by `policy`
    /// (`--server NAME` or `-c FILE`).
    fn start_with(name: &str, policy: &[&str], args: &[&str]) -> Endpoint {
        let dir = common::temp_dir(name);
        let tap = dir.join("server-received.jsonl");
        let (tap_sh, server) = (
            common::root().join("tests/e2e/tap.sh"),
            common::server_everything(),
        );
        let mut all: Vec<&OsStr> = policy.iter().chain(args).map(OsStr::new).collect();
        all.extend([
            OsStr::new("--"),
            tap_sh.as_os_str(),
            tap.as_os_str(),
            OsStr::new("node"),
            server.as_os_str(),
        ]);
        let (child, url) = common::start_http_endpoint(&all);
        Endpoint {
            _proxy: Terminated(child),
            url,
            tap,
            dir,
        }
    }

    fn origin(&self) -> &str {
        self.url.strip_suffix("/mcp").unwrap()
    }

    fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.origin())
    }

    fn server_received(&self) -> String {
        std::fs::read_to_string(&self.tap).unwrap_or_default()
    }

    /// POST `body` with `token` (and a session id); (status, head, body).
    fn post(&self, token: Option<&str>, sid: Option<&str>, body: &str) -> (u16, String, String) {
        self.post_to(&self.url, token, sid, body)
    }

    fn post_to(
        &self,
        url: &str,
        token: Option<&str>,
        sid: Option<&str>,
        body: &str,
    ) -> (u16, String, String) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut h = vec![JSON, ACCEPT];
        if let Some(b) = &bearer {
            h.push(("Authorization", b));
        }
        if let Some(s) = sid {
            h.push(("Mcp-Session-Id", s));
        }
        http_text(url, "POST", &h, body.as_bytes())
    }

    /// Opens a session with `token`; its id.
    fn open(&self, token: &str) -> String {
        let (status, head, body) = self.post(Some(token), None, INIT);
        assert_eq!(status, 200, "{head}\n{body}");
        let sid = header(&head, "mcp-session-id").expect("a session id");
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let (status, _, _) = self.post(Some(token), Some(&sid), note);
        assert_eq!(status, 202);
        sid
    }
}

fn call(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"call-{id}"}}}}}}"#
    )
}

/// A JWKS served over HTTP: `body` None answers 503 (the endpoint is down).
struct JwksServer {
    url: String,
    body: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(body: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new(Some(body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let resp = match &*b.lock().unwrap() {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                };
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        JwksServer { url, body, hits }
    }

    fn serve(&self, body: Option<String>) {
        *self.body.lock().unwrap() = body;
    }
}

fn assert_refused(
    (status, head, body): (u16, String, String),
    want: u16,
    error: Option<&str>,
    metadata: &str,
    what: &str,
) {
    assert_eq!(status, want, "{what}: {head}\n{body}");
    let challenge = header(&head, "www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate in {head}"));
    assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata}\"")),
        "{what}: {challenge}"
    );
    match error {
        Some(e) => assert!(
            challenge.contains(&format!("error=\"{e}\"")),
            "{what}: {challenge}"
        ),
        None => assert!(!challenge.contains("error="), "{what}: {challenge}"),
    }
    // The body is a JSON-RPC error without an id, as docs/identity.md tabulates.
    let rpc: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    assert_eq!(rpc["jsonrpc"], "2.0", "{what}: {body}");
    assert_eq!(rpc["id"], serde_json::Value::Null, "{what}: {body}");
    assert_eq!(rpc["error"]["code"], -32600, "{what}: {body}");
    let message = rpc["error"]["message"].as_str().unwrap();
    match (want, error) {
        (401, None) => assert_eq!(
            message, "Unauthorized: send Authorization: Bearer <an access token for this resource>",
            "{what}"
        ),
        (401, Some(_)) => {
            // The description in the header is the message's reason.
            let why = message
                .strip_prefix("Unauthorized: ")
                .unwrap_or_else(|| panic!("{what}: {message}"));
            assert!(
                challenge.contains(&format!(
                    "error_description=\"{}\"",
                    why.replace(['"', '\\'], "'")
                )),
                "{what}: {challenge} / {message}"
            );
        }
        (403, _) => assert_eq!(
            message, "Forbidden: the token lacks a required scope",
            "{what}"
        ),
        (400, _) => assert_eq!(
            message,
            "Bad Request: tokens in the query string are refused: send Authorization: Bearer",
            "{what}"
        ),
        _ => panic!("{what}: an unexpected status {want}"),
    }
}

#[test]
fn bad_tokens_are_refused_and_reach_nothing_valid_ones_pass() {
    let dir = common::temp_dir("oauth-keys");
    let (rsa, ec) = (TestKey::rsa(&dir, "rsa1"), TestKey::ec(&dir, "ec1"));
    let stranger = TestKey::rsa(&dir, "stranger");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&rsa, &ec])).unwrap();
    let p = Endpoint::start(
        "oauth-tokens",
        &[
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--issuer",
            ISSUER,
            "--authorization-server",
            "https://idp.test/realms/mcp",
        ],
    );
    let aud = p.url.clone();
    let metadata = p.metadata_url();

    // The metadata, at both well-known paths, unauthenticated.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let (status, _, body) = http_text(&format!("{}{path}", p.origin()), "GET", &[], b"");
        assert_eq!(status, 200, "{path}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["resource"], aud.as_str(), "{body}");
        assert_eq!(
            doc["authorization_servers"],
            serde_json::json!(["https://idp.test/realms/mcp"])
        );
        assert_eq!(
            doc["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
    }

    let valid = rsa.sign(&claims(&aud, "alice"));
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims(&aud, "alice");
        f(&mut c);
        rsa.sign(&c)
    };
    let tampered = {
        let parts: Vec<&str> = valid.split('.').collect();
        let mut c = claims(&aud, "admin");
        c["exp"] = serde_json::json!(now() + 600);
        format!(
            "{}.{}.{}",
            parts[0],
            b64(c.to_string().as_bytes()),
            parts[2]
        )
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(&aud, "alice").to_string().as_bytes())
    );
    // The classic confusion: HS256 keyed with the RSA public key's PEM.
    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rsa1".into());
        jsonwebtoken::encode(
            &h,
            &claims(&aud, "alice"),
            &EncodingKey::from_secret(&rsa.public_pem),
        )
        .unwrap()
    };
    let unknown_kid = stranger.sign(&claims(&aud, "alice"));
    let cases: Vec<(&str, Option<String>, u16, Option<&str>)> = vec![
        ("missing token", None, 401, None),
        (
            "expired",
            Some(with(&|c| {
                c["exp"] = (now() - 3600).into();
                c["nbf"] = (now() - 7200).into();
            })),
            401,
            Some("invalid_token"),
        ),
        (
            "not yet valid",
            Some(with(&|c| c["nbf"] = (now() + 3600).into())),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong issuer",
            Some(with(&|c| c["iss"] = "https://evil.test".into())),
            401,
            Some("invalid_token"),
        ),
        (
            "wrong audience",
            Some(with(&|c| c["aud"] = "https://other.test/mcp".into())),
            401,
            Some("invalid_token"),
        ),
        (
            "no audience",
            Some(with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            401,
            Some("invalid_token"),
        ),
        ("unknown kid", Some(unknown_kid), 401, Some("invalid_token")),
        (
            "tampered payload",
            Some(tampered),
            401,
            Some("invalid_token"),
        ),
        ("alg none", Some(alg_none), 401, Some("invalid_token")),
        (
            "HS256 with the public key",
            Some(hs256),
            401,
            Some("invalid_token"),
        ),
        ("not a JWT", Some("abc".into()), 401, Some("invalid_token")),
    ];
    for (what, token, status, error) in &cases {
        let r = p.post(token.as_deref(), None, INIT);
        assert_refused(r, *status, *error, &metadata, what);
    }
    let r = p.post_to(&format!("{}?access_token={valid}", p.url), None, None, INIT);
    assert_refused(
        r,
        400,
        Some("invalid_request"),
        &metadata,
        "token in the query",
    );
    let r = p.post_to(
        &format!("{}?access_token={valid}", p.url),
        Some(&valid),
        None,
        INIT,
    );
    assert_refused(
        r,
        400,
        Some("invalid_request"),
        &metadata,
        "also with a header",
    );
    assert_eq!(
        p.server_received(),
        "",
        "no refused request started or reached a server"
    );

    // Valid tokens (RSA and EC) pass; refused ones on a live session reach nothing.
    let sid = p.open(&valid);
    let (status, _, body) = p.post(Some(&valid), Some(&sid), &call(2));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("call-2"), "{body}");
    for (what, token, status, error) in &cases {
        let r = p.post(token.as_deref(), Some(&sid), &call(3));
        assert_refused(r, *status, *error, &metadata, what);
    }
    let ec_token = ec.sign(&claims(&aud, "alice"));
    let (status, _, body) = p.post(Some(&ec_token), Some(&sid), &call(4));
    assert_eq!(status, 200, "an EC token of the same caller: {body}");
    let tapped = p.server_received();
    assert!(
        tapped.contains("call-2") && tapped.contains("call-4"),
        "{tapped}"
    );
    assert!(
        !tapped.contains("call-3"),
        "a refused call reached the server: {tapped}"
    );
    assert!(
        !tapped.contains(&valid[..40]),
        "the client's token never goes upstream"
    );

    // The session is bound to alice: bob's valid token finds no such session.
    let bob = rsa.sign(&claims(&aud, "bob"));
    let (status, _, body) = p.post(Some(&bob), Some(&sid), &call(5));
    assert_eq!(status, 404, "another principal on alice's session: {body}");
    let (status, _, _) = http_text(
        &p.url,
        "DELETE",
        &[
            ("Authorization", &format!("Bearer {bob}")),
            ("Mcp-Session-Id", &sid),
        ],
        b"",
    );
    assert_eq!(status, 404, "bob cannot end alice's session either");
    let (status, _, body) = p.post(Some(&valid), Some(&sid), &call(6));
    assert_eq!(status, 200, "alice still can: {body}");
    assert!(!p.server_received().contains("call-5"));
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn a_required_scope_missing_is_403_insufficient_scope() {
    let dir = common::temp_dir("oauth-scope");
    let rsa = TestKey::rsa(&dir, "rsa1");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&rsa])).unwrap();
    let p = Endpoint::start(
        "oauth-scope",
        &[
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--issuer",
            ISSUER,
            "--audience",
            "https://mcp.test/mcp",
            "--resource-url",
            "https://mcp.test/mcp",
            "--required-scope",
            "mcp:admin",
        ],
    );
    let metadata = "https://mcp.test/.well-known/oauth-protected-resource/mcp";
    let (status, head, _) = p.post(None, None, INIT);
    assert_eq!(status, 401);
    assert!(
        header(&head, "www-authenticate")
            .unwrap()
            .contains("scope=\"mcp:admin\""),
        "{head}"
    );
    let token = rsa.sign(&claims("https://mcp.test/mcp", "alice"));
    let r = p.post(Some(&token), None, INIT);
    assert_refused(r, 403, Some("insufficient_scope"), metadata, "no mcp:admin");
    let mut c = claims("https://mcp.test/mcp", "alice");
    c["scope"] = "openid mcp:admin".into();
    let (status, _, body) = p.post(Some(&rsa.sign(&c)), None, INIT);
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = http_text(
        &format!("{}/.well-known/oauth-protected-resource", p.origin()),
        "GET",
        &[],
        b"",
    );
    assert!(
        body.contains(r#""scopes_supported":["mcp:admin"]"#),
        "{body}"
    );
    assert!(
        body.contains(r#""authorization_servers":["https://idp.test/realms/mcp"]"#),
        "the issuer by default: {body}"
    );
}

#[test]
fn a_jwks_url_rotates_keeps_cached_keys_when_down_and_fails_closed_without_any() {
    let dir = common::temp_dir("oauth-jwks-url");
    let (k1, k2, k3) = (
        TestKey::rsa(&dir, "k1"),
        TestKey::ec(&dir, "k2"),
        TestKey::rsa(&dir, "k3"),
    );
    let idp = JwksServer::start(jwks(&[&k1]));
    let p = Endpoint::start(
        "oauth-jwks-url",
        &["--jwks-url", &idp.url, "--issuer", ISSUER],
    );
    let aud = p.url.clone();
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1, "read once at start-up");
    let (status, _, body) = p.post(Some(&k1.sign(&claims(&aud, "alice"))), None, INIT);
    assert_eq!(status, 200, "{body}");

    // Rotation: a new kid is fetched without a restart.
    idp.serve(Some(jwks(&[&k1, &k2])));
    let (status, _, body) = p.post(Some(&k2.sign(&claims(&aud, "alice"))), None, INIT);
    assert_eq!(status, 200, "the new key was picked up: {body}");
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2);
    // Another unknown kid within the minute does not fetch again.
    let r = p.post(Some(&k3.sign(&claims(&aud, "alice"))), None, INIT);
    assert_refused(
        r,
        401,
        Some("invalid_token"),
        &p.metadata_url(),
        "unknown kid",
    );
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        2,
        "at most one fetch a minute"
    );

    drop(p);

    // The JWKS endpoint goes down after start-up: a fetch (for an unknown
    // kid) fails, and the cached keys keep serving.
    idp.serve(Some(jwks(&[&k1])));
    let p = Endpoint::start(
        "oauth-jwks-cached",
        &["--jwks-url", &idp.url, "--issuer", ISSUER],
    );
    idp.serve(None);
    let before = idp.hits.load(Ordering::SeqCst);
    let r = p.post(Some(&k3.sign(&claims(&p.url, "alice"))), None, INIT);
    assert_refused(
        r,
        401,
        Some("invalid_token"),
        &p.metadata_url(),
        "unknown kid, JWKS down",
    );
    assert_eq!(
        idp.hits.load(Ordering::SeqCst),
        before + 1,
        "it tried the JWKS"
    );
    let (status, _, body) = p.post(Some(&k1.sign(&claims(&p.url, "carol"))), None, INIT);
    assert_eq!(status, 200, "cached keys keep serving: {body}");
    drop(p);

    // Down from the start: nothing cached, every request fails closed.
    let p = Endpoint::start(
        "oauth-jwks-down",
        &["--jwks-url", &idp.url, "--issuer", ISSUER],
    );
    let (status, head, body) = p.post(Some(&k1.sign(&claims(&p.url, "alice"))), None, INIT);
    assert_eq!(status, 503, "{head}\n{body}");
    assert_eq!(p.server_received(), "", "nothing reached a server");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn jwks_flags_are_checked_at_start_up() {
    let dir = common::temp_dir("oauth-flags");
    let run = |args: &[&str]| {
        let out = Command::new(common::portcullis())
            .args([
                "--transport",
                "http",
                "--port",
                "0",
                "--server",
                "everything",
            ])
            .args(args)
            .args(["--", "true"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = dir.join("jwks.json");
    std::fs::write(&file, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
    let f = file.to_str().unwrap();
    let (code, err) = run(&["--jwks-file", f]);
    assert_ne!(code, Some(0));
    assert!(err.contains("require --issuer"), "{err}");
    let (code, err) = run(&["--jwks-file", f, "--issuer", ISSUER]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("none usable"),
        "an HMAC key is no signing key: {err}"
    );
    let (code, err) = run(&[
        "--jwks-file",
        f,
        "--issuer",
        ISSUER,
        "--jwt-algorithm",
        "HS256",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("HMAC algorithms are never accepted"), "{err}");
    let (code, err) = run(&["--issuer", ISSUER]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("--issuer requires --jwks-file or --jwks-url"),
        "{err}"
    );
    // With tokens, the token says who calls: no claims file besides.
    let claims = dir.join("claims.json");
    std::fs::write(
        &claims,
        r#"{"sub":"admin","iss":"https://idp.test/realms/mcp"}"#,
    )
    .unwrap();
    for jwks in ["--jwks-file", "--jwks-url"] {
        let (code, err) = run(&[
            jwks,
            f,
            "--issuer",
            ISSUER,
            "--principal-claims",
            claims.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "a usage error: {err}");
        assert!(
            err.contains("cannot be used with") && err.contains("'--principal-claims <FILE>'"),
            "{err}"
        );
    }
}

#[test]
fn the_official_sdk_client_authenticates_with_a_bearer_token_and_discovers_the_metadata() {
    let dir = common::temp_dir("oauth-sdk-keys");
    let rsa = TestKey::rsa(&dir, "rsa1");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&rsa])).unwrap();
    let p = Endpoint::start(
        "oauth-sdk",
        &[
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--issuer",
            ISSUER,
        ],
    );
    let token = rsa.sign(&claims(&p.url, "alice"));
    let out = Command::new("node")
        .arg(common::root().join("tests/e2e/sdk_oauth_client.mjs"))
        .current_dir(common::root())
        .env("PROXY_URL", &p.url)
        .env("TOKEN", &token)
        .stdin(Stdio::null())
        .output()
        .expect("node (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "the SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let with = &seen["with"];
    assert!(
        with["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "echo"),
        "{with}"
    );
    assert!(
        with["echo"].as_str().unwrap().contains("hello-oauth"),
        "{with}"
    );
    let without = &seen["without"];
    assert_eq!(without["status"], 401, "{without}");
    assert_eq!(without["error"]["code"], 401, "{without}");
    assert_eq!(
        without["resourceMetadataUrl"],
        p.metadata_url().as_str(),
        "{without}"
    );
    assert_eq!(without["metadata"]["resource"], p.url.as_str(), "{without}");
    assert_eq!(
        without["metadata"]["authorization_servers"],
        serde_json::json!([ISSUER]),
        "{without}"
    );
    let tapped = p.server_received();
    assert!(tapped.contains("hello-oauth"), "{tapped}");
    assert!(
        !tapped.contains(&token[..40]),
        "the token stays with the proxy"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cached_token_expires_with_its_exp() {
    let dir = common::temp_dir("oauth-expiry");
    let ec = TestKey::ec(&dir, "ec1");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&ec])).unwrap();
    let p = Endpoint::start(
        "oauth-expiry",
        &[
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--issuer",
            ISSUER,
            "--jwt-leeway",
            "0",
        ],
    );
    let mut c = claims(&p.url, "alice");
    c["exp"] = (now() + 2).into();
    let token = ec.sign(&c);
    let sid = p.open(&token);
    let (status, _, body) = p.post(Some(&token), Some(&sid), &call(2));
    assert_eq!(status, 200, "valid (and now cached): {body}");
    std::thread::sleep(Duration::from_millis(3100));
    let r = p.post(Some(&token), Some(&sid), &call(3));
    assert_refused(
        r,
        401,
        Some("invalid_token"),
        &p.metadata_url(),
        "expired in the cache",
    );
    assert!(!p.server_received().contains("call-3"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the proxy with `args` and expects it to stop at start-up: its exit
/// code and stderr. A proxy still running after 20 s is killed and fails
/// the test (a start-up check that regressed must not hang the suite).
fn refused_at_start_up(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(common::portcullis())
        .args([
            "--transport",
            "http",
            "--port",
            "0",
            "--server",
            "everything",
        ])
        .args(args)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after 20 s with {args:?}: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap())
}

#[test]
fn a_jwks_url_is_https_or_plain_http_to_this_machine() {
    // Plain http to another host: anyone on the path could swap the keys.
    let (code, err) =
        refused_at_start_up(&["--jwks-url", "http://example.com/jwks", "--issuer", ISSUER]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("error: --jwks-url `http://example.com/jwks` is plain http://"),
        "{err}"
    );
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("help:"), "{err}");
    // The message names the URL without its credentials.
    let (code, err) = refused_at_start_up(&[
        "--jwks-url",
        "http://jwks-reader:hunter2@10.1.2.3:8080/jwks",
        "--issuer",
        ISSUER,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`http://10.1.2.3:8080/jwks`"), "{err}");
    assert!(!err.contains("hunter2"), "a password in the error: {err}");
    let (code, err) =
        refused_at_start_up(&["--jwks-url", "ftp://idp.test/jwks", "--issuer", ISSUER]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not an https:// URL"), "{err}");

    // Plain http to this machine is fine: by name, and by ::1 (nothing
    // listens there: the proxy starts, and refuses requests until it can
    // read the keys).
    let dir = common::temp_dir("oauth-loopback-keys");
    let key = TestKey::ec(&dir, "ec1");
    let idp = JwksServer::start(jwks(&[&key]));
    let by_name = idp.url.replace("127.0.0.1", "localhost");
    let p = Endpoint::start(
        "oauth-loopback",
        &["--jwks-url", &by_name, "--issuer", ISSUER],
    );
    let (status, _, body) = p.post(Some(&key.sign(&claims(&p.url, "alice"))), None, INIT);
    assert_eq!(status, 200, "{body}");
    drop(p);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Endpoint::start(
        "oauth-loopback-v6",
        &[
            "--jwks-url",
            &format!("http://[::1]:{port}/jwks.json"),
            "--issuer",
            ISSUER,
        ],
    );
    let (status, _, _) = p.post(Some(&key.sign(&claims(&p.url, "alice"))), None, INIT);
    assert_eq!(status, 503, "accepted at start-up, no keys yet");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The decision log's `tool_call` lines, parsed.
fn logged_calls(log: &Path) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let calls: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .filter(|v: &serde_json::Value| v["type"] == "tool_call")
            .collect();
        // The writer thread flushes after each burst: wait for the two calls.
        if calls.len() >= 2 || Instant::now() > deadline {
            return calls;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn decision_log_lines_name_the_token_caller_by_sub_and_iss_only() {
    let dir = common::temp_dir("oauth-audit-keys");
    let rsa = TestKey::rsa(&dir, "rsa1");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&rsa])).unwrap();
    let log = dir.join("decisions.jsonl");
    let p = Endpoint::start(
        "oauth-audit",
        &[
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--issuer",
            ISSUER,
            "--audit-log",
            log.to_str().unwrap(),
        ],
    );
    let (alice, bob) = (
        rsa.sign(&claims(&p.url, "alice")),
        rsa.sign(&claims(&p.url, "bob")),
    );
    for (token, id) in [(&alice, 2), (&bob, 3)] {
        let sid = p.open(token);
        let (status, _, body) = p.post(Some(token), Some(&sid), &call(id));
        assert_eq!(status, 200, "{body}");
    }
    let calls = logged_calls(&log);
    let callers: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c["sub"].as_str().unwrap(), c["iss"].as_str().unwrap()))
        .collect();
    assert_eq!(callers, [("alice", ISSUER), ("bob", ISSUER)]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&alice[..40]) && !text.contains(&bob[..40]),
        "no token: {text}"
    );
    assert!(
        !text.contains("finance") && !text.contains("mcp:tools"),
        "no other claim: {text}"
    );
    assert!(!text.contains("\"local\""), "not the local user: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cached_token_is_refused_once_a_re_read_of_the_keys_drops_its_key() {
    let dir = common::temp_dir("oauth-withdrawn");
    let (old, new) = (TestKey::rsa(&dir, "old"), TestKey::ec(&dir, "new"));
    let idp = JwksServer::start(jwks(&[&old]));
    let p = Endpoint::start(
        "oauth-withdrawn",
        &["--jwks-url", &idp.url, "--issuer", ISSUER],
    );
    let alice = old.sign(&claims(&p.url, "alice"));
    let sid = p.open(&alice);
    let (status, _, body) = p.post(Some(&alice), Some(&sid), &call(2));
    assert_eq!(status, 200, "{body}");
    // The authorization server rotates: `old` is withdrawn. Nothing reads
    // the set yet, so the cached token still passes.
    idp.serve(Some(jwks(&[&new])));
    let (status, _, body) = p.post(Some(&alice), Some(&sid), &call(3));
    assert_eq!(status, 200, "{body}");
    // A token of the new key makes the proxy read the set again...
    let bob = new.sign(&claims(&p.url, "bob"));
    let (status, _, body) = p.post(Some(&bob), None, INIT);
    assert_eq!(status, 200, "the new key was read: {body}");
    // ... after which alice's cached token is validated again, and refused.
    let r = p.post(Some(&alice), Some(&sid), &call(4));
    assert_refused(
        r,
        401,
        Some("invalid_token"),
        &p.metadata_url(),
        "a cached token whose key was withdrawn",
    );
    let tapped = p.server_received();
    assert!(tapped.contains("call-3"), "{tapped}");
    assert!(!tapped.contains("call-4"), "{tapped}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_tokens_http_sessions_act_as_the_local_user_or_the_claims_file() {
    let dir = common::temp_dir("oauth-local");
    let log = dir.join("local.jsonl");
    let p = Endpoint::start("oauth-local", &["--audit-log", log.to_str().unwrap()]);
    for id in [2, 3] {
        // A session each: every one acts as the user running the proxy.
        let (status, head, body) = p.post(None, None, INIT);
        assert_eq!(status, 200, "{body}");
        let sid = header(&head, "mcp-session-id").unwrap();
        let (status, _, body) = p.post(None, Some(&sid), &call(id));
        assert_eq!(status, 200, "{body}");
    }
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    for c in logged_calls(&log) {
        assert_eq!(
            (c["sub"].as_str(), c["iss"].as_str()),
            (Some(&*user), Some("local")),
            "{c}"
        );
    }
    drop(p);

    let claims = dir.join("claims.json");
    std::fs::write(
        &claims,
        r#"{"sub":"svc-reporting","iss":"https://idp.test/realms/mcp","groups":["finance"]}"#,
    )
    .unwrap();
    let log = dir.join("claims.jsonl");
    let p = Endpoint::start(
        "oauth-local-claims",
        &[
            "--audit-log",
            log.to_str().unwrap(),
            "--principal-claims",
            claims.to_str().unwrap(),
        ],
    );
    for id in [2, 3] {
        let (status, head, body) = p.post(None, None, INIT);
        assert_eq!(status, 200, "{body}");
        let sid = header(&head, "mcp-session-id").unwrap();
        let (status, _, body) = p.post(None, Some(&sid), &call(id));
        assert_eq!(status, 200, "{body}");
    }
    let calls = logged_calls(&log);
    assert_eq!(calls.len(), 2);
    for c in calls {
        assert_eq!(c["sub"], "svc-reporting", "{c}");
        assert_eq!(c["iss"], ISSUER, "{c}");
    }
    assert!(!std::fs::read_to_string(&log).unwrap().contains("finance"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An endpoint enforcing a policy that reads the caller (`get-env` hidden
/// unless the caller is in `admins`; `echo` needs the `echo:use` scope and
/// admits two calls per hour per `principal.sub`), with its directory and a
/// signer of tokens `(sub, groups, scope)` for it.
#[allow(clippy::type_complexity)]
fn caller_policy_endpoint(
    name: &str,
) -> (
    PathBuf,
    Endpoint,
    Box<dyn Fn(&str, &[&str], &str) -> String>,
) {
    let dir = common::temp_dir(name);
    let rsa = TestKey::rsa(&dir, "rsa1");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&rsa])).unwrap();
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything {
  hide get-env unless "admins" in principal.groups
  default prompt deny
  prompt simple-prompt, args-prompt {}
  hide prompt args-prompt unless "admins" in principal.groups
  hide resource "demo://resource/static/document/architecture.md" unless "admins" in principal.groups
  tool echo {
    deny "Echo needs the echo:use scope" unless principal.scopes contains "echo:use"
    limit 2 per hour by principal.sub -> "Two echoes per hour per user"
  }
}
"#,
    )
    .unwrap();
    let p = Endpoint::start_with(
        name,
        &["-c", policy.to_str().unwrap()],
        &[
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--issuer",
            ISSUER,
            "--audience",
            "https://mcp.test/mcp",
            "--resource-url",
            "https://mcp.test/mcp",
        ],
    );
    let token = move |sub: &str, groups: &[&str], scope: &str| {
        let mut c = claims("https://mcp.test/mcp", sub);
        c["groups"] = serde_json::json!(groups);
        c["scope"] = scope.into();
        rsa.sign(&c)
    };
    (dir, p, Box::new(token))
}

/// Issue 14, the policy side, through the real binary and server: a policy
/// that reads the caller gives two principals different `tools/list`
/// answers (a per-caller hide), different decisions (a scope condition) and
/// their own budgets (a limit per `principal.sub`); what it denies never
/// reaches the server.
#[test]
fn callers_get_their_own_tool_lists_decisions_and_budgets() {
    let (_dir, p, token) = caller_policy_endpoint("oauth-principal-policy");
    let alice = token("alice", &["finance"], "mcp:tools echo:use");
    let root = token("root", &["admins"], "mcp:tools echo:use");
    let eve = token("eve", &["finance"], "mcp:tools");
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
    let (sa, sr, se) = (p.open(&alice), p.open(&root), p.open(&eve));
    let (status, _, body) = p.post(Some(&alice), Some(&sa), list);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""name":"echo""#), "{body}");
    assert!(
        !body.contains(r#""name":"get-env""#),
        "hidden from alice: {body}"
    );
    let (_, _, body) = p.post(Some(&root), Some(&sr), list);
    assert!(
        body.contains(r#""name":"get-env""#),
        "visible to an admin: {body}"
    );
    let get_env = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#;
    let (_, _, body) = p.post(Some(&alice), Some(&sa), get_env);
    assert!(
        body.contains(r#"Tool \"get-env\" is hidden by policy"#),
        "{body}"
    );
    // Resources and prompts per caller: each session's lists and requests.
    let prompts = r#"{"jsonrpc":"2.0","id":30,"method":"prompts/list","params":{}}"#;
    let (_, _, body) = p.post(Some(&alice), Some(&sa), prompts);
    assert!(body.contains(r#""name":"simple-prompt""#), "{body}");
    assert!(!body.contains("args-prompt"), "hidden from alice: {body}");
    assert!(
        !body.contains("resource-prompt"),
        "listed by no block under default prompt deny: {body}"
    );
    let (_, _, body) = p.post(Some(&root), Some(&sr), prompts);
    assert!(
        body.contains(r#""name":"args-prompt""#) && body.contains(r#""name":"simple-prompt""#),
        "{body}"
    );
    assert!(!body.contains("resource-prompt"), "{body}");
    let resources = r#"{"jsonrpc":"2.0","id":31,"method":"resources/list","params":{}}"#;
    let (_, _, body) = p.post(Some(&alice), Some(&sa), resources);
    assert!(body.contains("demo://resource/static/document/"), "{body}");
    assert!(
        !body.contains("architecture.md"),
        "hidden from alice: {body}"
    );
    let (_, _, body) = p.post(Some(&root), Some(&sr), resources);
    assert!(body.contains("architecture.md"), "{body}");
    let get = r#"{"jsonrpc":"2.0","id":32,"method":"prompts/get","params":{"name":"args-prompt","arguments":{"city":"Rome"}}}"#;
    let (_, _, body) = p.post(Some(&alice), Some(&sa), get);
    assert!(
        body.contains(r#"Prompt \"args-prompt\" is hidden by policy"#) && body.contains("-32003"),
        "{body}"
    );
    let (_, _, body) = p.post(Some(&root), Some(&sr), get);
    assert!(body.contains(r#""messages""#), "{body}");
    // Two echoes each: alice's and root's budgets are their own.
    for (who, t, sid) in [("alice", &alice, &sa), ("root", &root, &sr)] {
        for id in [10, 11] {
            let (_, _, body) = p.post(Some(t), Some(sid), &call(id));
            assert!(
                body.contains(&format!("Echo: call-{id}")),
                "{who} {id}: {body}"
            );
        }
        let (_, _, body) = p.post(Some(t), Some(sid), &call(12));
        assert!(
            body.contains("Two echoes per hour per user"),
            "{who}: {body}"
        );
    }
    // Without the scope: denied by the condition.
    let (_, _, body) = p.post(Some(&eve), Some(&se), &call(20));
    assert!(body.contains("Echo needs the echo:use scope"), "{body}");
    let received = p.server_received();
    assert!(
        !received.contains("call-12"),
        "a denied call reached the server"
    );
    assert!(
        !received.contains("call-20"),
        "a denied call reached the server"
    );
    assert!(!received.contains(r#""name":"get-env""#), "{received}");
    assert_eq!(received.matches("call-10").count(), 2, "{received}");
}

/// Issue 14 with the official TypeScript SDK client: one policy, three
/// callers, each with its own bearer token. Alice (an admin with the scope)
/// sees `get-env` and may call it, Bob (the scope, no admin group) sees no
/// `get-env` and is refused it, Eve (no scope) is refused every echo; the
/// limit per `principal.sub` admits two echoes for Alice AND two for Bob.
/// The server receives exactly what was admitted.
#[test]
fn the_official_sdk_client_sees_what_the_policy_gives_each_caller() {
    let (dir, p, token) = caller_policy_endpoint("oauth-sdk-principals");
    let tokens = serde_json::json!({
        "alice": token("alice", &["admins"], "mcp:tools echo:use"),
        "bob": token("bob", &["finance"], "mcp:tools echo:use"),
        "eve": token("eve", &["admins"], "mcp:tools"),
    });
    let out = Command::new("node")
        .arg(common::root().join("tests/e2e/sdk_principals.mjs"))
        .current_dir(common::root())
        .env("PROXY_URL", &p.url)
        .env("TOKENS", tokens.to_string())
        .env("ECHOES", "3")
        .stdin(Stdio::null())
        .output()
        .expect("node (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "the SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let lists = |who: &str| {
        seen[who]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "get-env")
    };
    assert!(lists("alice"), "{seen}");
    assert!(!lists("bob"), "hidden from bob: {seen}");
    assert!(lists("eve"), "{seen}");
    for who in ["alice", "bob"] {
        let echoes = seen[who]["echoes"].as_array().unwrap();
        for (n, e) in echoes.iter().take(2).enumerate() {
            assert_eq!(e["isError"], false, "{who}: {seen}");
            let text = e["text"].as_str().unwrap();
            assert!(text.contains(&format!("{who}-{}", n + 1)), "{who}: {seen}");
        }
        assert_eq!(echoes[2]["isError"], true, "{who}: {seen}");
        assert!(
            echoes[2]["text"]
                .as_str()
                .unwrap()
                .contains("Two echoes per hour per user"),
            "{who}: {seen}"
        );
    }
    for e in seen["eve"]["echoes"].as_array().unwrap() {
        assert_eq!(e["isError"], true, "{seen}");
        assert!(
            e["text"]
                .as_str()
                .unwrap()
                .contains("Echo needs the echo:use scope"),
            "{seen}"
        );
    }
    assert_ne!(seen["alice"]["getEnv"]["isError"], true, "{seen}");
    let bob_env = seen["bob"]["getEnv"].to_string();
    assert!(bob_env.contains("hidden by policy"), "{seen}");
    let received = p.server_received();
    for admitted in ["alice-1", "alice-2", "bob-1", "bob-2"] {
        assert_eq!(received.matches(admitted).count(), 1, "{received}");
    }
    for refused in ["alice-3", "bob-3", "eve-1", "eve-2", "eve-3"] {
        assert!(!received.contains(refused), "{refused}: {received}");
    }
    // get-env reached the server twice: the admins' calls (Alice, Eve), not
    // Bob's.
    assert_eq!(
        received.matches(r#""name":"get-env""#).count(),
        2,
        "{received}"
    );
    assert_ne!(seen["eve"]["getEnv"]["isError"], true, "{seen}");
    let _ = std::fs::remove_dir_all(&dir);
}
