//! `mcp-load`: load testing for the Portcullis stdio proxy.
//!
//! ```text
//! mcp-load server [--tools N] [--names FILE]
//! mcp-load relay -- CMD ARGS...
//! mcp-load run --proxy PATH [--server NAME] [--nolimit-server NAME] [--calls N]
//!              [--warmup N] [--pipelined M] [--rounds R] [--lists K] [--startups S]
//!              [--limited-calls N] [--tool NAME] [--arguments JSON]
//!              [--tools N] [--names FILE] [--config FILE] [--smaps DIR] [--no-relay] [--json]
//! mcp-load http-server [--tools N] [--names FILE] [--port P]
//! mcp-load http-forward --upstream URL [--port P]
//! mcp-load run-http --proxy PATH [--server NAME] [--calls N] [--warmup N] [--rounds R]
//! mcp-load limits --proxy PATH [--server NAME] [--nolimit-server NAME]
//!                 [--backend NAME=FLAGS]... [--calls N] [--warmup N] [--rounds R] [--json]
//! ```
//!
//! `server` is a minimal, fast stdio MCP server whose tools are named after a
//! policy's tools; `relay` is the cheapest possible line relay (the cost of
//! one extra process hop); `run` measures the server directly, through the
//! relay and through the proxy, in one run. `http-forward` is the cheapest
//! hyper-to-hyper HTTP forwarder, the HTTP counterpart of `relay`; `run-http`
//! measures the HTTP server directly, through it and through the proxy.
//! `limits` measures what a
//! rate-limited call costs with each counter store (memory, SQLite, Redis).
//! See `scripts/bench-proxy`.

#![forbid(unsafe_code)]

