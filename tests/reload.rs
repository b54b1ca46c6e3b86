//! Reloading a `-c FILE` policy while the proxy runs, with the real binary
//! and the real server-everything: a valid edit is applied, an invalid edit
//! is rejected (diagnostic printed, old policy still enforced), an atomic
//! rename and a Kubernetes-style symlink swap are both seen, and counters
//! keep their values across every reload.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Proxy, is_denial};

/// The policy with get-sum capped at `cap`; echo limited to 3 per sliding day
/// (no calendar boundary can reset it during the test).
fn policy(cap: u32) -> String {
    format!(
        "server everything {{\n  default allow\n  tool get-sum {{\n    deny \"get-sum is capped at {cap}\" when args.a > {cap}\n  }}\n  tool echo {{\n    limit 3 per 1d -> \"At most 3 echoes a day\"\n  }}\n}}\n"
    )
}

struct Client {
    proxy: Proxy,
    next: u64,
}

impl Client {
    fn call(&mut self, tool: &str, args: &str) -> String {
        self.next += 1;
        self.proxy.call(self.next, tool, args)
    }

    /// Calls get-sum with `a` until the answer is (not) a denial, for up to 15 s.
    fn wait_until(&mut self, a: u32, denied: bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.call("get-sum", &format!(r#"{{"a":{a},"b":1}}"#));
            if is_denial(&r) == denied {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "get-sum a={a}: still {r} after 15 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn assert_denied(&mut self, a: u32, yes: bool) {
        let r = self.call("get-sum", &format!(r#"{{"a":{a},"b":1}}"#));
        assert_eq!(is_denial(&r), yes, "get-sum a={a}: {r}");
    }
}

fn audit_lines(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

fn wait_for_audit(log: &Path, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while audit_lines(log, needle) < count {
        assert!(
            Instant::now() < deadline,
            "no {count} x {needle} in the decision log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn edits_renames_and_symlink_swaps_apply_and_bad_edits_are_rejected() {
    // Kubernetes mounts a ConfigMap as dir/everything.policy -> ..data/everything.policy,
    // ..data -> ..2026_v1; an update swaps ..data atomically to a new directory.
    let dir = common::temp_dir("reload");
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(dir.join("..v1/everything.policy"), policy(1000)).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/everything.policy", dir.join("everything.policy")).unwrap();
    let file = dir.join("everything.policy");
    let target = dir.join("..v1/everything.policy");
    let log = dir.join("decisions.jsonl");
    let mut c = Client {
        proxy: Proxy::everything(
            "reload-proxy",
            &[
                "-c",
                file.to_str().unwrap(),
                "--audit-log",
                log.to_str().unwrap(),
            ],
        ),
        next: 0,
    };
    c.proxy.initialize();
    c.assert_denied(1500, true);
    // Two of the three echoes a day, before any reload.
    for _ in 0..2 {
        let r = c.call("echo", r#"{"message":"hi"}"#);
        assert!(!is_denial(&r), "{r}");
    }

    // 1. An in-place edit.
    std::fs::write(&target, policy(2000)).unwrap();
    c.wait_until(1500, false);
    c.assert_denied(2500, true);
    wait_for_audit(&log, r#""status":"success""#, 1);

    // 2. An invalid edit: rejected, the old policy stays.
    std::fs::write(
        &target,
        "server everything {\n  tool get-sum {\n    deny \"x\" when args.a >\n  }\n}\n",
    )
    .unwrap();
    wait_for_audit(&log, r#""status":"failure""#, 1);
    c.assert_denied(1500, false);
    c.assert_denied(2500, true);

    // 3. An editor's atomic rename over the file.
    let tmp = dir.join("..v1/.everything.policy.swp");
    std::fs::write(&tmp, policy(3000)).unwrap();
    std::fs::rename(&tmp, &target).unwrap();
    c.wait_until(2500, false);
    c.assert_denied(3500, true);

    // 4. The symlink swap: a new directory, then ..data replaced atomically.
    std::fs::create_dir(dir.join("..v2")).unwrap();
    std::fs::write(dir.join("..v2/everything.policy"), policy(4000)).unwrap();
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    c.wait_until(3500, false);
    c.assert_denied(4500, true);
    wait_for_audit(&log, r#""status":"success""#, 3);

    // Counters survived three reloads: one echo left of three.
    let r = c.call("echo", r#"{"message":"third"}"#);
    assert!(!is_denial(&r), "{r}");
    let r = c.call("echo", r#"{"message":"fourth"}"#);
    assert!(is_denial(&r), "{r}");
    assert!(r.contains("At most 3 echoes a day"), "{r}");

    let (code, stderr) = c.proxy.finish();
    assert_eq!(code, 0, "{stderr}");
    // The rejected edit's full diagnostic, with file, line and column.
    assert!(
        stderr.contains("everything.policy:4:3\n"),
        "the diagnostic names the line: {stderr}"
    );
    assert!(
        stderr.contains("error: expected a value or a path (args.name, principal.name), found `}`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rejected (config validation failed with")
            && stderr.contains("error(s)); the previous policy stays in force"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("policy reloaded from").count(),
        3,
        "{stderr}"
    );
    // Decision-log lines after each reload carry the new digest.
    let lines = std::fs::read_to_string(&log).unwrap();
    let digests: std::collections::BTreeSet<&str> = lines
        .lines()
        .filter_map(|l| l.split("\"policy_digest\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(digests.len(), 4, "{lines}");
}

#[test]
fn no_reload_keeps_the_policy_read_at_start() {
    let dir = common::temp_dir("no-reload");
    let file = dir.join("everything.policy");
    std::fs::write(&file, policy(1000)).unwrap();
    let mut c = Client {
        proxy: Proxy::everything(
            "no-reload-proxy",
            &["-c", file.to_str().unwrap(), "--no-reload"],
        ),
        next: 0,
    };
    c.proxy.initialize();
    c.assert_denied(1500, true);
    std::fs::write(&file, policy(2000)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    c.assert_denied(1500, true);
    let (code, stderr) = c.proxy.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("reloaded"), "{stderr}");
}
