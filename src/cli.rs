//! The command line (clap). Flags match Intercept's where they overlap
//! (`-c`, `--transport`, `--upstream`, `--header`, `--bind`, `--port`,
//! `--state-dir`, `--state-dsn`, `--state-prefix`, `--state-fail-mode`,
//! `--log-level`, `-- CMD`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Portcullis: policy enforcement for MCP servers, compiled into the binary.
///
/// With no subcommand it runs the proxy: an MCP client starts
/// `portcullis [flags] -- CMD ARGS...` instead of the server, and every
/// `tools/call` is checked against the policy.
#[derive(Debug, Parser)]
#[command(name = "portcullis", args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (no subcommand: run the proxy).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Proxy options.
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// The MCP server to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub server_command: Vec<OsString>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check policy files and print every problem with its location (exit 1 on error).
    Validate(ValidateArgs),
    /// List the policies compiled into this binary: environment, servers, digests.
    Policies,
    /// Summarise decision logs: instances, totals, deny rate, top denying rules, last denials.
    Status(StatusArgs),
    /// Run one real MCP session through the proxy and the embedded default policy, and show each decision.
    Demo(DemoArgs),
    /// Format policy-language files canonically (comments kept).
    Fmt(FmtArgs),
    /// Write a YAML policy (Intercept v1 or the catalogue form) in the policy language.
    Translate(TranslateArgs),
    /// Run policy tests (`<server>.test.yaml`) against the embedded policies and the evaluator.
    Test(TestArgs),
    /// Show how a policy decides one call: every rule, every condition with the value it saw.
    Explain(ExplainArgs),
    /// Connect to a live MCP server and write a policy scaffold listing its tools.
    Scan(ScanArgs),
    /// Find the MCP servers your clients run, write a policy for each, and route them through Portcullis.
    Init(InitArgs),
    /// Serve a local web page to review and edit policies and watch decisions.
    Ui(UiArgs),
    /// List, show, approve or deny the approval requests of calls an approval rule held (operator flow).
    Approvals(ApprovalsArgs),
}

/// `portcullis approvals`.
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ApprovalsAction,
    /// The proxies' state directory (their `--state-dir`), where approval requests are kept.
    #[arg(long, value_name = "DIR", global = true, conflicts_with = "state_dsn")]
    pub state_dir: Option<PathBuf>,
    /// The proxies' Redis (their `--state-dsn`; also read from PORTCULLIS_STATE_DSN).
    #[arg(
        long,
        value_name = "DSN",
        global = true,
        env = "PORTCULLIS_STATE_DSN",
        hide_env_values = true
    )]
    pub state_dsn: Option<String>,
    /// The proxies' `--state-prefix`.
    #[arg(long, value_name = "P", default_value = "", global = true)]
    pub state_prefix: String,
    /// Append each decision (approve, deny) as one line to this decision log.
    #[arg(long = "audit-log", value_name = "FILE", global = true)]
    pub audit_log: Option<PathBuf>,
}

/// `portcullis approvals <action>`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsAction {
    /// List approval requests, newest first (pending ones unless --all).
    List {
        /// Every request, decided, used and expired ones too.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one request: the call's arguments, the rule, the caller, its status.
    Show {
        /// The approval id (`apr_...`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark every request past its expiry expired (list and show also do); prints how many.
    Expire,
    /// Approve a pending request: the agent's identical retry is forwarded once.
    Approve {
        /// The approval id (`apr_...`).
        id: String,
        /// Why (kept with the record and in the decision log).
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        /// Who decides (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Deny a pending request: the agent's identical retries are refused with the reason.
    Deny {
        /// The approval id (`apr_...`).
        id: String,
        /// Why (shown to the agent).
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        /// Who decides (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

/// `portcullis status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A decision log (`--audit-log` of the proxy), or a directory of `*.jsonl` logs; repeatable.
    #[arg(long = "audit-log", value_name = "FILE|DIR", required = true)]
    pub audit_logs: Vec<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Report as of this time (RFC 3339) instead of now, e.g. to reproduce a report.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

/// `portcullis test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files, or directories holding `*.test.yaml` (default: beside the embedded policies' sources).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// List every rule and condition no test exercised (file:line).
    #[arg(long)]
    pub coverage: bool,
    /// Fail when coverage (of rules and conditions) is below this percentage (0-100).
    #[arg(long, value_name = "P", value_parser = percentage)]
    pub min_coverage: Option<f64>,
}

/// `portcullis explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The embedded policy (its source must be readable, to show conditions).
    #[arg(long, value_name = "NAME", conflicts_with = "config")]
    pub server: Option<String>,
    /// A policy file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The tool called.
    #[arg(long, value_name = "T", required_unless_present_any = ["resource", "prompt"], conflicts_with_all = ["resource", "prompt"])]
    pub tool: Option<String>,
    /// A resource read instead (`resources/read`): its URI, explained as normalised.
    #[arg(long, value_name = "URI", conflicts_with = "prompt")]
    pub resource: Option<String>,
    /// A prompt request instead (`prompts/get`): its name; `--args` are its arguments.
    #[arg(long, value_name = "NAME")]
    pub prompt: Option<String>,
    /// The call's arguments, as JSON.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// Explain the call as this caller: a JSON object of token claims with
    /// `sub` and `iss` (and `scope`/`scp`, `groups`, ...), as policies read
    /// them through `principal.*`. Without it the caller is unknown.
    #[arg(long, value_name = "JSON")]
    pub claims: Option<String>,
}

/// `portcullis fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Check only: exit 1 and name the files that are not formatted.
    #[arg(long)]
    pub check: bool,
    /// `.policy` files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `portcullis translate`.
#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// The YAML policy.
    #[arg(value_name = "FILE.yaml")]
    pub file: PathBuf,
    /// Write here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Which transport faces the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// The client speaks on stdin/stdout.
    Stdio,
    /// A local Streamable HTTP endpoint.
    Http,
    /// Legacy HTTP+SSE (Intercept's `sse`).
    Sse,
}

/// What to do when the counter store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailModeArg {
    /// Deny calls that need a counter.
    Closed,
    /// Let them through uncounted.
    Open,
}