mod forward;
mod http;
mod json;
mod limits;
mod procfs;
mod relay;
mod run;
mod server;
mod tools;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  mcp-load server [--tools N] [--names FILE]
      a stdio MCP server with N tools (default: every tool of the embedded
      benches/policies/fusionauth.yaml; --names reads a policy YAML or a
      file of one name per line)
  mcp-load relay -- CMD ARGS...
      the cheapest stdio relay (two threads copying lines), as a baseline
  mcp-load run --proxy PATH [options]
      measures DIRECT (mcp-load server), RELAY and PROXIED
      (PATH --server NAME --log-level error -- mcp-load server) in one run
      --server NAME          policy as generated, with its \"*\" rate limit (fusionauth);
                             used for start-up and the rate-limited rows
      --nolimit-server NAME  the same policy without the \"*\" rule, used for latency,
                             throughput, tools/list and RSS (fusionauth-nolimit;
                             empty string: use --server everywhere)
      --calls N              serial tools/call round trips (20000)
      --warmup N             serial warm-up calls (1000)
      --pipelined M          calls written back to back per round (100000)
      --rounds R             pipelined rounds; the median is reported (3)
      --lists K              sequential tools/list calls (2000)
      --startups S           start-up runs each (50)
      --limited-calls N      serial calls under --server's limit (5000)
      --tool NAME            tool to call (createUser)
      --arguments JSON       its arguments (a 330-byte createUser request)
      --tools N, --names F   passed to mcp-load server (310)
      --config FILE          also measure PATH -c FILE (the reference evaluator on a
                             policy file; give it --nolimit-server's policy) beside
                             the compiled binary: serial calls, throughput, tools/list
      --smaps DIR            when each process's peak RSS is read, save its
                             /proc/PID/smaps and status as DIR/LABEL.smaps and
                             DIR/LABEL.status (direct, relay, proxied, ...)
      --no-relay             skip the relay baseline
      --json                 print a JSON object instead of the table
  mcp-load http-server [--tools N] [--names FILE] [--port P]
      the same server over HTTP (Streamable HTTP, JSON answers) on 127.0.0.1
  mcp-load http-forward --upstream URL [--port P]
      the cheapest hyper-to-hyper HTTP forwarder (no parsing, no policy), as
      the HTTP baseline; prints `listening on PORT`
  mcp-load run-http --proxy PATH [--server NAME] [--calls N] [--warmup N] [--rounds R]
      serial tools/call latency: directly over HTTP, through PATH --transport http
      --upstream, and through PATH --upstream (stdio client); defaults: --server
      fusionauth-nolimit, 5000 calls, 500 warm-up, 3 rounds
  mcp-load limits --proxy PATH [options]
      serial tools/call round trips through the proxy: --nolimit-server (no
      limit on the call) against --server (a limit on every call that is
      never reached) with each counter store
      --server NAME          (fusionauth-biglimit)
      --nolimit-server NAME  (fusionauth-nolimit)
      --backend NAME=FLAGS   a store and its proxy flags, split on spaces
                             (repeatable; default: memory=)
                             e.g. --backend 'sqlite=--state-dir /tmp/s'
      --calls N              calls per round (5000)
      --warmup N             warm-up calls per round (500)
      --rounds R             rounds, configurations alternating (3)
      --tool, --arguments, --tools   as for run
      --json                 print a JSON object instead of the table";

fn fail(msg: &str) -> ExitCode {
    eprintln!("mcp-load: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn read_names(path: Option<&PathBuf>) -> Result<Vec<String>, String> {
    match path {
        None => Ok(tools::names_from(tools::DEFAULT_POLICY, true)),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
            Ok(tools::names_from(&text, yaml))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(mode) = args.first().and_then(|a| a.to_str()) else {
        return fail("no mode given");
    };
    match mode {
        "server" => server_main(&args[1..]),
        "relay" => {
            let rest = match args.iter().position(|a| a == "--") {
                Some(i) => &args[i + 1..],
                None => return fail("relay: the command goes after --"),
            };
            match relay::run(rest) {
                Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("mcp-load relay: {e}");
                    ExitCode::from(1)
                }
            }
        }
        "run" => run_main(&args[1..]),
        "limits" => limits_main(&args[1..]),
        "http-server" => http_server_main(&args[1..]),
        "run-http" => run_http_main(&args[1..]),
        "http-forward" => http_forward_main(&args[1..]),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => fail(&format!("unknown mode `{other}`")),
    }
}

/// Flag parsing: `--flag VALUE` pairs and boolean flags.
struct Flags<'a> {
    args: &'a [OsString],
    i: usize,
}

impl<'a> Flags<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let a = self.args.get(self.i)?;
        self.i += 1;
        Some(a.to_str().unwrap_or("<non-UTF-8>"))
    }

    fn value(&mut self, flag: &str) -> Result<&'a OsString, String> {
        let v = self
            .args
            .get(self.i)
            .ok_or_else(|| format!("{flag} needs a value"))?;
        self.i += 1;
        Ok(v)
    }

    fn number(&mut self, flag: &str) -> Result<usize, String> {
        let v = self.value(flag)?;
        v.to_str()
            .and_then(|s| s.replace('_', "").parse().ok())
            .ok_or_else(|| format!("{flag}: not a number: {}", v.to_string_lossy()))
    }

    fn string(&mut self, flag: &str) -> Result<String, String> {
        let v = self.value(flag)?;
        v.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{flag}: not UTF-8"))
    }
}

