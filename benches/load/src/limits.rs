//! `mcp-load limits`: what a rate-limited call costs with each counter store.
//!
//! The same serial `tools/call` round trips through the proxy with a policy
//! that has no limit on the call (the baseline) and with the same policy plus
//! a limit on every call that is never reached (so every call reserves a
//! counter and is allowed), once per store given with `--backend`. Rounds
//! alternate between the configurations so drift hits all of them; each
//! round starts fresh proxy processes. The extra latency of a rate-limited
//! call is its p50 minus the baseline's p50.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

use crate::procfs;
use crate::run::{Plan, SessionResult, call_tail, measure_session, os};

/// Options of `mcp-load limits`.
#[derive(Debug, Clone)]
pub struct Options {
    pub proxy: PathBuf,
    /// The policy with a never-reached limit on every call.
    pub server: String,
    /// The same policy without it.
    pub nolimit_server: String,
    pub tools: usize,
    pub tool: String,
    pub arguments: String,
    pub calls: usize,
    pub warmup: usize,
    pub rounds: usize,
    /// `(name, proxy flags)`; the flags are split on spaces.
    pub backends: Vec<(String, Vec<String>)>,
    pub json: bool,
}

/// One configuration's rounds.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub name: String,
    pub flags: String,
    pub rounds: Vec<SessionResult>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Row {
    fn p(&self, f: fn(&SessionResult) -> u64) -> f64 {
        median(self.rounds.iter().map(|r| f(r) as f64 / 1e3).collect())
    }
    fn p50(&self) -> f64 {
        self.p(|r| r.serial.p50)
    }
    fn p90(&self) -> f64 {
        self.p(|r| r.serial.p90)
    }
    fn p99(&self) -> f64 {
        self.p(|r| r.serial.p99)
    }
    fn cpu(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .map(|r| r.serial_cost.cpu_us_per_call)
                .collect(),
        )
    }
    fn switches(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .map(|r| r.serial_cost.switches_per_call)
                .collect(),
        )
    }
    fn counts(&self) -> (usize, usize, usize) {
        self.rounds.iter().fold((0, 0, 0), |(a, d, e), r| {
            (
                a + r.serial_counts.allowed,
                d + r.serial_counts.denied,
                e + r.serial_counts.errors,
            )
        })
    }
}

/// Runs every configuration `rounds` times, alternating.
pub fn run(o: &Options) -> io::Result<Vec<Row>> {
    let exe = std::env::current_exe()?;
    let tick_hz = procfs::clock_ticks();
    let mut server_cmd = vec![exe.into_os_string()];
    server_cmd.extend(os(&["server", "--tools", &o.tools.to_string()]));
    let proxy_cmd = |server: &str, flags: &[String]| {
        let mut c: Vec<OsString> = vec![o.proxy.clone().into_os_string()];
        c.extend(os(&["--server", server, "--log-level", "error"]));
        c.extend(flags.iter().map(OsString::from));
        c.push("--".into());
        c.extend(server_cmd.iter().cloned());
        c
    };
    let tail = call_tail(&o.tool, &o.arguments);
    let plan = Plan {
        warmup: o.warmup,
        calls: o.calls,
        lists: 0,
        pipelined: 0,
        rounds: 0,
        smaps: None,
    };
    let mut configs: Vec<(Row, Vec<OsString>)> = vec![(
        Row {
            name: "no limit (baseline)".into(),
            flags: format!("--server {}", o.nolimit_server),
            rounds: Vec::new(),
        },
        proxy_cmd(&o.nolimit_server, &[]),
    )];
    for (name, flags) in &o.backends {
        configs.push((
            Row {
                name: name.clone(),
                flags: format!("--server {} {}", o.server, flags.join(" "))
                    .trim_end()
                    .to_string(),
                rounds: Vec::new(),
            },
            proxy_cmd(&o.server, flags),
        ));
    }
    for round in 0..o.rounds {
        for (row, cmd) in &mut configs {
            if !o.json {
                eprintln!(
                    "mcp-load limits: round {}/{}: {}",
                    round + 1,
                    o.rounds,
                    row.name
                );
            }
            row.rounds
                .push(measure_session(&row.name, cmd, &plan, &tail, tick_hz)?);
        }
    }
    Ok(configs.into_iter().map(|(r, _)| r).collect())
}

