//! The proxy: `portcullis [flags] -- CMD ARGS...`.

use std::sync::Arc;
use std::time::Duration;

use portcullis_runtime::counters::MemoryCounters;
use portcullis_runtime::policy::{FailMode, Policy};
use portcullis_runtime::proxy::audit::{AuditLog, Event, Identity};
use portcullis_runtime::proxy::http::server::{self, Backend, ServerOptions};
use portcullis_runtime::proxy::http::stdio_client::{self, UpstreamOptions};
use portcullis_runtime::proxy::http::upstream::parse_header;
use portcullis_runtime::proxy::log::{Level, Log};
use portcullis_runtime::proxy::session::Session;
use portcullis_runtime::proxy::stdio::{self, StdioOptions};

use crate::cli::{Cli, FailModeArg, ProxyArgs, Transport};
use crate::embedded;

fn fail(msg: &str, help: &str) -> i32 {
    eprintln!("error: {msg}");
    if !help.is_empty() {
        eprintln!("  = help: {help}");
    }
    1
}

/// Picks the policy: `--server`, `-c FILE`, or the only embedded one.
pub fn select_policy(
    server: Option<&str>,
    config: Option<&std::path::Path>,
) -> Result<&'static dyn Policy, (String, String)> {
    if let Some(path) = config {
        return load_dynamic(path);
    }
    let names = || {
        embedded::POLICIES
            .iter()
            .map(|p| p.meta().server)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match server {
        Some(name) => embedded::POLICIES
            .iter()
            .copied()
            .find(|p| p.meta().server == name)
            .ok_or_else(|| {
                (
                    format!("no embedded policy for server `{name}`"),
                    format!("this binary embeds: {}", names()),
                )
            }),
        None => match embedded::POLICIES.len() {
            1 => Ok(embedded::POLICIES[0]),
            0 => Err((
                "this binary embeds no policy".into(),
                "pass -c FILE, or build with a policy directory".into(),
            )),
            _ => Err((
                "this binary embeds several policies; choose one".into(),
                format!("--server NAME, one of: {}", names()),
            )),
        },
    }
}

#[cfg(feature = "dynamic")]
fn load_dynamic(path: &std::path::Path) -> Result<&'static dyn Policy, (String, String)> {
    let inputs = portcullis_compiler::load_file_with_includes(path)
        .map_err(|e| (format!("reading {}: {e}", path.display()), String::new()))?;
    let output = portcullis_compiler::compile(&inputs);
    if !output.diagnostics.0.is_empty() {
        eprintln!("{}", output.render());
    }
    let set = output.into_set().map_err(|o| {
        (
            format!(
                "config validation failed with {} error(s)",
                o.diagnostics.error_count()
            ),
            "fix the errors above; `portcullis validate -c FILE` shows them too".into(),
        )
    })?;
    let ir = set
        .servers
        .into_iter()
        .next()
        .ok_or_else(|| ("the file holds no policy".to_string(), String::new()))?;
    let evaluator = portcullis_compiler::eval::Evaluator::new(ir, &set.sources);
    // The proxy keeps its policy for the life of the process.
    Ok(Box::leak(Box::new(evaluator)))
}

#[cfg(not(feature = "dynamic"))]
fn load_dynamic(_: &std::path::Path) -> Result<&'static dyn Policy, (String, String)> {
    Err((
        "this is a hardened build: it cannot load policy files at run time".into(),
        "use an embedded policy (--server NAME); see `portcullis policies`".into(),
    ))
}

