//! Per-caller limits across processes: `limit N per hour by principal.sub`
//! counts each caller once however many proxies they use, when the proxies
//! share a store. Four real proxies over stdio in front of the real
//! `@modelcontextprotocol/server-everything` (two with caller A's
//! `--principal-claims`, two with caller B's), sharing a SQLite
//! `--state-dir`, and then a real `redis-server`.

mod common;

use std::path::Path;

use common::{Proxy, Redis, is_denial, temp_dir};

/// Three echoes per hour for each user (issuer and subject).
const POLICY: &str = "server limited {\n  tool echo {\n    limit 3 per hour by principal.sub -> \"At most 3 echoes per hour for each user\"\n  }\n}\n";

fn proxy(name: &str, policy: &Path, claims: &Path, state: &[&str]) -> Proxy {
    let (policy, claims) = (policy.display().to_string(), claims.display().to_string());
    let mut args = vec![
        "-c",
        &policy,
        "--principal-claims",
        &claims,
        "--log-level",
        "warn",
    ];
    args.extend(state);
    let mut p = Proxy::everything(name, &args);
    p.initialize();
    p
}

fn echo(p: &mut Proxy, id: u64, text: &str) -> String {
    p.call(id, "echo", &format!(r#"{{"message":"{text}"}}"#))
}

fn admitted(p: &mut Proxy, id: u64, text: &str) {
    let r = echo(p, id, text);
    assert!(!is_denial(&r) && r.contains(text), "admitted: {r}");
}

fn refused(p: &mut Proxy, id: u64, text: &str) {
    let r = echo(p, id, text);
    assert!(is_denial(&r), "refused: {r}");
    assert!(r.contains("At most 3 echoes per hour for each user"), "{r}");
    assert!(
        !p.server_received().iter().any(|l| l.contains(text)),
        "a refused call never reaches the server"
    );
}

/// Caller A's three echoes split over A's two proxies, then A is refused on
/// either; caller B, on two other proxies, still has all three.
fn per_caller_limits_across_proxies(name: &str, state: &[&str]) {
    let dir = temp_dir(name);
    let policy = dir.join("limited.policy");
    std::fs::write(&policy, POLICY).unwrap();
    let alice = dir.join("alice.json");
    std::fs::write(&alice, r#"{"sub":"alice","iss":"https://idp.test"}"#).unwrap();
    let bob = dir.join("bob.json");
    std::fs::write(&bob, r#"{"sub":"bob","iss":"https://idp.test"}"#).unwrap();
    let mut a1 = proxy(&format!("{name}-a1"), &policy, &alice, state);
    let mut a2 = proxy(&format!("{name}-a2"), &policy, &alice, state);
    let mut b1 = proxy(&format!("{name}-b1"), &policy, &bob, state);
    let mut b2 = proxy(&format!("{name}-b2"), &policy, &bob, state);

    admitted(&mut a1, 1, "alice one");
    admitted(&mut a2, 1, "alice two");
    admitted(&mut a1, 2, "alice three");
    refused(&mut a1, 3, "alice four");
    refused(&mut a2, 2, "alice five");

    admitted(&mut b2, 1, "bob one");
    admitted(&mut b1, 1, "bob two");
    admitted(&mut b2, 2, "bob three");
    refused(&mut b1, 2, "bob four");
    // Bob's calls did not give Alice any back.
    refused(&mut a2, 3, "alice six");

    for p in [a1, a2, b1, b2] {
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn per_caller_limits_hold_across_proxies_sharing_sqlite() {
    let state = temp_dir("principal-sqlite-state");
    let s = state.display().to_string();
    per_caller_limits_across_proxies("principal-sqlite", &["--state-dir", &s]);
    assert!(state.join("portcullis-counters.sqlite").exists());
}

#[test]
fn per_caller_limits_hold_across_proxies_sharing_redis() {
    let r = Redis::start("principal-redis-data");
    let dsn = r.dsn();
    per_caller_limits_across_proxies("principal-redis", &["--state-dsn", &dsn]);
}
