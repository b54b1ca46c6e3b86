//! `portcullis approvals list|show|approve|deny`: the operator side of the
//! approval flow. Requests are read from and decided in the proxies' state
//! store: the SQLite file of `--state-dir`, or Redis (`--state-dsn`): the
//! same records every proxy sharing it consumes.

use portcullis_core::counters::UnixMillis;
use portcullis_proxy::approvals::{ApprovalStore, DecideError, Record, Status, is_id};
use portcullis_proxy::audit::{Event, Identity, render};
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
    let arguments: serde_json::Value =
        serde_json::from_str(&r.arguments).unwrap_or_else(|_| r.arguments.clone().into());
    serde_json::json!({
        "id": r.id,
        "status": r.status_at(now).as_str(),
        "server": r.server,
        "tool": r.tool,
        "arguments": arguments,
        "rule": r.rule,
        "message": r.message,
        "sub": r.sub,
        "iss": r.iss,
        "created": r.created.to_rfc3339(),
        "expires": r.expires.to_rfc3339(),
        "decided_by": r.decided_by,
        "reason": r.reason,
        "fingerprint": r.fingerprint,
    })
}

fn caller(r: &Record) -> String {
    if r.sub.is_empty() && r.iss.is_empty() {
        "-".into()
    } else {
        format!("{} ({})", r.sub, r.iss)
    }
}

fn list(store: &dyn ApprovalStore, now: UnixMillis, all: bool, json: bool) -> i32 {
    let records = match store.list(now) {
        Ok(r) => r,
        Err(e) => return fail(&format!("approval state unavailable: {}", e.0), ""),
    };
    let shown: Vec<&Record> = records
        .iter()
        .filter(|r| all || r.status_at(now) == Status::Pending)
        .collect();
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

fn unknown(id: &str) -> i32 {
    if is_id(id) {
        fail(
            &format!("no approval request {id}"),
            "list them with `portcullis approvals list --all` (same --state-dir and --state-prefix as the proxies)",
        )
    } else {
        fail(
            &format!("{id:?} is not an approval id"),
            "approval ids look like apr_ followed by 32 hex digits, as the refused call's answer names them",
        )
    }
}

fn show(store: &dyn ApprovalStore, now: UnixMillis, id: &str, json: bool) -> i32 {
    let r = match store.get(id, now) {
        Ok(Some(r)) => r,
        Ok(None) => return unknown(id),
        Err(e) => return fail(&format!("approval state unavailable: {}", e.0), ""),
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
    if !is_id(id) {
        return unknown(id);
    }
    let by = by
        .clone()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "operator".to_string());
    let verb = if approve { "approve" } else { "deny" };
    let r = match store.decide(id, approve, &by, reason, now) {
        Ok(r) => r,
        Err(DecideError::Unknown) => return unknown(id),
        Err(e @ DecideError::NotPending(_)) => {
            return fail(
                &format!("cannot {verb} {id}: {e}"),
                "only a pending request can be decided; an expired one is asked again when the agent retries",
            );
        }
        Err(e) => return fail(&format!("cannot {verb} {id}: {e}"), ""),
    };
    if let Some(path) = &a.audit_log {
        let identity = Identity {
            server: Box::leak(r.server.clone().into_boxed_str()),
            digest: "",
            pid: std::process::id(),
            session: String::new(),
        };
        let line = render(
            &identity,
            &Event::Approval {
                at: now,
                tool: r.tool.clone(),
                stage: if approve { "approved" } else { "denied" },
                id: r.id.clone(),
                rule: r.rule.clone(),
                by: by.clone(),
                message: reason.to_string(),
                session: None,
                principal: None,
            },
        );
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
    if approve {
        println!(
            "Approved {id} ({}/{}, rule {:?}) until {}: the identical call is forwarded once when the agent retries.",
            r.server,
            r.tool,
            r.rule,
            r.expires.to_rfc3339()
        );
    } else {
        println!(
            "Denied {id} ({}/{}, rule {:?}){}: the agent's identical retries are refused until {}.",
            r.server,
            r.tool,
            r.rule,
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            },
            r.expires.to_rfc3339()
        );
    }
    0
}
