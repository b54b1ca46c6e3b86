//! `portcullis explain`: how the policy decides one call, step by step.

use crate::cli::ExplainArgs;

/// Prints the explanation; 0 when the call could be explained, 1 otherwise
/// (whatever the decision: `explain` reports, it does not enforce).
#[cfg(feature = "dynamic")]
pub fn run(args: &ExplainArgs) -> i32 {
    use portcullis_compiler::eval::Evaluator;
    use portcullis_core::counters::{MemoryCounters, Ticket, UnixMillis};
    use portcullis_core::policy::{Env, FailMode};

    use crate::embedded;

    let fail = |msg: &str, help: &str| {
        eprintln!("error: {msg}");
        if !help.is_empty() {
            eprintln!("  = help: {help}");
        }
        1
    };
    let (set, compiled) = match &args.config {
        Some(path) => {
            let inputs = match portcullis_compiler::load_file_with_includes(path) {
                Ok(i) => i,
                Err(e) => return fail(&format!("reading {}: {e}", path.display()), ""),
            };
            match portcullis_compiler::compile(&inputs).into_set() {
                Ok(set) => (set, None),
                Err(o) => {
                    eprintln!("{}", o.render());
                    return fail(
                        "the policy does not compile",
                        "fix the errors above; `portcullis validate -c FILE` shows them too",
                    );
                }
            }
        }
        None => {
            let policy = match super::run::select_policy(args.server.as_deref(), None) {
                Ok(p) => p,
                Err((m, h)) => return fail(&m, &h),
            };
            match embedded::source_set() {
                Ok(set) => (set, Some(policy)),
                Err(e) => return fail(&format!("the embedded sources: {e}"), ""),
            }
        }
    };
    let server = compiled.map(|p| p.meta().server);
    let Some(ir) = set
        .servers
        .iter()
        .find(|p| server.is_none_or(|s| p.name == s))
    else {
        return fail("the file holds no server policy", "");
    };
    let principal = match &args.claims {
        None => None,
        Some(claims) => match portcullis_core::Principal::from_claims(claims.as_bytes().to_vec()) {
            Ok(p) => Some(p),
            Err(e) => {
                return fail(
                    &format!("--claims: {e}"),
                    "pass the caller's claims as one JSON object with `sub` and `iss` strings, e.g. --claims '{\"sub\":\"alice\",\"iss\":\"https://idp.example\",\"groups\":[\"finance\"]}'",
                );
            }
        },
    };
    let ev = Evaluator::new(ir.clone(), &set.sources);
    let now = UnixMillis::now();
    use portcullis_core::call::Surface;
    let (surface, name) = match (&args.tool, &args.resource, &args.prompt) {
        (Some(t), _, _) => (Surface::Tool, t.as_str()),
        (_, Some(r), _) => (Surface::Resource, r.as_str()),
        (_, _, Some(p)) => (Surface::Prompt, p.as_str()),
        _ => return fail("nothing to explain", "pass --tool, --resource or --prompt"),
    };
    let text = match portcullis_compiler::explain::explain_on(
        &ev,
        &set.sources,
        surface,
        name,
        &args.args,
        now,
        principal.as_ref(),
    ) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                &e,
                if e.starts_with("the URI") {
                    "see docs/surfaces.md for how URIs are normalised"
                } else {
                    "pass the arguments as one JSON object, e.g. --args '{\"amount\": 500}'"
                },
            );
        }
    };
    print!("{text}");
    // The compiled policy must agree with the evaluator; say so if not.
    let normalised = match surface {
        Surface::Resource => portcullis_core::uri::normalize(name).ok(),
        _ => Some(name.to_string()),
    };
    if let Some(policy) = compiled
        && let Some(name) = normalised.as_deref()
        && let Ok(call) = portcullis_core::call::ToolCall::on(
            surface,
            name,
            args.args.as_bytes(),
            portcullis_core::json::Strictness::STRICT,
        )
        && (surface == Surface::Tool || policy.governs(surface))
    {
        let counters = MemoryCounters::new();
        let env = Env {
            counters: &counters,
            now,
            session: 0,
            fail_mode: FailMode::Closed,
            principal: principal.as_ref(),
        };
        let a = policy.decide(&call, &env, &mut Ticket::default());
        let counters = MemoryCounters::new();
        let env = Env {
            counters: &counters,
            now,
            session: 0,
            fail_mode: FailMode::Closed,
            principal: principal.as_ref(),
        };
        let b = portcullis_core::Policy::decide(&ev, &call, &env, &mut Ticket::default());
        if (a.outcome, a.rule) != (b.outcome, b.rule) {
            eprintln!(
                "warning: the compiled policy decides {:?} by rule {:?}, the evaluator {:?} by rule {:?}: a compiler bug, please report it",
                a.outcome, a.rule, b.outcome, b.rule
            );
            return 1;
        }
    }
    0
}

/// Without the `dynamic` feature this binary links no evaluator.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &ExplainArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it cannot explain decisions\n  = help: use a development build of the same policies"
    );
    2
}