/// Runs the proxy; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let a = &cli.proxy;
    let Some(level) = Level::parse(&a.log_level) else {
        return fail(
            &format!("unknown log level `{}`", a.log_level),
            "use error, warn, info or debug",
        );
    };
    let log = Log { level };
    // Intercept's cross-checks, same order and meaning.
    if (a.bind.is_some() || a.port.is_some()) && a.transport == Transport::Stdio {
        return fail(
            "--bind and --port require --transport http or --transport sse",
            "",
        );
    }
    if !a.header.is_empty() && a.upstream.is_none() {
        return fail("--header requires --upstream", "");
    }
    if a.transport == Transport::Sse {
        return fail(
            "a local legacy HTTP+SSE endpoint (--transport sse) is not provided",
            "serve Streamable HTTP with --transport http; legacy HTTP+SSE servers work as --upstream URL (a URL whose path ends in /sse)",
        );
    }
    if a.upstream.is_some() && !cli.server_command.is_empty() {
        return fail(
            "--upstream and a command after `--` exclude each other",
            "give either the URL of a remote MCP server or the command of a local one",
        );
    }
    if a.state_dir.is_some() || a.state_dsn.is_some() {
        return fail(
            "persistent counter stores (--state-dir, --state-dsn) are not available in this version; counters are kept in memory",
            "remove the flag to use in-memory counters",
        );
    }
    if cli.server_command.is_empty() && a.upstream.is_none() {
        return fail(
            "no MCP server to run",
            "portcullis [--server NAME | -c FILE] [flags] (-- CMD ARGS... | --upstream URL)",
        );
    }
    let upstream = match a.upstream.as_deref().map(|u| upstream_options(u, a)) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err((msg, help))) => return fail(&msg, &help),
    };
    let policy = match select_policy(a.server.as_deref(), a.config.as_deref()) {
        Ok(p) => p,
        Err((msg, help)) => return fail(&msg, &help),
    };
    let session_id = portcullis_runtime::proxy::random_session_id();
    let meta = policy.meta();
    let audit = match &a.audit_log {
        None => None,
        Some(path) => {
            let identity = Identity {
                server: meta.server,
                digest: meta.digest,
                pid: std::process::id(),
                // Over HTTP each tool_call line names its own MCP session.
                session: if a.transport == Transport::Http {
                    "http".to_string()
                } else {
                    format!("{session_id:016x}")
                },
            };
            match AuditLog::open(path, identity) {
                Ok((log, handle)) => Some((log, handle)),
                Err(e) => {
                    return fail(
                        &format!("cannot open the audit log {}: {e}", path.display()),
                        "",
                    );
                }
            }
        }
    };
    let fail_mode = match a.state_fail_mode {
        FailModeArg::Closed => FailMode::Closed,
        FailModeArg::Open => FailMode::Open,
    };
    let counters = Arc::new(MemoryCounters::new());
    let audit_log = audit.as_ref().map(|(l, _)| l.clone());
    if let Some(l) = &audit_log {
        l.record(Event::Startup {
            upstream: match &a.upstream {
                Some(url) => url.clone(),
                None => cli.server_command[0].to_string_lossy().into_owned(),
            },
        });
    }
    let secs = |s: f64| (s > 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}"), ""),
    };
    let result = if a.transport == Transport::Http {
        let addr = match listen_addr(a.bind.as_deref(), a.port.unwrap_or(8080)) {
            Ok(addr) => addr,
            Err(e) => return fail(&e, "--bind takes an IP address, e.g. 127.0.0.1 or ::1"),
        };
        let opts = ServerOptions {
            addr,
            backend: match upstream {
                Some(u) => Backend::Url(u),
                None => Backend::Command(cli.server_command.clone()),
            },
            max_message_bytes: a.max_message_size,
            request_timeout: secs(a.upstream_timeout),
            grace: secs(a.shutdown_grace).unwrap_or(Duration::ZERO),
            allowed_origins: a.allow_origin.clone(),
            max_sessions: a.max_sessions.max(1),
            idle_timeout: secs(a.session_idle_timeout).unwrap_or(Duration::MAX),
        };
        let audit = audit_log.clone();
        let factory = Box::new(move |id: u64| {
            Session::new(policy, counters.clone(), id, fail_mode, audit.clone(), log)
        });
        log.info(format_args!(
            "enforcing policy `{}` (sha256:{})",
            meta.server,
            &meta.digest[..16]
        ));
        runtime.block_on(server::run(opts, factory, log))
    } else {
        let session = Arc::new(Session::new(
            policy,
            counters,
            session_id,
            fail_mode,
            audit_log.clone(),
            log,
        ));
        match upstream {
            Some(u) => runtime.block_on(stdio_client::run(session, u, log)),
            None => {
                let opts = StdioOptions {
                    command: cli.server_command.clone(),
                    max_message_bytes: a.max_message_size,
                    upstream_timeout: secs(a.upstream_timeout),
                    grace: secs(a.shutdown_grace).unwrap_or(Duration::ZERO),
                };
                runtime.block_on(stdio::run(session, opts, log))
            }
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => fail(
            &e.to_string(),
            if a.transport == Transport::Http {
                "check --bind and --port"
            } else {
                "check the command after `--`"
            },
        ),
    };
    // Blocked reads of our stdin must not keep the process alive.
    runtime.shutdown_background();
    if let Some((l, handle)) = audit {
        l.record(Event::Shutdown { exit_code: code });
        drop(l);
        drop(audit_log);
        let _ = handle.join();
    }
    code
}

/// `--upstream URL` and its flags.
fn upstream_options(url: &str, a: &ProxyArgs) -> Result<UpstreamOptions, (String, String)> {
    let uri: portcullis_runtime::proxy::http::upstream::Url = url.parse().map_err(|e| {
        (
            format!("--upstream `{url}` is not a URL: {e}"),
            "e.g. --upstream https://mcp.example.com/mcp".to_string(),
        )
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err((
            format!("--upstream `{url}` is not an http:// or https:// URL"),
            "e.g. --upstream https://mcp.example.com/mcp".to_string(),
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err((
            format!(
                "--upstream `{}` carries credentials in the URL",
                redact_userinfo(url)
            ),
            "pass them as a header, e.g. --header \"Authorization: Bearer ...\"".to_string(),
        ));
    }
    let mut headers = Vec::new();
    for h in &a.header {
        headers.push(parse_header(h).map_err(|e| (e, "--header \"Name: value\"".to_string()))?);
    }
    let secs = |s: f64| (s > 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s));
    Ok(UpstreamOptions {
        legacy: uri.path().trim_end_matches('/').ends_with("/sse"),
        url: uri,
        headers,
        max_message_bytes: a.max_message_size,
        request_timeout: secs(a.upstream_timeout),
        connect_timeout: secs(a.connect_timeout).unwrap_or(Duration::from_secs(10)),
        grace: secs(a.shutdown_grace).unwrap_or(Duration::ZERO),
    })
}

/// `--bind` and `--port` to a socket address.
fn listen_addr(bind: Option<&str>, port: u16) -> Result<std::net::SocketAddr, String> {
    let host = bind.unwrap_or("127.0.0.1");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h
            .parse()
            .map_err(|_| format!("--bind `{h}` is not an IP address"))?,
    };
    Ok(std::net::SocketAddr::new(ip, port))
}

/// `scheme://user:pass@host/...` without the `user:pass@`.
fn redact_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}