/// How a call held for approval is answered (`--approval-errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApprovalErrors {
    /// A tool result with `isError: true`, `[APPROVAL REQUIRED] ...` and the
    /// approval id: the model can read it.
    Result,
    /// Intercept's answer: a JSON-RPC error -32003 with the approval id in `data`.
    Intercept,
}

/// Options of the proxy.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The embedded server policy to enforce (see `portcullis policies`).
    #[arg(long, value_name = "NAME", conflicts_with = "config")]
    pub server: Option<String>,
    /// Enforce a policy file read at start-up (development builds only).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Transport facing the client.
    #[arg(long, value_enum, default_value_t = Transport::Stdio)]
    pub transport: Transport,
    /// A remote MCP server (Streamable HTTP; a URL whose path ends in /sse: legacy HTTP+SSE) instead of a command.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// An HTTP header for the upstream, `Name: value` (repeatable).
    #[arg(long, value_name = "K: V")]
    pub header: Vec<String>,
    /// An HTTP header for the upstream from environment variable NAME, which holds `Name: value` (repeatable): the value stays out of the process list.
    #[arg(long, value_name = "NAME")]
    pub header_env: Vec<String>,
    /// Address of the local HTTP endpoint (default 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Port of the local HTTP endpoint (default 8080; 0: any free port, printed on stderr).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// An Origin the local HTTP endpoint accepts besides loopback ones, `scheme://host[:port]` (repeatable).
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// A file holding the secret that clients of the local HTTP endpoint must
    /// send as `Authorization: Bearer <secret>` (or set PORTCULLIS_CLIENT_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub client_token_file: Option<PathBuf>,
    /// Serve the local HTTP endpoint on a non-loopback address without a client token
    /// (only behind something else that authenticates clients).
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Most MCP sessions the local HTTP endpoint keeps open at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_sessions: usize,
    /// Seconds after which an MCP session of the local HTTP endpoint with no request is ended (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 1800.0)]
    pub session_idle_timeout: f64,
    /// Seconds a connection to the upstream URL may take (TCP and TLS).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Keep counters in SQLite files in this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "state_dsn")]
    pub state_dir: Option<PathBuf>,
    /// Keep counters in Redis (`redis://[user:pass@]host:port/db`; `rediss://`
    /// for TLS; `redis+cluster://host:port,host:port` for a Redis Cluster). Also read
    /// from PORTCULLIS_STATE_DSN, which keeps a password out of the process list.
    #[arg(
        long,
        value_name = "DSN",
        env = "PORTCULLIS_STATE_DSN",
        hide_env_values = true
    )]
    pub state_dsn: Option<String>,
    /// With a `rediss://` DSN: trust only this CA certificate (PEM) for the
    /// Redis server, instead of the built-in Mozilla roots.
    #[arg(long, value_name = "FILE", requires = "state_dsn")]
    pub state_ca: Option<PathBuf>,
    /// With a `rediss://` DSN: present this client certificate (PEM chain) to Redis.
    #[arg(long, value_name = "FILE", requires_all = ["state_dsn", "state_client_key"])]
    pub state_client_cert: Option<PathBuf>,
    /// The private key (PEM) of --state-client-cert.
    #[arg(long, value_name = "FILE", requires = "state_client_cert")]
    pub state_client_key: Option<PathBuf>,
    /// With Redis: a reservation counts only once N replicas have it (WAIT N),
    /// so a failover loses none; a shortfall denies the call (needs
    /// --state-fail-mode closed).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "state_dsn")]
    pub state_min_replicas: u32,
    /// A prefix for every counter key.
    #[arg(long, value_name = "P", default_value = "")]
    pub state_prefix: String,
    /// What to do when the counter store fails.
    #[arg(long, value_enum, default_value_t = FailModeArg::Closed)]
    pub state_fail_mode: FailModeArg,
    /// With -c: do not reload the policy file when it changes (reloading is on by default, as in Intercept).
    #[arg(long)]
    pub no_reload: bool,
    /// Serve the approval admin API at http://ADDR (e.g. 127.0.0.1:9465): list, show,
    /// approve and deny approval requests; needs --admin-token-env or --admin-token-file.
    #[arg(long, value_name = "ADDR")]
    pub admin_api: Option<std::net::SocketAddr>,
    /// Let --admin-api listen on a non-loopback address.
    #[arg(long, requires = "admin_api")]
    pub admin_api_allow_remote: bool,
    /// The environment variable holding the admin API's bearer token.
    #[arg(
        long,
        value_name = "NAME",
        requires = "admin_api",
        conflicts_with = "admin_token_file"
    )]
    pub admin_token_env: Option<String>,
    /// A file holding the admin API's bearer token (one line).
    #[arg(long, value_name = "FILE", requires = "admin_api")]
    pub admin_token_file: Option<PathBuf>,
    /// How a call held for approval is answered: `result` (a tool result with
    /// isError and the approval id, the default) or `intercept` (Intercept's
    /// JSON-RPC error -32003).
    #[arg(long, value_enum, value_name = "STYLE", default_value_t = ApprovalErrors::Result)]
    pub approval_errors: ApprovalErrors,
    /// Do not decide `file://` resource reads on the path they resolve to
    /// (symlinks). Resolving is on when the proxy starts the server itself
    /// (`-- CMD`); turn it off when that server sees another filesystem
    /// (a container). Never done for --upstream.
    #[arg(long)]
    pub no_resolve_symlinks: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Append one JSON line per decision to this file.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// error, warn, info or debug (logs go to stderr).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Largest message accepted in either direction, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = portcullis_proxy::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_size: usize,
    /// Answer and roll back a request the server has not answered after this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub upstream_timeout: f64,
    /// After the client disconnects, seconds the server has to exit before SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub shutdown_grace: f64,
    /// Validate bearer JWTs on the local HTTP endpoint against the keys of this JWKS file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["jwks_url", "client_token_file"])]
    pub jwks_file: Option<PathBuf>,
    /// Validate bearer JWTs on the local HTTP endpoint against the keys at this
    /// JWKS URL (the authorization server's `jwks_uri`; fetched again on an unknown `kid`).
    /// https:// only; plain http:// only to 127.0.0.0/8, ::1 or localhost.
    #[arg(long, value_name = "URL", conflicts_with = "client_token_file")]
    pub jwks_url: Option<String>,
    /// The caller's claims (a JSON object with `sub` and `iss`) instead of the
    /// local user, over stdio and on an HTTP endpoint without --jwks-*
    /// (testing; development builds only).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["jwks_file", "jwks_url"])]
    pub principal_claims: Option<PathBuf>,
    /// With --jwks-*: the `iss` every token must have.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// With --jwks-*: an accepted `aud` (repeatable; default: --resource-url).
    #[arg(long, value_name = "AUD")]
    pub audience: Vec<String>,
    /// With --jwks-*: the endpoint's canonical URL as clients reach it
    /// (default: http://BIND:PORT/mcp), named in the Protected Resource Metadata.
    #[arg(long, value_name = "URL")]
    pub resource_url: Option<String>,
    /// With --jwks-*: an authorization server named in the Protected Resource
    /// Metadata (repeatable; default: --issuer).
    #[arg(long, value_name = "URL")]
    pub authorization_server: Vec<String>,
    /// With --jwks-*: a scope every token must grant (repeatable; 403 insufficient_scope otherwise).
    #[arg(long, value_name = "SCOPE")]
    pub required_scope: Vec<String>,
    /// With --jwks-*: an accepted signature algorithm (repeatable; default
    /// RS256, PS256, ES256, EdDSA; HMAC and `none` are never accepted).
    #[arg(long, value_name = "ALG")]
    pub jwt_algorithm: Vec<String>,
    /// With --jwks-*: seconds of clock skew tolerated on `exp` and `nbf`.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub jwt_leeway: u64,
    /// Seconds a paid tool's price stays reserved on its budgets while the
    /// client's wallet pays (MPP); an unpaid challenge is released after it.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub payment_timeout: f64,
}

