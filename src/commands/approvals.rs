//! `portcullis approvals list|show|approve|deny`: the operator side of the
//! approval flow. Requests are read from and decided in the proxies' state
//! store: the SQLite file of `--state-dir`, or Redis (`--state-dsn`): the
//! same records every proxy sharing it consumes.

use portcullis_core::counters::UnixMillis;
use portcullis_proxy::admin::{self, ActionError};
use portcullis_proxy::approvals::{ApprovalStore, Record};
use portcullis_proxy::audit::{Identity, render};
use portcullis_proxy::state::redis::{RedisOptions, RedisStore};
use portcullis_proxy::state::sqlite::SqliteStore;

use crate::cli::{ApprovalsAction, ApprovalsArgs};

fn fail(msg: &str, help: &str) -> i32 {
    eprintln!("error: {msg}");
    if !help.is_empty() {
        eprintln!("  = help: {help}");
    }
    1
}

/// Opens the store the flags name.
fn open(a: &ApprovalsArgs) -> Result<Box<dyn ApprovalStore>, i32> {
    if let Some(dsn) = &a.state_dsn {
        return match RedisStore::open_with(dsn, &a.state_prefix, &RedisOptions::default()) {
            Ok(s) => Ok(Box::new(s)),
            Err(e) => Err(fail(
                &e,
                "check that Redis is running and that the DSN is the proxies' --state-dsn",
            )),
        };
    }
    let Some(dir) = &a.state_dir else {
        return Err(fail(
            "approval requests are kept in the proxies' state store: --state-dir or --state-dsn is required",
            "pass the --state-dir DIR or --state-dsn DSN the proxies run with (without one, a proxy keeps its requests in memory, out of reach)",
        ));
    };
    if !dir
        .join(portcullis_proxy::state::sqlite::FILE_NAME)
        .exists()
    {
        return Err(fail(
            &format!(
                "no state in {}: no proxy has used it as its --state-dir",
                dir.display()
            ),
            "pass the --state-dir DIR the proxies run with",
        ));
    }
    match SqliteStore::open(dir, &a.state_prefix) {
        Ok(s) => Ok(Box::new(s)),
        Err(e) => Err(fail(&e, "")),
    }
}

/// Runs the subcommand; the exit code.
pub fn run(a: &ApprovalsArgs) -> i32 {
    let store = match open(a) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let store = store.as_ref();
    let now = UnixMillis::now();
    match &a.action {
        ApprovalsAction::List { all, json } => list(store, now, *all, *json),
        ApprovalsAction::Show { id, json } => show(store, now, id, *json),
        ApprovalsAction::Expire => match store.sweep(now) {
            Ok(n) => {
                println!(
                    "{n} approval request{} expired.",
                    if n == 1 { "" } else { "s" }
                );
                0
            }
            Err(e) => fail(&format!("approval state unavailable: {}", e.0), ""),
        },
        ApprovalsAction::Approve { id, reason, by } => decide(store, a, now, id, true, reason, by),
        ApprovalsAction::Deny { id, reason, by } => decide(store, a, now, id, false, reason, by),
    }
}

fn json_of(r: &Record, now: UnixMillis) -> serde_json::Value {
    admin::record_json(r, now)
}

/// An operator action's error, as the command prints it (exit 1).
fn action_fail(e: &ActionError) -> i32 {
    fail(&e.message(), e.help())
}

fn caller(r: &Record) -> String {
    if r.sub.is_empty() && r.iss.is_empty() {
        "-".into()
    } else {
        format!("{} ({})", r.sub, r.iss)
    }
}

fn list(store: &dyn ApprovalStore, now: UnixMillis, all: bool, json: bool) -> i32 {
    let records = match admin::list(store, all, now) {
        Ok(r) => r,
        Err(e) => return action_fail(&e),
    };
    let shown: Vec<&Record> = records.iter().collect();
    if json {
        let v: Vec<serde_json::Value> = shown.iter().map(|r| json_of(r, now)).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    if shown.is_empty() {
        println!(
            "{}",
            if all {
                "No approval requests."
            } else {
                "No pending approval requests."
            }
        );
        return 0;
    }
    let rows: Vec<[String; 6]> = shown
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.status_at(now).as_str().to_string(),
                format!("{}/{}", r.server, r.tool),
                r.rule.clone(),
                caller(r),
                r.expires.to_rfc3339(),
            ]
        })
        .collect();
    let head = ["ID", "STATUS", "TOOL", "RULE", "CALLER", "EXPIRES"];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&head.map(String::from));
    for row in &rows {
        line(row);
    }
    0
}

fn show(store: &dyn ApprovalStore, now: UnixMillis, id: &str, json: bool) -> i32 {
    let r = match admin::show(store, id, now) {
        Ok(r) => r,
        Err(e) => return action_fail(&e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_of(&r, now)).unwrap_or_default()
        );
        return 0;
    }
    let args = serde_json::from_str::<serde_json::Value>(&r.arguments)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| r.arguments.clone());
    println!("Approval {}", r.id);
    println!("  status     {}", r.status_at(now).as_str());
    println!("  call       {}/{}", r.server, r.tool);
    println!("  rule       {}", r.rule);
    println!("  message    {}", r.message);
    println!("  caller     {}", caller(&r));
    println!("  requested  {}", r.created.to_rfc3339());
    println!("  expires    {}", r.expires.to_rfc3339());
    if !r.decided_by.is_empty() {
        println!("  decided by {}", r.decided_by);
    }
    if !r.reason.is_empty() {
        println!("  reason     {}", r.reason);
    }
    println!("  arguments");
    for l in args.lines() {
        println!("    {l}");
    }
    0
}

fn decide(
    store: &dyn ApprovalStore,
    a: &ApprovalsArgs,
    now: UnixMillis,
    id: &str,
    approve: bool,
    reason: &str,
    by: &Option<String>,
) -> i32 {
    let by = by
        .clone()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "operator".to_string());
    let r = match admin::decide(store, id, approve, &by, reason, now) {
        Ok(r) => r,
        Err(e) => return action_fail(&e),
    };
    if let Some(path) = &a.audit_log {
        let identity = Identity {
            server: Box::leak(r.server.clone().into_boxed_str()),
            digest: "",
            pid: std::process::id(),
            session: String::new(),
        };
        let line = render(&identity, &admin::event(&r, approve, &by, reason, now));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &line));
        if let Err(e) = written {
            eprintln!(
                "warning: {id} was {}, but the decision log {} could not be written: {e}",
                if approve { "approved" } else { "denied" },
                path.display()
            );
        }
    }
    println!("{}", admin::decided_text(&r, approve, reason));
    0
}