/// The human-readable table.
pub fn table(o: &Options, rows: &[Row]) -> String {
    let mut s = String::new();
    macro_rules! w {
        ($($t:tt)*) => { s.push_str(&format!($($t)*)); s.push('\n'); };
    }
    w!("mcp-load limits: cost of a rate-limited tools/call per counter store");
    w!("  proxy      {}", o.proxy.display());
    w!(
        "  call       tools/call {} ({} bytes of arguments), serial round trips through the proxy to mcp-load server",
        o.tool,
        o.arguments.len()
    );
    w!(
        "  runs       {} rounds x {} calls after {} warm-up, configurations alternating; medians over rounds",
        o.rounds,
        o.calls,
        o.warmup
    );
    w!(
        "  policies   --server {}: no limit on the call; --server {}: the same plus a limit on every call that is never reached",
        o.nolimit_server,
        o.server
    );
    w!("");
    w!(
        "  {:<22} {:>9} {:>9} {:>9} {:>12} {:>12} {:>11} {:>9}  {}",
        "store",
        "p50 us",
        "p90 us",
        "p99 us",
        "extra p50",
        "proxy CPU",
        "switches",
        "allowed",
        "proxy flags"
    );
    let base = rows.first().map_or(0.0, Row::p50);
    let base_cpu = rows.first().map_or(0.0, Row::cpu);
    for (i, r) in rows.iter().enumerate() {
        let (allowed, denied, errors) = r.counts();
        w!(
            "  {:<22} {:>9.1} {:>9.1} {:>9.1} {:>12} {:>12} {:>11.2} {:>9}  {}{}",
            r.name,
            r.p50(),
            r.p90(),
            r.p99(),
            if i == 0 {
                "-".to_string()
            } else {
                format!("{:+.1} us", r.p50() - base)
            },
            if i == 0 {
                format!("{:.1} us", r.cpu())
            } else {
                format!("{:.1} ({:+.1})", r.cpu(), r.cpu() - base_cpu)
            },
            r.switches(),
            allowed,
            r.flags,
            if denied + errors > 0 {
                format!("  ({denied} denied, {errors} errors!)")
            } else {
                String::new()
            }
        );
    }
    w!("");
    w!(
        "  extra p50: the store's cost per rate-limited call (PolicyLayer Intercept: about 170 us; goal for SQLite: < 34 us)"
    );
    w!(
        "  proxy CPU: CPU time of the proxy process per call, all threads, in us (change vs the baseline)"
    );
    s
}

/// The machine-readable report.
pub fn json(o: &Options, rows: &[Row]) -> String {
    let base = rows.first().map_or(0.0, Row::p50);
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let mut name = String::new();
            crate::json::push_str(&mut name, &r.name);
            let mut flags = String::new();
            crate::json::push_str(&mut flags, &r.flags);
            let (allowed, denied, errors) = r.counts();
            format!(
                "{{\"store\":{name},\"flags\":{flags},\"p50_us\":{:.2},\"p90_us\":{:.2},\"p99_us\":{:.2},\"extra_p50_us\":{:.2},\"proxy_cpu_us_per_call\":{:.2},\"switches_per_call\":{:.3},\"allowed\":{allowed},\"denied\":{denied},\"errors\":{errors}}}",
                r.p50(),
                r.p90(),
                r.p99(),
                r.p50() - base,
                r.cpu(),
                r.switches()
            )
        })
        .collect();
    format!(
        "{{\"calls\":{},\"rounds\":{},\"rows\":[{}]}}",
        o.calls,
        o.rounds,
        items.join(",")
    )
}
