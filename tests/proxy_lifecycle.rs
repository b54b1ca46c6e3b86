//! Lifecycle of the stdio proxy with real child processes: exit codes,
//! signals, client disconnects, dead servers, timeouts, no orphans, the
//! decision log, and counters under pipelined load.

mod common;

use std::time::{Duration, Instant};

use common::{Proxy, error_code, is_denial};

const POLICY: &[&str] = &["--server", "everything", "--log-level", "error"];

fn with(args: &[&str]) -> Vec<&'static str> {
    POLICY
        .iter()
        .chain(args)
        .map(|s| -> &'static str { Box::leak(s.to_string().into_boxed_str()) })
        .collect()
}

#[test]
fn the_childs_exit_code_is_passed_through() {
    for code in ["0", "3", "7"] {
        let script = format!("exit {code}");
        let p = Proxy::command("exit", &with(&["--", "sh", "-c", &script]));
        let (got, err) = p.finish();
        assert_eq!(got.to_string(), code, "{err}");
    }
}

#[test]
fn requests_in_flight_get_an_error_when_the_server_dies() {
    // The "server" reads one line and exits 3 without answering.
    let mut p = Proxy::command("dies", &with(&["--", "sh", "-c", "read line; exit 3"]));
    p.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#);
    let answer = p.response("1");
    assert_eq!(error_code(&answer), Some(-32000), "{answer}");
    assert!(answer.contains("exited (status 3)"), "{answer}");
    let started = Instant::now();
    let (code, _) = p.finish();
    assert_eq!(code, 3);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn sigterm_is_forwarded_and_the_childs_status_returned() {
    let p = Proxy::command(
        "sigterm",
        &with(&[
            "--",
            "sh",
            "-c",
            "trap 'exit 42' TERM; while :; do sleep 0.05; done",
        ]),
    );
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    let (code, err) = p.finish();
    assert_eq!(code, 42, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn client_disconnect_closes_the_servers_stdin_then_terminates_it() {
    // `cat` exits by itself when its stdin closes.
    let started = Instant::now();
    let (code, _) = Proxy::command("eof-cat", &with(&["--", "cat"])).finish();
    assert_eq!(code, 0);
    assert!(started.elapsed() < Duration::from_secs(3));
    // `sleep` ignores stdin: after the grace period it gets SIGTERM.
    let started = Instant::now();
    let (code, _) = Proxy::command(
        "eof-sleep",
        &with(&["--shutdown-grace", "0.3", "--", "sleep", "30"]),
    )
    .finish();
    assert_eq!(code, 128 + 15);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn no_orphans_are_left_behind() {
    let marker = format!("{}.5", 300 + std::process::id() % 600);
    let script = format!("sleep {marker} & sleep {marker} & wait");
    let p = Proxy::command(
        "orphans",
        &with(&["--shutdown-grace", "0.2", "--", "sh", "-c", &script]),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (_, _) = p.finish();
    std::thread::sleep(Duration::from_millis(200));
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&format!("sleep {marker}")))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "orphans: {left:?}");
}

#[test]
fn a_timed_out_call_is_answered_and_its_counters_rolled_back() {
    // A server that never answers. trigger-long-running-operation is limited to 3 per minute.
    let mut p = Proxy::command(
        "timeout",
        &with(&[
            "--upstream-timeout",
            "0.4",
            "--",
            "sh",
            "-c",
            "cat > /dev/null",
        ]),
    );
    let call = |id: u64| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"trigger-long-running-operation","arguments":{{}}}}}}"#
        )
    };
    for id in 1..=3 {
        p.send(&call(id));
    }
    p.send(&call(4));
    assert!(
        is_denial(&p.response("4")),
        "the fourth call is over the limit while three are in flight"
    );
    for id in 1..=3 {
        let a = p.response(&id.to_string());
        assert_eq!(error_code(&a), Some(-32001), "{a}");
    }
    // The three timed-out calls gave their units back: three more fit.
    for id in 5..=7 {
        p.send(&call(id));
    }
    p.send(&call(8));
    assert!(is_denial(&p.response("8")));
    for id in 5..=7 {
        assert_eq!(error_code(&p.response(&id.to_string())), Some(-32001));
    }
}

#[test]
fn pipelined_calls_racing_a_limit_allow_exactly_the_limit() {
    // Stay clear of a minute boundary: the policy's windows are calendar minutes.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if secs > 50 {
        std::thread::sleep(Duration::from_secs(61 - secs));
    }
    let mut p = Proxy::everything("race", POLICY);
    p.initialize();
    let mut batch = String::new();
    for id in 1000..1050 {
        batch.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"trigger-long-running-operation\",\"arguments\":{{\"duration\":0.1,\"steps\":1}}}}}}\n"
        ));
    }
    p.send(batch.trim_end());
    let answers: Vec<String> = (1000..1050).map(|id| p.response(&id.to_string())).collect();
    let denied = answers.iter().filter(|a| is_denial(a)).count();
    assert_eq!(
        denied, 47,
        "exactly 3 of 50 concurrent calls fit the 3-per-minute limit"
    );
    let completed = answers
        .iter()
        .filter(|a| a.contains("Long running operation completed"))
        .count();
    assert_eq!(completed, 3);
    let forwarded = p
        .server_received()
        .iter()
        .filter(|l| l.contains("trigger-long-running-operation"))
        .count();
    assert_eq!(forwarded, 3, "only the admitted calls reached the server");
    // The global limit (60 per minute) holds across tools: 3 calls used, 57 echo calls fit.
    let mut lines = String::new();
    for id in 2000..2060 {
        lines.push_str(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"message\":\"m{id}\"}}}}}}\n"));
    }
    p.send(lines.trim_end());
    let denied = (2000..2060)
        .filter(|id| is_denial(&p.response(&id.to_string())))
        .count();
    assert_eq!(denied, 3, "60 per minute across every tool");
    assert_eq!(p.finish().0, 0);
}

