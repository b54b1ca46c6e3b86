//! The proxy: `portcullis [flags] -- CMD ARGS...`.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::Principal;
use portcullis_core::counters::{Counters, MemoryCounters};
use portcullis_core::policy::{FailMode, Policy};
use portcullis_proxy::audit::{AuditLog, Event, Identity};
use portcullis_proxy::http::server::{self, Backend as HttpBackend, ClientToken, ServerOptions};
use portcullis_proxy::http::stdio_client::{self, UpstreamOptions};
use portcullis_proxy::http::upstream::parse_header;
use portcullis_proxy::log::{Level, Log};
use portcullis_proxy::metrics::{self, Metrics};
use portcullis_proxy::session::{PolicySlot, Session};
use portcullis_proxy::state::redis::{RedisOptions, RedisStore};
use portcullis_proxy::state::sqlite::SqliteStore;
use portcullis_proxy::state::{Backend, Store};
use portcullis_proxy::stdio::{self, StdioOptions};

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
        None => match &embedded::POLICIES[..] {
            [only] => Ok(*only),
            [] => Err((
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
    crate::reload::load(path)
        .map(|l| l.policy)
        .map_err(report_load_error)
}

/// Prints a load error's diagnostics; returns the message and a help text.
#[cfg(feature = "dynamic")]
fn report_load_error(e: crate::reload::LoadError) -> (String, String) {
    if e.diagnostics.trim().is_empty() {
        return (e.message, String::new());
    }
    eprintln!("{}", e.diagnostics);
    (
        e.message,
        "fix the errors above; `portcullis validate -c FILE` shows them too".into(),
    )
}

#[cfg(not(feature = "dynamic"))]
fn load_dynamic(_: &std::path::Path) -> Result<&'static dyn Policy, (String, String)> {
    Err((
        "this is a hardened build: it cannot load policy files at run time".into(),
        "use an embedded policy (--server NAME); see `portcullis policies`".into(),
    ))
}

/// The counter store the flags ask for: in memory (default), SQLite
/// (`--state-dir`) or Redis (`--state-dsn`). A persistent store is also
/// returned as itself, to be closed (queued rollbacks applied) at exit.
/// Errors name the file or the DSN, its password redacted. With them, the
/// approval records of the operator flow: in the SQLite file with
/// `--state-dir`, in Redis with `--state-dsn`, in memory without a store.
#[allow(clippy::type_complexity)]
fn open_counters(
    a: &crate::cli::ProxyArgs,
    log: Log,
) -> Result<
    (
        Arc<dyn Counters>,
        Option<Arc<Store>>,
        Arc<dyn portcullis_proxy::approvals::ApprovalStore>,
    ),
    (String, &'static str),
> {
    let prefix = a.state_prefix.as_str();
    #[allow(clippy::type_complexity)]
    let (backend, what, approvals): (
        Arc<dyn Backend>,
        String,
        Arc<dyn portcullis_proxy::approvals::ApprovalStore>,
    ) = if let Some(dir) = &a.state_dir {
        let db = SqliteStore::open(dir, prefix).map_err(|e| {
            (
                e,
                "--state-dir needs a writable local directory (SQLite in WAL mode does not work over NFS)",
            )
        })?;
        let what = format!("sqlite {}", db.path().display());
        let db = Arc::new(db);
        (db.clone(), what, db)
    } else if let Some(dsn) = &a.state_dsn {
        // A WAIT shortfall is a store failure, which `open` admits uncounted:
        // while replication lags, every limit would be lifted.
        if a.state_min_replicas > 0 && a.state_fail_mode == FailModeArg::Open {
            return Err((
                "--state-min-replicas needs --state-fail-mode closed: with open, a reservation the replicas did not acknowledge would be admitted uncounted, lifting every limit while replication lags".to_string(),
                "drop --state-fail-mode open, or --state-min-replicas",
            ));
        }
        let opts = RedisOptions {
            ca: a.state_ca.clone(),
            client_cert: a.state_client_cert.clone(),
            client_key: a.state_client_key.clone(),
            min_replicas: a.state_min_replicas,
        };
        let db = RedisStore::open_with(dsn, prefix, &opts).map_err(|e| {
            (
                e,
                "check that Redis is running and that the DSN's host, port, password and database are right (and, with rediss://, that the server's certificate names that host and is signed by --state-ca or a well-known CA)",
            )
        })?;
        for w in db.warnings() {
            log.warn(format_args!("{w}"));
        }
        let what = format!("redis {}", db.describe());
        let db = Arc::new(db);
        (db.clone(), what, db)
    } else {
        return Ok((
            Arc::new(MemoryCounters::new()),
            None,
            Arc::new(portcullis_proxy::approvals::MemoryApprovals::new()),
        ));
    };
    let store = Arc::new(
        Store::new(backend, what, log)
            .map_err(|e| (format!("cannot start the counter store: {e}"), ""))?,
    );
    log.info(format_args!(
        "counters in {}{}",
        store.describe(),
        if prefix.is_empty() {
            String::new()
        } else {
            format!(", keys prefixed {prefix:?}")
        }
    ));
    Ok((store.clone(), Some(store), approvals))
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
    if !(a.payment_timeout.is_finite() && a.payment_timeout > 0.0) {
        return fail(
            "--payment-timeout must be a positive number of seconds",
            "the default, 300, gives a wallet five minutes to pay a challenge",
        );
    }
    portcullis_proxy::mpp::Payments::global()
        .set_timeout(Duration::from_secs_f64(a.payment_timeout.min(1e9)));
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
    if !a.header_env.is_empty() && a.upstream.is_none() {
        return fail("--header-env requires --upstream", "");
    }
    if (a.jwks_file.is_some() || a.jwks_url.is_some()) && a.transport != Transport::Http {
        return fail(
            "--jwks-file and --jwks-url require --transport http",
            "bearer tokens authenticate clients of the local HTTP endpoint",
        );
    }
    if (a.client_token_file.is_some() || a.allow_unauthenticated) && a.transport != Transport::Http
    {
        return fail(
            "--client-token-file and --allow-unauthenticated require --transport http",
            "they are about clients of the local HTTP endpoint; a stdio client is the process that started the proxy",
        );
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
    if cli.server_command.is_empty() && a.upstream.is_none() {
        return fail(
            "no MCP server to run",
            "portcullis [--server NAME | -c FILE] [flags] (-- CMD ARGS... | --upstream URL)",
        );
    }
    // Who calls when no token says so, built once and lent to every session.
    let caller = match caller(a) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(c) = &caller {
        log.debug(format_args!(
            "the caller{}: sub {:?}, iss {:?}",
            if a.transport == Transport::Http {
                " of every session"
            } else {
                ""
            },
            c.sub(),
            c.iss()
        ));
    }
    let upstream = match a.upstream.as_deref().map(|u| upstream_options(u, a)) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err((msg, help))) => return fail(&msg, &help),
    };
    // A development build loads `-c FILE` once, here, and watches what it read.
    #[cfg(feature = "dynamic")]
    let loaded = match &a.config {
        Some(path) => match crate::reload::load(path) {
            Ok(l) => Some(l),
            Err(e) => {
                let (message, help) = report_load_error(e);
                return fail(&message, &help);
            }
        },
        None => None,
    };
    #[cfg(feature = "dynamic")]
    let selected = match &loaded {
        Some(l) => Ok(l.policy),
        None => select_policy(a.server.as_deref(), None),
    };
    #[cfg(not(feature = "dynamic"))]
    let selected = select_policy(a.server.as_deref(), a.config.as_deref());
    let policy = match selected {
        Ok(p) => p,
        Err((msg, help)) => return fail(&msg, &help),
    };
    let session_id = match portcullis_proxy::random_session_id() {
        Ok(n) => n,
        Err(e) => return fail(&format!("cannot make a session id: {e}"), ""),
    };
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
    let (counters, store, approvals) = match open_counters(a, log) {
        Ok(c) => c,
        Err((msg, help)) => return fail(&msg, help),
    };
    if !policy.meta().approvals.is_empty() {
        if a.state_dir.is_some() {
            log.info(format_args!(
                "approval requests are kept in the state directory: decide them with `portcullis approvals --state-dir DIR`"
            ));
        } else if a.state_dsn.is_some() {
            log.info(format_args!(
                "approval requests are kept in Redis: decide them with `portcullis approvals --state-dsn DSN`"
            ));
        } else {
            log.warn(format_args!(
                "the policy has approval rules, but approval requests are kept in this process's memory, where `portcullis approvals` cannot reach them; use --state-dir DIR to decide them"
            ));
        }
    }
    let audit_log = audit.as_ref().map(|(l, _)| l.clone());
    if let Some(l) = &audit_log {
        l.record(Event::Startup {
            upstream: match &a.upstream {
                Some(url) => url.clone(),
                None => cli.server_command[0].to_string_lossy().into_owned(),
            },
            process_start: portcullis_proxy::audit::process_start(std::process::id()),
        });
    }
    let metrics = a
        .metrics
        .map(|addr| (addr, Arc::new(Metrics::new(policy.meta()))));
    // The admin API's counters live in the same metrics (when served).
    let admin = match admin_api(a) {
        Ok(x) => x,
        Err((msg, help)) => {
            eprintln!("error: {msg}");
            eprintln!("  = help: {help}");
            return 2;
        }
    };
    let webhook_config =
        match portcullis_proxy::webhook::WebhookConfig::from_policy(policy.meta(), |name| {
            std::env::var(name).ok()
        }) {
            Ok(c) => c,
            Err((msg, help)) => {
                eprintln!("error: {msg}");
                eprintln!("  = help: {help}");
                return 2;
            }
        };
    if let Some(c) = webhook_config.as_ref().filter(|c| c.secret.is_none()) {
        log.warn(format_args!(
            "the approval webhook {} has no secret: its requests go unsigned (set approvals.notify.webhook.secret_env)",
            c.url
        ));
    }
    // One policy for the process, shared by its sessions (one on stdio, one
    // per MCP session over HTTP), swapped by a reload.
    let slot = Arc::new(PolicySlot::new(policy));
    // Development builds reload a `-c` policy file when it changes.
    #[cfg(feature = "dynamic")]
    let watcher = match (&a.config, &loaded) {
        (Some(path), Some(loaded)) if !a.no_reload => Some(crate::reload::watch(
            path.clone(),
            loaded,
            slot.clone(),
            metrics.as_ref().map(|(_, m)| m.clone()),
            audit_log.clone(),
            log,
        )),
        _ => None,
    };
    // Every session of this process: the shared policy slot, counters,
    // decision log and metrics, its own id.
    // New approval requests are announced by a background task (spawned
    // on the runtime below), never on the call path.
    let (webhook, webhook_task) = match webhook_config {
        Some(c) => {
            let (w, task) = portcullis_proxy::webhook::Webhook::start(
                c,
                metrics.as_ref().map(|(_, m)| m.clone()),
                log,
            );
            (Some(w), Some(task))
        }
        None => (None, None),
    };
    let intercept_errors = a.approval_errors == crate::cli::ApprovalErrors::Intercept;
    // A server this proxy starts reads the proxy's filesystem: `file://`
    // reads are decided on the path they resolve to as well (docs/surfaces.md).
    let resolve_symlinks = a.upstream.is_none() && !a.no_resolve_symlinks;
    let make_session = {
        let (slot, counters, audit) = (slot.clone(), counters.clone(), audit_log.clone());
        let approvals = approvals.clone();
        let webhook = webhook.clone();
        let metrics = metrics.as_ref().map(|(_, m)| m.clone());
        let caller = caller.clone();
        move |id: u64| {
            let s = Session::new(
                slot.get(),
                counters.clone(),
                id,
                fail_mode,
                audit.clone(),
                log,
            )
            .with_policy_slot(slot.clone())
            .with_principal(caller.clone())
            .with_approvals(approvals.clone())
            .with_webhook(webhook.clone())
            .with_intercept_approval_errors(intercept_errors)
            .with_symlink_resolution(resolve_symlinks);
            match &metrics {
                Some(m) => s.with_metrics(m.clone()),
                None => s,
            }
        }
    };
    let secs = |s: f64| (s > 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}"), ""),
    };
    if let Some(task) = webhook_task {
        runtime.spawn(task);
    }
    if let Some((addr, token)) = admin {
        let listener = match runtime.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => l,
            Err(e) => {
                return fail(
                    &format!("cannot serve the admin API on {addr}: {e}"),
                    "choose another --admin-api ADDR",
                );
            }
        };
        log.info(format_args!(
            "approval admin API at http://{}/approvals",
            listener
                .local_addr()
                .map_or_else(|_| addr.to_string(), |a| a.to_string())
        ));
        let api = Arc::new(portcullis_proxy::admin::AdminApi {
            store: approvals.clone(),
            token,
            audit: audit_log.clone(),
            metrics: metrics.as_ref().map(|(_, m)| m.clone()),
            log,
        });
        runtime.spawn(portcullis_proxy::admin::serve(listener, api));
    }
    if let Some((addr, m)) = metrics {
        let listener = match runtime.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => l,
            Err(e) => {
                return fail(
                    &format!("cannot serve metrics on {addr}: {e}"),
                    "choose another --metrics ADDR",
                );
            }
        };
        log.info(format_args!(
            "metrics at http://{}/metrics",
            listener
                .local_addr()
                .map_or_else(|_| addr.to_string(), |a| a.to_string())
        ));
        runtime.spawn(metrics::serve(listener, m));
    }
    let result = if a.transport == Transport::Http {
        let addr = match listen_addr(a.bind.as_deref(), a.port.unwrap_or(8080)) {
            Ok(addr) => addr,
            Err(e) => return fail(&e, "--bind takes an IP address, e.g. 127.0.0.1 or ::1"),
        };
        let client_token = match client_token(a) {
            Ok(t) => t,
            Err((msg, help)) => return fail(&msg, help),
        };
        let oauth = match runtime.block_on(crate::commands::oauth::oauth(a, log)) {
            Ok(o) => o,
            Err((msg, help)) => return fail(&msg, &help),
        };
        if oauth.is_some() && client_token.is_some() {
            return fail(
                "PORTCULLIS_CLIENT_TOKEN and --jwks-* exclude each other",
                "both use the Authorization header: give clients either a shared secret or tokens of an authorization server",
            );
        }
        if client_token.is_none()
            && oauth.is_none()
            && !addr.ip().is_loopback()
            && !a.allow_unauthenticated
        {
            return fail(
                &format!(
                    "refusing to serve an unauthenticated MCP endpoint on {addr}: anyone who can reach it could call the server's tools through this proxy"
                ),
                "give clients a secret with --client-token-file FILE (or PORTCULLIS_CLIENT_TOKEN); they send `Authorization: Bearer <secret>`. Or bind to 127.0.0.1, or pass --allow-unauthenticated if something in front (a mesh, an authenticating reverse proxy) already authenticates them",
            );
        }
        let opts = ServerOptions {
            addr,
            backend: match upstream {
                Some(u) => HttpBackend::Url(u),
                None => HttpBackend::Command(cli.server_command.clone()),
            },
            max_message_bytes: a.max_message_size,
            request_timeout: secs(a.upstream_timeout),
            grace: secs(a.shutdown_grace).unwrap_or(Duration::ZERO),
            allowed_origins: a.allow_origin.clone(),
            max_sessions: a.max_sessions.max(1),
            idle_timeout: secs(a.session_idle_timeout).unwrap_or(Duration::MAX),
            client_token,
            oauth,
        };
        let factory = Box::new(make_session);
        log.info(format_args!(
            "enforcing policy `{}` (sha256:{})",
            meta.server,
            &meta.digest[..16]
        ));
        runtime.block_on(server::run(opts, factory, log))
    } else {
        let session = Arc::new(make_session(session_id));
        // It holds a handle on the decision log, whose writer is joined at exit.
        drop(make_session);
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
    #[cfg(feature = "dynamic")]
    drop(watcher);
    // Challenges passed on and never paid: nobody can pay them once we are
    // gone, so their prices go back now, not at their payment timeout, and
    // before the store closes (a rollback queued after that is lost).
    let released = portcullis_proxy::mpp::Payments::global().release_all();
    if released > 0 {
        log.info(format_args!(
            "released {released} reservation(s) of payment challenges never paid"
        ));
    }
    // Units of calls that failed go back to a store that outlives us.
    if let Some(store) = store {
        store.close();
    }
    if let Some((l, handle)) = audit {
        l.record(Event::Shutdown { exit_code: code });
        drop(l);
        drop(audit_log);
        let _ = handle.join();
    }
    code
}