/// `portcullis validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A policy file (Intercept's flag).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policy files or directories of policy files.
    #[arg(value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}

/// `portcullis demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The embedded policy to use.
    #[arg(long, default_value = "everything")]
    pub server: String,
    /// The MCP server command (default: `npx -y @modelcontextprotocol/server-everything`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The policy format `portcullis scan` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// Intercept v1 YAML (`*.yaml`).
    Yaml,
    /// The Portcullis policy language (`*.policy`).
    Dsl,
}

/// `portcullis scan`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["upstream", "command"])))]
pub struct ScanArgs {
    /// A remote MCP server (Streamable HTTP), instead of a command after `--`.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// An HTTP header for `--upstream`, `Name: value` (repeatable).
    #[arg(long, value_name = "K: V")]
    pub header: Vec<String>,
    /// An HTTP header for `--upstream` from environment variable NAME, which holds `Name: value` (repeatable).
    #[arg(long, value_name = "NAME")]
    pub header_env: Vec<String>,
    /// Write the policy here (and the tool schemas to `<stem>.tools.json` beside it) instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// yaml (Intercept v1) or dsl (the policy language); default: from `-o`'s extension, else yaml.
    #[arg(long, value_enum)]
    pub format: Option<ScanFormat>,
    /// Seconds each step (start-up, initialize, each tools/list page) may take.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// The MCP server to start, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A percentage from 0 to 100.
fn percentage(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a percentage from 0 to 100")),
    }
}

