//! What a bearer JWT adds to a request of the local HTTP endpoint:
//! `cargo bench -p portcullis-proxy --bench jwt` (needs the openssl CLI).
//!
//! - `seen token`: a token validated before (the per-token cache): the
//!   figure issue 14 bounds (under 2 µs);
//! - `new token`: full validation (RS256 signature, claims, principal), what
//!   the first request with a token pays.

use std::hint::black_box;
use std::process::Command;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_proxy::jwt::{DEFAULT_ALGORITHMS, JwksSource, JwtOptions, Verifier};
use portcullis_proxy::log::{Level, Log};

/// Polls a future that completes without waiting (a cache hit, or a
/// validation with the keys at hand) without a runtime around it.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the verifier waited"),
    }
}

fn setup() -> (std::sync::Arc<Verifier>, impl Fn(u64) -> String) {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(out.status.success());
        out.stdout
    };
    let k = key.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        k,
    ]);
    let modulus = String::from_utf8(openssl(&["rsa", "-in", k, "-noout", "-modulus"])).unwrap();
    let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n);
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        format!(r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{n}","e":"AQAB"}}]}}"#),
    )
    .unwrap();
    let opts = JwtOptions {
        jwks: JwksSource::File(jwks),
        issuer: "https://idp.example".into(),
        audiences: vec!["https://mcp.example/mcp".into()],
        algorithms: DEFAULT_ALGORITHMS.to_vec(),
        required_scopes: vec!["mcp:tools".into()],
        leeway: Duration::from_secs(30),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let log = Log {
        level: Level::Error,
    };
    let verifier = std::sync::Arc::new(rt.block_on(Verifier::new(opts, log)).unwrap());
    let signing = EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let sign = move |i: u64| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("k1".into());
        let claims = serde_json::json!({
            "iss": "https://idp.example", "aud": "https://mcp.example/mcp",
            "sub": format!("user-{i}"), "exp": now + 3600, "iat": now,
            "scope": "openid profile mcp:tools", "groups": ["finance", "eng"],
            "email": "someone@example.com", "jti": i,
        });
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&h, &claims, &signing).unwrap()
        )
    };
    (verifier, sign)
}

fn bench(c: &mut Criterion) {
    let (verifier, sign) = setup();
    let seen = sign(0);
    assert!(ready(verifier.authenticate(Some(seen.as_bytes()))).is_ok());
    c.bench_function("jwt/seen token", |b| {
        b.iter(|| {
            black_box(ready(
                verifier.authenticate(Some(black_box(seen.as_bytes()))),
            ))
        })
    });
    let mut i = 1;
    c.bench_function("jwt/new token", |b| {
        b.iter_batched(
            || {
                i += 1;
                sign(i)
            },
            |t| black_box(ready(verifier.authenticate(Some(t.as_bytes())))),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