/// `--admin-api`: the address and the token, checked (None: not served).
/// Err: the message and the help (exit 2).
fn admin_api(
    a: &crate::cli::ProxyArgs,
) -> Result<Option<(std::net::SocketAddr, portcullis_proxy::admin::AdminToken)>, (String, String)> {
    let Some(addr) = a.admin_api else {
        return Ok(None);
    };
    if !addr.ip().is_loopback() && !a.admin_api_allow_remote {
        return Err((
            format!(
                "refusing to serve the admin API on {addr}: it is not a loopback address, and whoever reaches it with the token can approve held calls"
            ),
            "bind it to 127.0.0.1 or ::1 (e.g. --admin-api 127.0.0.1:9465), or pass --admin-api-allow-remote if the network in front of it is trusted".into(),
        ));
    }
    let (secret, source) = match (&a.admin_token_env, &a.admin_token_file) {
        (Some(name), _) => match std::env::var(name) {
            Ok(s) if !s.trim().is_empty() => (s, format!("environment variable {name}")),
            _ => {
                return Err((
                    format!("--admin-token-env names {name}, which is not set (or empty)"),
                    format!(
                        "set {name} to the admin API's bearer token, e.g. `export {name}=$(openssl rand -hex 32)`"
                    ),
                ));
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(s) => (s, path.display().to_string()),
            Err(e) => {
                return Err((
                    format!("cannot read the admin token file {}: {e}", path.display()),
                    "the file holds one line: the token clients send as `Authorization: Bearer <token>`".into(),
                ));
            }
        },
        (None, None) => {
            return Err((
                "--admin-api needs a bearer token: none is configured".into(),
                "pass --admin-token-env NAME (an environment variable holding it) or --admin-token-file PATH; generate one with `openssl rand -hex 32`".into(),
            ));
        }
    };
    portcullis_proxy::admin::AdminToken::new(&secret)
        .map(|t| Some((addr, t)))
        .map_err(|e| {
            (
                format!("{e} (from {source})"),
                "generate one with `openssl rand -hex 32`".into(),
            )
        })
}

/// The principal of sessions no token authenticates: None with `--jwks-*`
/// (each session is its token's), else `--principal-claims FILE`'s or the
/// local user's (docs/cli.md, "Who is calling"). Err: the exit code, the
/// error printed (2: an unusable flag value is a usage error, as clap's).
fn caller(a: &ProxyArgs) -> Result<Option<Arc<Principal>>, i32> {
    if a.jwks_file.is_some() || a.jwks_url.is_some() {
        return Ok(None);
    }
    let principal = match &a.principal_claims {
        None => crate::commands::identity::local_principal(),
        Some(path) => claims_principal(path)?,
    };
    Ok(Some(Arc::new(principal)))
}

#[cfg(feature = "dynamic")]
fn claims_principal(path: &std::path::Path) -> Result<Principal, i32> {
    crate::commands::identity::principal_from_file(path).map_err(|e| {
        eprint!("{e}");
        2
    })
}

#[cfg(not(feature = "dynamic"))]
fn claims_principal(_: &std::path::Path) -> Result<Principal, i32> {
    eprintln!(
        "error: this is a hardened build: it does not take --principal-claims\n  = help: a claims file an agent can write would name any caller; here the caller is the local user (or a token's, with --jwks-*). Test principals with a development build"
    );
    Err(2)
}

/// `--upstream URL` and its flags.
fn upstream_options(url: &str, a: &ProxyArgs) -> Result<UpstreamOptions, (String, String)> {
    let uri: portcullis_proxy::http::upstream::Url = url.parse().map_err(|e| {
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
    let headers = crate::cli::upstream_headers(&a.header, &a.header_env, parse_header)
        .map_err(|(e, help)| (e, help.to_string()))?;
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

/// The local endpoint's client token: `--client-token-file FILE` or the
/// environment variable `PORTCULLIS_CLIENT_TOKEN` (not both), if any.
fn client_token(a: &crate::cli::ProxyArgs) -> Result<Option<ClientToken>, (String, &'static str)> {
    let from_env = std::env::var_os("PORTCULLIS_CLIENT_TOKEN");
    let (secret, source) = match (&a.client_token_file, from_env) {
        (Some(_), Some(_)) => {
            return Err((
                "both --client-token-file and PORTCULLIS_CLIENT_TOKEN are set".into(),
                "give the client token one way",
            ));
        }
        (Some(path), None) => match std::fs::read_to_string(path) {
            Ok(s) => (s, path.display().to_string()),
            Err(e) => {
                return Err((
                    format!("cannot read the client token file {}: {e}", path.display()),
                    "the file holds one line: the secret clients send as `Authorization: Bearer <secret>`",
                ));
            }
        },
        (None, Some(v)) => match v.into_string() {
            Ok(s) => (s, "PORTCULLIS_CLIENT_TOKEN".to_string()),
            Err(_) => {
                return Err((
                    "PORTCULLIS_CLIENT_TOKEN is not valid UTF-8".into(),
                    "use printable ASCII",
                ));
            }
        },
        (None, None) => return Ok(None),
    };
    ClientToken::new(&secret).map(Some).map_err(|e| {
        (
            format!("{e} (from {source})"),
            "generate one with e.g. `openssl rand -hex 32`",
        )
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
