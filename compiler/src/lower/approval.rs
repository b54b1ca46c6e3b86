//! Approval settings shared by the YAML dialects: rule timeouts and
//! Intercept's top-level `approvals:` block (notifications of new requests).

use portcullis_core::policy::go_quote;

use super::{Str, check_keys, get, map_entries, string_field};
use crate::ir::ApprovalConfig;
use crate::source::{Diagnostic, Span};
use crate::syntax::yaml::Node;

/// Help for a malformed approval timeout.
const TIMEOUT_HELP: &str = "write a positive duration as Go writes it, such as `30s`, `15m`, `1.5h`, `1h30m`, `500ms` or `1d` (units: ns, us, ms, s, m, h, d; at least 1ms, at most 7 days)";

/// An approval timeout (`approval_timeout: 30m`, `timeout: 1h`) in
/// milliseconds; an error naming `what` (`tools.x.rules[0].approval_timeout`) otherwise.
pub fn timeout(what: &str, s: &Str, diags: &mut Vec<Diagnostic>) -> Option<u64> {
    match crate::ir::parse_approval_timeout(&s.text) {
        Ok(ms) => Some(ms),
        Err(why) => {
            let help = if why.contains("at most") {
                why
            } else {
                TIMEOUT_HELP.to_string()
            };
            diags.push(
                Diagnostic::error(
                    format!(
                        "{what}: invalid duration {}: must be a positive duration such as \"30m\"",
                        go_quote(&s.text)
                    ),
                    s.span,
                )
                .with_help(help),
            );
            None
        }
    }
}

/// Intercept's top-level `approvals:` block:
///
/// ```yaml
/// approvals:
///   default_timeout: 15m      # for rules without approval_timeout
///   dedupe_window: 10m        # an identical pending request is reused
///   notify:
///     webhook:
///       url: https://hooks.example.com/approvals
///       secret_env: APPROVAL_WEBHOOK_SECRET   # or secret: "..." (embedded: warned)
/// ```
///
/// Unknown keys are errors; a webhook needs an http(s) `url`, and at most
/// one of `secret` and `secret_env`.
pub fn decode_block(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<ApprovalConfig> {
    let entries = map_entries(node, "approvals", diags)?;
    check_keys(
        entries,
        &["default_timeout", "dedupe_window", "notify"],
        "the approvals block",
        diags,
    );
    let mut config = ApprovalConfig::default();
    if let Some(t) = get(entries, "default_timeout") {
        let s = string_field(t, "approvals.default_timeout", diags);
        config.default_timeout_ms = timeout("approvals.default_timeout", &s, diags);
    }
    if let Some(t) = get(entries, "dedupe_window") {
        let s = string_field(t, "approvals.dedupe_window", diags);
        config.dedupe_window_ms = timeout("approvals.dedupe_window", &s, diags);
    }
    let Some(notify) = get(entries, "notify") else {
        return Some(config);
    };
    let notify_entries = map_entries(notify, "approvals.notify", diags)?;
    check_keys(
        notify_entries,
        &["webhook"],
        "the approvals.notify block",
        diags,
    );
    let Some(webhook) = get(notify_entries, "webhook") else {
        return Some(config);
    };
    decode_webhook(webhook, &mut config, diags);
    Some(config)
}

fn decode_webhook(node: &Node, config: &mut ApprovalConfig, diags: &mut Vec<Diagnostic>) {
    let Some(entries) = map_entries(node, "approvals.notify.webhook", diags) else {
        return;
    };
    check_keys(
        entries,
        &["url", "secret", "secret_env"],
        "the approvals webhook",
        diags,
    );
    let field = |key: &str, diags: &mut Vec<Diagnostic>| {
        get(entries, key)
            .map(|v| string_field(v, &format!("approvals.notify.webhook.{key}"), diags))
    };
    let url = field("url", diags);
    let secret = field("secret", diags);
    let secret_env = field("secret_env", diags);
    match &url {
        None => diags.push(
            Diagnostic::error("approvals.notify.webhook: url is required", node.span)
                .with_help("add `url: https://...`: where new approval requests are POSTed"),
        ),
        Some(u) if !valid_url(&u.text) => diags.push(
            Diagnostic::error(
                format!(
                    "approvals.notify.webhook.url must be an http or https URL, got {}",
                    go_quote(&u.text)
                ),
                u.span,
            )
            .with_help("write e.g. `url: https://hooks.example.com/approvals`"),
        ),
        Some(u) => config.webhook_url = Some(u.text.clone()),
    }
    if let (Some(s), Some(_)) = (&secret, &secret_env) {
        diags.push(
            Diagnostic::error(
                "approvals.notify.webhook: secret and secret_env are mutually exclusive",
                s.span,
            )
            .with_help("keep `secret_env` (the secret stays out of the policy and the binary)"),
        );
    }
    if let Some(e) = &secret_env {
        if valid_env_name(&e.text) {
            config.secret_env = Some(e.text.clone());
        } else {
            diags.push(
                Diagnostic::error(
                    format!(
                        "approvals.notify.webhook.secret_env must name an environment variable, got {}",
                        go_quote(&e.text)
                    ),
                    e.span,
                )
                .with_help("letters, digits and `_`, not starting with a digit, e.g. `APPROVAL_WEBHOOK_SECRET`"),
            );
        }
    }
    if let Some(s) = &secret {
        if s.text.is_empty() {
            diags.push(
                Diagnostic::error("approvals.notify.webhook.secret must not be empty", s.span)
                    .with_help("remove it, or use `secret_env`"),
            );
        } else {
            diags.push(secret_warning(s.span));
            config.secret = Some(s.text.clone());
        }
    }
}

/// The warning for a webhook secret written into a policy.
pub fn secret_warning(span: Span) -> Diagnostic {
    Diagnostic::warning(
        "the webhook secret is written in the policy: it is embedded in the compiled binary and readable by anyone who can read the file or the binary",
        span,
    )
    .with_help("use `secret_env: NAME` and set the secret in that environment variable of the proxy")
}

/// `http://` or `https://` followed by a host.
fn valid_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(char::is_whitespace)
    })
}