#[test]
fn the_decision_log_has_one_line_per_decision_and_no_argument_values() {
    let dir = common::temp_dir("audit");
    let log = dir.join("decisions.jsonl");
    let log_s = log.display().to_string();
    let mut p = Proxy::everything("audit", &with(&["--audit-log", &log_s]));
    p.initialize();
    p.call(1, "echo", r#"{"message":"a secret value"}"#);
    p.call(2, "get-sum", r#"{"a":5000,"b":1}"#);
    p.call(3, "get-env", "{}");
    p.send(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","Name":"get-env"}}"#);
    p.response("4");
    assert_eq!(p.finish().0, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("\"type\":\"startup\""), "{text}");
    assert!(
        lines.last().unwrap().contains("\"type\":\"shutdown\"")
            && lines.last().unwrap().contains("\"exit_code\":0"),
        "{text}"
    );
    let calls: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("\"type\":\"tool_call\""))
        .collect();
    assert_eq!(calls.len(), 4, "{text}");
    assert!(
        calls[0].contains("\"tool\":\"echo\",\"effect\":\"allow\",\"outcome\":\"allowed\""),
        "{}",
        calls[0]
    );
    assert!(calls[0].contains("\"args_sha256\":\""), "{}", calls[0]);
    assert!(
        calls[1].contains("\"effect\":\"deny\",\"outcome\":\"rule\",\"rule\":\"small sums only\""),
        "{}",
        calls[1]
    );
    assert!(
        calls[1].contains("\"message\":\"get-sum is limited to operands up to 1000\""),
        "{}",
        calls[1]
    );
    assert!(calls[2].contains("\"outcome\":\"hidden\""), "{}", calls[2]);
    assert!(
        calls[3].contains("\"outcome\":\"rejected\",\"code\":-32602"),
        "{}",
        calls[3]
    );
    for l in &lines {
        assert!(
            l.contains("\"server\":\"everything\"") && l.contains("\"policy_digest\":\""),
            "{l}"
        );
    }
    assert!(
        !text.contains("secret value") && !text.contains("5000"),
        "argument values leaked into the log:\n{text}"
    );
}

#[test]
fn flags_are_checked_like_interceptss() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::portcullis())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--header", "X: y", "--", "cat"]);
    assert_eq!(
        (code, err.lines().next().unwrap_or("")),
        (1, "error: --header requires --upstream")
    );
    let (code, err) = run(&["--port", "8080", "--", "cat"]);
    assert_eq!(
        (code, err.lines().next().unwrap_or("")),
        (
            1,
            "error: --bind and --port require --transport http or --transport sse"
        )
    );
    let (code, err) = run(&["--server", "nope", "--", "cat"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no embedded policy for server `nope`")
            && err.contains("this binary embeds: everything"),
        "{err}"
    );
    let (code, err) = run(&["--server", "everything"]);
    assert_eq!(code, 1);
    assert!(err.contains("no MCP server to run"), "{err}");
    let (code, err) = run(&["--server", "everything", "--", "/nonexistent/server"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot start /nonexistent/server"), "{err}");
    let (code, err) = run(&["--upstream", "http://127.0.0.1:1/mcp", "--", "cat"]);
    assert_eq!(code, 1);
    assert!(err.contains("exclude each other"), "{err}");
    let (code, err) = run(&["--transport", "sse", "--", "cat"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--transport sse") && err.contains("--transport http"),
        "{err}"
    );
    let (code, err) = run(&[
        "--server",
        "everything",
        "--upstream",
        "ftp://example.com/mcp",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not an http:// or https:// URL"), "{err}");
    let (code, err) = run(&[
        "--server",
        "everything",
        "--upstream",
        "https://me:hunter2@example.com/mcp",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("credentials") && !err.contains("hunter2"),
        "{err}"
    );
    let (code, err) = run(&[
        "--server",
        "everything",
        "--upstream",
        "http://127.0.0.1:1/mcp",
        "--header",
        "bad header",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not `Name: value`"), "{err}");
}

/// `sh -c 'node server-everything; sleep 600'`: a real MCP server, led by a
/// shell that outlives it (the server exits on stdin EOF, the shell does
/// not), so only the parent-death signal stops the shell when the proxy is
/// killed.
fn lingering_server() -> String {
    format!(
        "node '{}'; sleep 600",
        common::server_everything().display()
    )
}

#[test]
fn a_killed_proxy_takes_its_server_with_it() {
    let script = lingering_server();
    let mut p = Proxy::command("pdeathsig", &with(&["--", "sh", "-c", &script]));
    let init = p.initialize();
    assert!(init.contains("\"result\""), "{init}");
    let proxy = p.child.id();
    let server = common::wait_for_child(proxy, Duration::from_secs(10)).expect("the server runs");
    assert!(
        common::group_members(server).len() >= 2,
        "the shell and node lead their own group"
    );

    p.child.kill().unwrap(); // SIGKILL: no chance to clean up
    p.child.wait().unwrap();
    let left = common::wait_for_group_gone(server, Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "still running 5 s after the proxy was killed: {left:?}"
    );
}