/// `portcullis init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The policy environment: policies are written to `<policies>/<env>/`.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub env: String,
    /// Only these clients (repeatable; default: all).
    #[arg(long = "client", value_name = "NAME", num_args = 1..,
          value_parser = ["claude-desktop", "claude-code", "cursor", "vscode", "windsurf"])]
    pub clients: Vec<String>,
    /// Print the servers found and a unified diff of each configuration; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore every configuration init changed from its backup, byte for byte.
    #[arg(long, conflicts_with = "dry_run")]
    pub undo: bool,
    /// The project whose `.mcp.json`, `.cursor/mcp.json` and `.vscode/mcp.json` to include (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// The policies directory.
    #[arg(long, value_name = "DIR", default_value = "policies")]
    pub policies: PathBuf,
    /// The Portcullis binary the clients start (default: `dist/portcullis-<env>` beside the policies directory, as `scripts/build-artifact` writes it).
    #[arg(long, value_name = "PATH")]
    pub portcullis: Option<PathBuf>,
    /// Start the servers with `-c <policy file>` (a development build enforcing the files, reloading them on change) instead of `--server NAME` (the policy compiled into the artifact).
    #[arg(long)]
    pub policy_files: bool,
    /// Seconds each step of a server's scan (start-up, initialize, each tools/list page) may take.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
}

/// `portcullis ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Address to listen on; anything but a loopback address needs --allow-remote.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: String,
    /// Port to listen on (0: any free port; the URL printed on start says which).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub port: u16,
    /// The directory of policies to review and edit (`<server>.yaml` or `.policy`).
    #[arg(long, value_name = "DIR", default_value = "policies/default")]
    pub policy_dir: PathBuf,
    /// A decision log (`--audit-log` of the proxy), or a directory of `*.jsonl` logs; repeatable.
    #[arg(long = "audit-log", value_name = "FILE|DIR")]
    pub audit_logs: Vec<PathBuf>,
    /// Listen on a non-loopback address (anyone who can reach it and has the token can edit policies).
    #[arg(long)]
    pub allow_remote: bool,
}

/// The upstream headers as given, in order: each `--header` flag's text,
/// then each `--header-env` variable's value, parsed by `parse`. A
/// variable's value is never shown in an error (it holds a credential, and
/// was put in the environment to keep it out of sight); a flag's is, as
/// the process list already shows it. Errors: (message, help).
pub fn upstream_headers<T>(
    header: &[String],
    header_env: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, (String, &'static str)> {
    let mut out = Vec::new();
    for h in header {
        out.push(parse(h).map_err(|e| (e, "--header \"Name: value\""))?);
    }
    for name in header_env {
        let text = std::env::var(name).map_err(|e| {
            let why = match e {
                std::env::VarError::NotPresent => "is not set",
                std::env::VarError::NotUnicode(_) => "is not UTF-8",
            };
            (
                format!("--header-env {name}: the environment variable `{name}` {why}"),
                "set it to the header, e.g. `Authorization: Bearer ...`",
            )
        })?;
        out.push(parse(&text).map_err(|_| {
            (
                format!(
                    "--header-env {name}: the value of `{name}` is not `Name: value` without control characters (the value is not shown)"
                ),
                "e.g. `Authorization: Bearer ...`",
            )
        })?);
    }
    Ok(out)
}