/// A POSIX-style environment variable name.
fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Approve, Channels, ServerPolicy};
    use crate::{Input, compile};

    fn one(path: &str, text: &str) -> (ServerPolicy, Vec<String>) {
        let out = compile(&[Input {
            server: "s".into(),
            path: path.into(),
            text: text.into(),
        }]);
        let warnings = out
            .diagnostics
            .0
            .iter()
            .map(|d| d.message.clone())
            .collect();
        let p = out
            .policies
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{path} does not compile"));
        (p, warnings)
    }

    fn approvals(p: &ServerPolicy) -> Vec<Approve> {
        p.rules.iter().filter_map(|r| r.approve.clone()).collect()
    }

    #[test]
    fn the_same_approval_in_every_dialect_is_the_same_ir() {
        let (intercept, _) = one(
            "s.yaml",
            "version: \"1\"\ntools:\n  pay:\n    rules:\n      - name: big\n        action: require_approval\n        conditions:\n          - {path: args.amount, op: gt, value: 100}\n        on_deny: Big payments need a human\n        approval_timeout: 1h\n",
        );
        let (dsl, _) = one(
            "s.policy",
            "server s {\n  tool pay {\n    approve \"Big payments need a human\" when args.amount > 100 timeout 1h\n  }\n}\n",
        );
        // Intercept's conditions are a conjunction; the DSL's single test is not wrapped.
        let mut a = approvals(&intercept);
        if let crate::ir::Expr::And(items) = &a[0].when
            && items.len() == 1
        {
            a[0].when = items[0].clone();
        }
        assert_eq!(a, approvals(&dsl));
        assert_eq!(a[0].timeout_ms, 3_600_000);
        assert_eq!(a[0].channels, Channels::BOTH);

        let (cat, _) = one(
            "s.yaml",
            "tools:\n  pay:\n    rules:\n      - action: approve\n        reason: Every payment needs a human\n        via: client\n",
        );
        let (dsl, _) = one(
            "s.policy",
            "server s {\n  tool pay {\n    approve \"Every payment needs a human\" via client\n  }\n}\n",
        );
        assert_eq!(approvals(&cat), approvals(&dsl));
        assert_eq!(
            approvals(&cat)[0].channels,
            Channels {
                client: true,
                operator: false
            }
        );
        assert_eq!(
            approvals(&cat)[0].timeout_ms,
            crate::ir::DEFAULT_APPROVAL_TIMEOUT_MS
        );
    }

    #[test]
    fn an_approval_behind_an_unconditional_deny_is_reported() {
        let (_, warnings) = one(
            "s.policy",
            "server s {\n  tool pay {\n    approve \"ask\"\n    deny \"never\"\n  }\n}\n",
        );
        assert!(
            warnings
                .iter()
                .any(|w| w == "approval rule \"ask\" can never ask: every call is denied"),
            "{warnings:?}"
        );
    }

    #[test]
    fn urls_and_env_names() {
        assert!(valid_url("https://hooks.example.com/a?b=1"));
        assert!(valid_url("http://127.0.0.1:9000"));
        assert!(!valid_url("ftp://x"));
        assert!(!valid_url("https://"));
        assert!(!valid_url("https://a b"));
        assert!(valid_env_name("APPROVAL_SECRET_2"));
        assert!(valid_env_name("_X"));
        assert!(!valid_env_name("2X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }
}
