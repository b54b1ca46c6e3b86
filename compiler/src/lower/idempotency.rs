//! Idempotency windows in the YAML catalogue form (Intercept's
//! `idempotency_window` is read in [`super::intercept`], the language's
//! `once per` in [`super::dsl`]; all lower to [`Idempotency`]).
//!
//! ```yaml
//! tools:
//!   create_refund:
//!     rules:
//!       - action: allow
//!         idempotency: { window: 5m, by: [args.order_id], mode: replay }
//! ```

use super::{check_keys, get, map_entries, seq_items, string_field};
use crate::ir::{ArgPath, Idempotency, IdempotencyMode, Loc, parse_duration, show_duration};
use crate::source::Diagnostic;
use crate::syntax::yaml::Node;

/// The refusal message when the policy gives none.
pub fn default_message(window_ms: u64) -> String {
    format!(
        "Duplicate call: an identical call was made within the last {}",
        show_duration(window_ms)
    )
}

/// Reads a catalogue rule's `idempotency` mapping; `reason` is the rule's
/// (the refusal message when given).
pub fn catalogue(
    node: &Node,
    ctx: &str,
    reason: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Idempotency> {
    let entries = map_entries(node, ctx, diags)?;
    check_keys(entries, &["window", "by", "mode"], "idempotency", diags);
    let Some(w) = get(entries, "window") else {
        diags.push(
            Diagnostic::error(format!("{ctx} needs `window`"), node.span)
                .with_help("write e.g. `idempotency: { window: 5m }`"),
        );
        return None;
    };
    let w = string_field(w, &format!("{ctx}.window"), diags);
    let window_ms = match parse_duration(&w.text) {
        Ok(ms) => Some(ms),
        Err(help) => {
            diags.push(
                Diagnostic::error(
                    format!("{ctx}.window must be a duration, got {:?}", w.text),
                    w.span,
                )
                .with_help(help),
            );
            None
        }
    };
    let mode = match get(entries, "mode").map(|m| string_field(m, &format!("{ctx}.mode"), diags)) {
        None => IdempotencyMode::Replay,
        Some(m) if m.text == "replay" => IdempotencyMode::Replay,
        Some(m) if m.text == "refuse" => IdempotencyMode::Refuse,
        Some(m) => {
            diags.push(
                Diagnostic::error(
                    format!("{ctx}.mode must be \"replay\" or \"refuse\", got {:?}", m.text),
                    m.span,
                )
                .with_help("`replay` (the default) answers a duplicate with the first call's answer; `refuse` denies it"),
            );
            return None;
        }
    };
    let mut by = Vec::new();
    if let Some(list) = get(entries, "by") {
        for (i, item) in seq_items(list, &format!("{ctx}.by"), diags)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let p = string_field(item, &format!("{ctx}.by[{i}]"), diags);
            let segments: Vec<String> = p
                .text
                .strip_prefix("args.")
                .map(|rest| rest.split('.').map(str::to_string).collect())
                .unwrap_or_default();
            if segments.is_empty() || segments.iter().any(String::is_empty) {
                diags.push(
                    Diagnostic::error(
                        format!("{ctx}.by[{i}] must be an argument path, got {:?}", p.text),
                        p.span,
                    )
                    .with_help("write e.g. `by: [args.order_id]`"),
                );
                continue;
            }
            by.push(ArgPath::args(segments, Loc(p.span)));
        }
    }
    let window_ms = window_ms?;
    Some(Idempotency {
        window_ms,
        mode,
        by,
        message: reason.map_or_else(|| default_message(window_ms), str::to_string),
        loc: Loc(node.span),
    })
}