fn server_main(args: &[OsString]) -> ExitCode {
    let mut f = Flags { args, i: 0 };
    let mut n: Option<usize> = None;
    let mut names_file: Option<PathBuf> = None;
    while let Some(a) = f.next() {
        let r = match a {
            "--tools" => f.number(a).map(|v| n = Some(v)),
            "--names" => f.value(a).map(|v| names_file = Some(PathBuf::from(v))),
            other => Err(format!("server: unknown flag `{other}`")),
        };
        if let Err(e) = r {
            return fail(&e);
        }
    }
    let names = match read_names(names_file.as_ref()) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let names = tools::take(&names, n.unwrap_or(names.len()));
    let server = server::Server::new(&tools::tools_array(&names));
    match server.serve() {
        Ok(()) => ExitCode::SUCCESS,
        // The client went away mid-answer: not an error for a load server.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-load server: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_main(args: &[OsString]) -> ExitCode {
    let mut o = run::Options {
        proxy: PathBuf::new(),
        server: "fusionauth".into(),
        nolimit_server: "fusionauth-nolimit".into(),
        tools: 0,
        names: None,
        tool: run::DEFAULT_TOOL.into(),
        arguments: run::DEFAULT_ARGUMENTS.into(),
        calls: 20_000,
        warmup: 1_000,
        pipelined: 100_000,
        rounds: 3,
        lists: 2_000,
        startups: 50,
        limited_calls: 5_000,
        relay: true,
        config: None,
        smaps: None,
        json: false,
    };
    let mut tools_n: Option<usize> = None;
    let mut f = Flags { args, i: 0 };
    while let Some(a) = f.next() {
        let r = match a {
            "--proxy" => f.value(a).map(|v| o.proxy = PathBuf::from(v)),
            "--server" => f.string(a).map(|v| o.server = v),
            "--nolimit-server" => f.string(a).map(|v| o.nolimit_server = v),
            "--calls" => f.number(a).map(|v| o.calls = v),
            "--warmup" => f.number(a).map(|v| o.warmup = v),
            "--pipelined" => f.number(a).map(|v| o.pipelined = v),
            "--rounds" => f.number(a).map(|v| o.rounds = v),
            "--lists" => f.number(a).map(|v| o.lists = v),
            "--startups" => f.number(a).map(|v| o.startups = v),
            "--limited-calls" => f.number(a).map(|v| o.limited_calls = v),
            "--tool" => f.string(a).map(|v| o.tool = v),
            "--arguments" => f.string(a).map(|v| o.arguments = v),
            "--tools" => f.number(a).map(|v| tools_n = Some(v)),
            "--names" => f.value(a).map(|v| o.names = Some(PathBuf::from(v))),
            "--config" => f.value(a).map(|v| o.config = Some(PathBuf::from(v))),
            "--smaps" => f.value(a).map(|v| o.smaps = Some(PathBuf::from(v))),
            "--no-relay" => {
                o.relay = false;
                Ok(())
            }
            "--json" => {
                o.json = true;
                Ok(())
            }
            other => Err(format!("run: unknown flag `{other}`")),
        };
        if let Err(e) = r {
            return fail(&e);
        }
    }
    if o.proxy.as_os_str().is_empty() {
        return fail("run: --proxy PATH is required");
    }
    o.tools = match tools_n {
        Some(n) => n,
        None => match read_names(o.names.as_ref()) {
            Ok(n) => n.len(),
            Err(e) => return fail(&e),
        },
    };
    match run::run(&o) {
        Ok(report) => {
            if o.json {
                println!("{}", run::json(&o, &report));
            } else {
                print!("{}", run::table(&o, &report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-load run: {e}");
            ExitCode::from(1)
        }
    }
}

fn limits_main(args: &[OsString]) -> ExitCode {
    let mut o = limits::Options {
        proxy: PathBuf::new(),
        server: "fusionauth-biglimit".into(),
        nolimit_server: "fusionauth-nolimit".into(),
        tools: 0,
        tool: run::DEFAULT_TOOL.into(),
        arguments: run::DEFAULT_ARGUMENTS.into(),
        calls: 5_000,
        warmup: 500,
        rounds: 3,
        backends: Vec::new(),
        json: false,
    };
    let mut tools_n: Option<usize> = None;
    let mut f = Flags { args, i: 0 };
    while let Some(a) = f.next() {
        let r = match a {
            "--proxy" => f.value(a).map(|v| o.proxy = PathBuf::from(v)),
            "--server" => f.string(a).map(|v| o.server = v),
            "--nolimit-server" => f.string(a).map(|v| o.nolimit_server = v),
            "--calls" => f.number(a).map(|v| o.calls = v),
            "--warmup" => f.number(a).map(|v| o.warmup = v),
            "--rounds" => f.number(a).map(|v| o.rounds = v.max(1)),
            "--tool" => f.string(a).map(|v| o.tool = v),
            "--arguments" => f.string(a).map(|v| o.arguments = v),
            "--tools" => f.number(a).map(|v| tools_n = Some(v)),
            "--backend" => f.string(a).and_then(|v| match v.split_once('=') {
                Some((name, flags)) => {
                    o.backends.push((
                        name.to_string(),
                        flags.split_whitespace().map(str::to_string).collect(),
                    ));
                    Ok(())
                }
                None => Err(format!("--backend NAME=FLAGS expected, got `{v}`")),
            }),
            "--json" => {
                o.json = true;
                Ok(())
            }
            other => Err(format!("limits: unknown flag `{other}`")),
        };
        if let Err(e) = r {
            return fail(&e);
        }
    }
    if o.proxy.as_os_str().is_empty() {
        return fail("limits: --proxy PATH is required");
    }
    if o.backends.is_empty() {
        o.backends.push(("memory".into(), Vec::new()));
    }
    o.tools = match tools_n {
        Some(n) => n,
        None => match read_names(None) {
            Ok(n) => n.len(),
            Err(e) => return fail(&e),
        },
    };
    match limits::run(&o) {
        Ok(rows) => {
            if o.json {
                println!("{}", limits::json(&o, &rows));
            } else {
                print!("{}", limits::table(&o, &rows));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-load limits: {e}");
            ExitCode::from(1)
        }
    }
}

fn http_server_main(args: &[OsString]) -> ExitCode {
    let mut f = Flags { args, i: 0 };
    let mut n: Option<usize> = None;
    let mut names_file: Option<PathBuf> = None;
    let mut port = 0u16;
    while let Some(a) = f.next() {
        let r = match a {
            "--tools" => f.number(a).map(|v| n = Some(v)),
            "--names" => f.value(a).map(|v| names_file = Some(PathBuf::from(v))),
            "--port" => f.number(a).map(|v| port = v as u16),
            other => Err(format!("http-server: unknown flag `{other}`")),
        };
        if let Err(e) = r {
            return fail(&e);
        }
    }
    let names = match read_names(names_file.as_ref()) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let names = tools::take(&names, n.unwrap_or(names.len()));
    match http::serve(server::Server::new(&tools::tools_array(&names)), port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-load http-server: {e}");
            ExitCode::from(1)
        }
    }
}

fn http_forward_main(args: &[OsString]) -> ExitCode {
    let mut upstream = String::new();
    let mut port = 0u16;
    let mut f = Flags { args, i: 0 };
    while let Some(a) = f.next() {
        let r = match a {
            "--upstream" => f.string(a).map(|v| upstream = v),
            "--port" => f.number(a).map(|v| port = v as u16),
            other => Err(format!("http-forward: unknown flag `{other}`")),
        };
        if let Err(e) = r {
            return fail(&e);
        }
    }
    if upstream.is_empty() {
        return fail("http-forward: --upstream URL is required");
    }
    match forward::run(&upstream, port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-load http-forward: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_http_main(args: &[OsString]) -> ExitCode {
    let mut o = http::Options {
        proxy: PathBuf::new(),
        server: "fusionauth-nolimit".into(),
        tools: 0,
        tool: run::DEFAULT_TOOL.into(),
        arguments: run::DEFAULT_ARGUMENTS.into(),
        calls: 5_000,
        warmup: 500,
        rounds: 3,
    };
    let mut f = Flags { args, i: 0 };
    while let Some(a) = f.next() {
        let r = match a {
            "--proxy" => f.value(a).map(|v| o.proxy = PathBuf::from(v)),
            "--server" => f.string(a).map(|v| o.server = v),
            "--calls" => f.number(a).map(|v| o.calls = v),
            "--warmup" => f.number(a).map(|v| o.warmup = v),
            "--rounds" => f.number(a).map(|v| o.rounds = v.max(1)),
            "--tools" => f.number(a).map(|v| o.tools = v),
            other => Err(format!("run-http: unknown flag `{other}`")),
        };
        if let Err(e) = r {
            return fail(&e);
        }
    }
    if o.proxy.as_os_str().is_empty() {
        return fail("run-http: --proxy PATH is required");
    }
    if o.tools == 0 {
        o.tools = match read_names(None) {
            Ok(n) => n.len(),
            Err(e) => return fail(&e),
        };
    }
    match http::run(&o) {
        Ok(report) => {
            print!("{}", http::table(&o, &report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-load run-http: {e}");
            ExitCode::from(1)
        }
    }
}
