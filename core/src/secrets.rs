//! Secret scanning of answers: the built-in patterns and the one-pass scanner.
//!
//! Every pattern, built-in or a policy's own, is compiled into one
//! multi-pattern [`meta::Regex`] (a lazy DFA with a literal prefilter over the
//! patterns' prefixes): one pass over the bytes finds the leftmost match of
//! any pattern. The clean path allocates nothing: no match, no allocation.
//!
//! The built-in set is documented in `docs/results.md` (each pattern with an
//! example); the table below is the source of truth and the unit tests keep
//! both honest.

use regex_automata::meta::{self, Regex};
use regex_automata::{Anchored, Input};

/// What a matching pattern does to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Replace the match with `[REDACTED:name]` and note it in `_meta`.
    Redact,
    /// Replace the whole answer with an `isError` result.
    Deny,
}

impl Action {
    /// `redact` or `deny` (metric label, decision log, policy text).
    pub const fn name(self) -> &'static str {
        match self {
            Action::Redact => "redact",
            Action::Deny => "deny",
        }
    }
}

/// How a built-in pattern's match is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The match is the secret.
    Plain,
    /// `key = value`: the value (after the first `:` or `=` and any quotes
    /// and spaces) must be long and random enough ([`is_high_entropy`]); only
    /// the value is redacted, the key stays readable.
    Assignment,
}

/// One built-in secret format.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The rule name in markers, `_meta`, logs and metrics.
    pub name: &'static str,
    /// The pattern (Rust regex syntax).
    pub regex: &'static str,
    /// How a match is confirmed.
    pub check: Check,
    /// What it finds, for `docs/results.md` and `explain`.
    pub what: &'static str,
    /// A text holding one (fake) secret of this format.
    pub example: &'static str,
    /// The pattern for the raw JSON text of an answer (escapes not decoded):
    /// it finds at least every place where `regex` matches the decoded text
    /// (no word boundaries, escaped quotes and whitespace allowed), so a
    /// clean raw text needs no decoding. Answers with `\\u` or `\\/` escapes
    /// are always decoded.
    pub raw: &'static str,
}

/// The built-in secret formats (`secrets` in a policy). Patterns use ASCII
/// classes and ASCII word boundaries so they compile to a DFA.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "gcp-service-account-key",
        regex: r#""private_key"\s*:\s*"-----BEGIN[A-Z0-9 ]{0,24}PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*(?:-----END[A-Z0-9 ]{0,24}PRIVATE KEY-----(?:\\n)*")?"#,
        check: Check::Plain,
        what: "the private_key member of a Google Cloud service-account key file (JSON in a text)",
        example: r#"{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"}"#,
        raw: r"-----BEGIN[A-Z0-9 ]{0,24}PRIVATE KEY-----",
    },
    Builtin {
        name: "private-key",
        regex: r"-----BEGIN[A-Z0-9 ]{0,24}PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*(?:-----END[A-Z0-9 ]{0,24}PRIVATE KEY-----)?",
        check: Check::Plain,
        what: "a PEM private key block (RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8), also when cut short",
        example: "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n-----END RSA PRIVATE KEY-----",
        raw: r"-----BEGIN[A-Z0-9 ]{0,24}PRIVATE KEY-----",
    },
    Builtin {
        name: "aws-access-key-id",
        regex: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?-u:\b)",
        check: Check::Plain,
        what: "an AWS access key id (long-term AKIA, temporary ASIA, ...)",
        example: "AKIAIOSFODNN7EXAMPLE",
        raw: r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}",
    },
    Builtin {
        name: "aws-secret-access-key",
        regex: r#"(?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY|aws_secret_key|AWS_SECRET_KEY|SecretAccessKey|secretAccessKey)["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}"#,
        check: Check::Plain,
        what: "an AWS secret access key assigned to its usual name (credentials file, environment, JSON)",
        example: "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        raw: r#"(?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY|aws_secret_key|AWS_SECRET_KEY|SecretAccessKey|secretAccessKey)(?:\?["'])?(?:\s|\[nrt])*[:=](?:\s|\[nrt])*(?:\?["'])?[A-Za-z0-9/+]{40}"#,
    },
    Builtin {
        name: "gcp-api-key",
        regex: r"AIza[0-9A-Za-z_\-]{35}",
        check: Check::Plain,
        what: "a Google API key",
        example: "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
        raw: r"AIza[0-9A-Za-z_\-]{35}",
    },
    Builtin {
        name: "azure-connection-string",
        regex: r"DefaultEndpointsProtocol=https?;AccountName=[A-Za-z0-9]{3,24};AccountKey=[A-Za-z0-9+/]{86}==",
        check: Check::Plain,
        what: "an Azure Storage connection string with its account key",
        example: "DefaultEndpointsProtocol=https;AccountName=portcullisdev;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        raw: r"DefaultEndpointsProtocol=https?;AccountName=",
    },
    Builtin {
        name: "azure-account-key",
        regex: r"(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{42,86}={0,2}",
        check: Check::Plain,
        what: "an Azure storage account key or Service Bus / Event Hubs shared access key",
        example: "SharedAccessKey=Zs9r3qPqN2hWk4yX7vB1cD5eF8gH0jK2lM4nO6pQ8rS=",
        raw: r"(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{42}",
    },
    Builtin {
        name: "github-token",
        regex: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)",
        check: Check::Plain,
        what: "a GitHub token: personal (ghp_, github_pat_), OAuth (gho_), user-to-server (ghu_), server-to-server (ghs_), refresh (ghr_)",
        example: "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        raw: r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22}",
    },
    Builtin {
        name: "slack-token",
        regex: r"xox[abprs]-[0-9]{6,}-[0-9A-Za-z\-]{8,}",
        check: Check::Plain,
        what: "a Slack token (bot xoxb-, user xoxp-, app xoxa-, refresh xoxr-, legacy xoxs-)",
        example: "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        raw: r"xox[abprs]-[0-9]{6,}-[0-9A-Za-z\-]{8}",
    },
    Builtin {
        name: "stripe-key",
        regex: r"(?-u:\b)(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,247}(?-u:\b)",
        check: Check::Plain,
        what: "a Stripe secret or restricted key, live or test",
        example: "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        raw: r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24}",
    },
    Builtin {
        name: "jwt",
        regex: r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}",
        check: Check::Plain,
        what: "a signed JSON Web Token (header and payload both JSON objects)",
        example: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        raw: r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16}",
    },
    Builtin {
        name: "secret-assignment",
        regex: r#"(?:password|Password|PASSWORD|passwd|PASSWD|secret|Secret|SECRET|token|Token|TOKEN|api_key|apiKey|apikey|API_KEY|APIKEY|access_key|accessKey|ACCESS_KEY)[A-Za-z0-9_\-]{0,20}["']?\s*[:=]\s*["']?[A-Za-z0-9+/=_.!@#%^&*~\-]{16,}"#,
        check: Check::Assignment,
        what: "a password, secret, token or API key assigned a value of 16 or more characters with at least 3.5 bits of entropy per character",
        example: "DB_PASSWORD=Xk9#mQ2!vL7pR4zW8tN",
        raw: r#"(?:password|Password|PASSWORD|passwd|PASSWD|secret|Secret|SECRET|token|Token|TOKEN|api_key|apiKey|apikey|API_KEY|APIKEY|access_key|accessKey|ACCESS_KEY)[A-Za-z0-9_\-]{0,20}(?:\\?["'])?(?:\s|\\[nrt])*[:=](?:\s|\\[nrt])*(?:\\?["'])?[A-Za-z0-9+/=_.!@#%^&*~\-]{16,}"#,
    },
];

/// The key names of the `secret-assignment` format (as its pattern has them).
const SECRET_KEYS: [&str; 19] = [
    "password",
    "Password",
    "PASSWORD",
    "passwd",
    "PASSWD",
    "secret",
    "Secret",
    "SECRET",
    "token",
    "Token",
    "TOKEN",
    "api_key",
    "apiKey",
    "apikey",
    "API_KEY",
    "APIKEY",
    "access_key",
    "accessKey",
    "ACCESS_KEY",
];

/// Minimum Shannon entropy, in bits per byte, of an assigned value.
pub const MIN_ENTROPY: f64 = 3.5;

/// Shannon entropy of `v`, in bits per byte.
pub fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// True when `v` looks random: at least [`MIN_ENTROPY`] bits per byte.
pub fn is_high_entropy(v: &[u8]) -> bool {
    entropy(v) >= MIN_ENTROPY
}

/// Where the value of an assignment match starts (after `:`/`=`, spaces and quotes).
fn value_start(m: &[u8]) -> usize {
    let Some(sep) = m.iter().position(|&b| b == b':' || b == b'=') else {
        return m.len();
    };
    let mut i = sep + 1;
    while i < m.len() {
        match m[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' => i += 1,
            // An escape in raw JSON text (`\"`, `\n`): the value starts after it.
            b'\\' if matches!(m.get(i + 1), Some(b'n' | b'r' | b't' | b'"' | b'\'')) => i += 2,
            _ => break,
        }
    }
    i
}

/// One pattern of a [`Scanner`].
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The rule name.
    pub name: &'static str,
    /// What a match does.
    pub action: Action,
    check: Check,
}

/// A confirmed match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Index into [`Scanner::entries`].
    pub entry: usize,
    /// Byte range of what is redacted (for an assignment, the value only).
    pub start: usize,
    /// End of the range.
    pub end: usize,
}

/// The built-in set (when a policy asks for it) and a policy's own patterns,
/// compiled into one regex.
#[derive(Debug)]
pub struct Scanner {
    re: Regex,
    entries: Vec<Entry>,
    /// The built-ins' [`Builtin::raw`] patterns; only for the built-ins
    /// alone (a policy's own patterns are not known to survive escaping).
    raw: Option<Regex>,
    /// `\\u` and `\\/`: escapes that may hide any character, so a text
    /// holding one is decoded. Two SIMD substring searches (a few µs per
    /// 100 KiB) cost far less than a pattern for them in `raw`, whose
    /// prefilter would then stop at every backslash.
    escapes: [memchr::memmem::Finder<'static>; 2],
}

impl Scanner {
    /// A scanner for the built-ins (when `builtins` is set, with that action)
    /// and `own` patterns (`name`, Rust-syntax regex, action), in that order.
    pub fn new(
        builtins: Option<Action>,
        own: &[(&'static str, &'static str, Action)],
    ) -> Result<Scanner, String> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut entries = Vec::new();
        if let Some(action) = builtins {
            for b in BUILTINS {
                patterns.push(b.regex);
                entries.push(Entry {
                    name: b.name,
                    action,
                    check: b.check,
                });
            }
        }
        for &(name, regex, action) in own {
            patterns.push(regex);
            entries.push(Entry {
                name,
                action,
                check: Check::Plain,
            });
        }
        let build = |patterns: &[&str]| {
            Regex::builder()
                .configure(meta::Config::new().utf8_empty(false))
                .build_many(patterns)
                .map_err(|e| e.to_string())
        };
        let re = build(&patterns)?;
        let raw = if builtins.is_some() && own.is_empty() {
            let raws: Vec<&str> = BUILTINS.iter().map(|b| b.raw).collect();
            Some(build(&raws)?)
        } else {
            None
        };
        Ok(Scanner {
            re,
            entries,
            raw,
            escapes: [
                memchr::memmem::Finder::new(b"\\u"),
                memchr::memmem::Finder::new(b"\\/"),
            ],
        })
    }

    /// Whether the raw JSON text `raw` (escapes not decoded) holds a
    /// secret: `Some(false)` when it certainly holds none, `Some(true)` when
    /// it may, `None` when this cannot be told without decoding (a `\\u` or
    /// `\\/` escape, or a policy's own patterns). One pass; no allocation.
    pub fn raw_is_match(&self, raw: &[u8]) -> Option<bool> {
        let re = self.raw.as_ref()?;
        if self.escapes.iter().any(|f| f.find(raw).is_some()) {
            return None;
        }
        let mut at = 0;
        while at < raw.len() {
            let Some(m) = re.search(&Input::new(raw).range(at..)) else {
                return Some(false);
            };
            let id = m.pattern().as_usize();
            let Some(b) = BUILTINS.get(id) else {
                return Some(true);
            };
            if b.check == Check::Assignment {
                let v = m.start() + value_start(&raw[m.start()..m.end()]);
                if !is_high_entropy(&raw[v..m.end()]) {
                    at = m.start() + 1;
                    continue;
                }
            }
            return Some(true);
        }
        Some(false)
    }

    /// The patterns, indexed by [`Finding::entry`].
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// A JSON member `"key": "value"` as the `secret-assignment` format
    /// sees `key = value`: the entry when the built-ins are on, `key`
    /// names a secret (`password`, `token`, `api_key`, ...) and the whole
    /// `value` is a long, random value (16+ characters of the format's
    /// value class, [`MIN_ENTROPY`]). For `structuredContent`, whose keys
    /// are not scanned as text.
    pub fn keyed_secret(&self, key: &str, value: &str) -> Option<usize> {
        let entry = self
            .entries
            .iter()
            .position(|e| e.check == Check::Assignment)?;
        let named = SECRET_KEYS.iter().any(|k| key.contains(k));
        let v = value.as_bytes();
        let class = |b: &u8| b.is_ascii_alphanumeric() || b"+/=_.!@#%^&*~-".contains(b);
        (named && v.len() >= 16 && v.iter().all(class) && is_high_entropy(v)).then_some(entry)
    }

    /// Calls `f` with each confirmed match in `hay`, left to right. A match
    /// that is not confirmed (a low-entropy assignment) does not hide a
    /// secret inside it: the search resumes where its value starts.
    pub fn scan(&self, hay: &[u8], mut f: impl FnMut(Finding)) {
        let mut at = 0;
        while at < hay.len() {
            let Some(m) = self.re.search(&Input::new(hay).range(at..)) else {
                return;
            };
            let entry = m.pattern().as_usize();
            let (start, end) = (m.start(), m.end());
            match self.entries[entry].check {
                Check::Plain => {
                    if end > start {
                        f(Finding { entry, start, end });
                    }
                    at = end.max(start + 1);
                }
                Check::Assignment => {
                    let v = start + value_start(&hay[start..end]);
                    if is_high_entropy(&hay[v..end]) {
                        // A known format in the value keeps its own name.
                        let known = self
                            .re
                            .search(&Input::new(hay).range(v..end).anchored(Anchored::Yes))
                            .map(|k| k.pattern().as_usize())
                            .filter(|&k| self.entries[k].check == Check::Plain);
                        f(Finding {
                            entry: known.unwrap_or(entry),
                            start: v,
                            end,
                        });
                        at = end;
                    } else {
                        // The key part may hold a secret of its own.
                        at = start + 1;
                    }
                }
            }
        }
    }

    /// True when `hay` holds a confirmed match.
    pub fn is_match(&self, hay: &[u8]) -> bool {
        let mut found = false;
        self.scan(hay, |_| found = true);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtins() -> Scanner {
        Scanner::new(Some(Action::Redact), &[]).expect("built-ins compile")
    }

    /// The names of what `hay` holds, in order.
    fn found(s: &Scanner, hay: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        s.scan(hay.as_bytes(), |f| {
            out.push((s.entries()[f.entry].name, hay[f.start..f.end].to_string()))
        });
        out
    }

    /// (rule, text holding a secret, the exact secret) and near misses that must pass.
    pub(crate) const POSITIVE: &[(&str, &str, &str)] = &[
        (
            "private-key",
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n-----END RSA PRIVATE KEY-----\nbye",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n-----END RSA PRIVATE KEY-----",
        ),
        (
            "gcp-service-account-key",
            r#"{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n", "client_email": "x@y.iam.gserviceaccount.com"}"#,
            r#""private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n""#,
        ),
        (
            "aws-access-key-id",
            "id AKIAIOSFODNN7EXAMPLE here",
            "AKIAIOSFODNN7EXAMPLE",
        ),
        (
            "aws-secret-access-key",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "gcp-api-key",
            "key=AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI&q=1",
            "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
        ),
        (
            "azure-connection-string",
            "DefaultEndpointsProtocol=https;AccountName=portcullisdev;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=portcullisdev;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        ),
        (
            "azure-account-key",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=Zs9r3qPqN2hWk4yX7vB1cD5eF8gH0jK2lM4nO6pQ8rS=",
            "SharedAccessKey=Zs9r3qPqN2hWk4yX7vB1cD5eF8gH0jK2lM4nO6pQ8rS=",
        ),
        (
            "github-token",
            "token ghp_16C7e42F292c6912E7710c838347Ae178B4a in the log",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        ),
        (
            "github-token",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        ),
        (
            "github-token",
            "ghu_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghu_16C7e42F292c6912E7710c838347Ae178B4a",
        ),
        (
            "github-token",
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        ),
        (
            "github-token",
            "ghr_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghr_16C7e42F292c6912E7710c838347Ae178B4a",
        ),
        (
            "github-token",
            "github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW",
            "github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW",
        ),
        (
            "slack-token",
            "SLACK xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy end",
            "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        ),
        (
            "stripe-key",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ),
        (
            "stripe-key",
            "rk_test_51H8x2kLbG9eQ4pV7sN3mZ0aB",
            "rk_test_51H8x2kLbG9eQ4pV7sN3mZ0aB",
        ),
        (
            "jwt",
            "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ),
        (
            "secret-assignment",
            "DB_PASSWORD=Xk9#mQ2!vL7pR4zW8tN",
            "Xk9#mQ2!vL7pR4zW8tN",
        ),
        (
            "secret-assignment",
            r#"{"client_secret": "9f8B3kLq7ZxW2mN5vR1tY6uP"}"#,
            "9f8B3kLq7ZxW2mN5vR1tY6uP",
        ),
    ];

    /// Near misses: text that looks like a format but is not a secret.
    const NEGATIVE: &[&str] = &[
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----",
        "AKIAIOSFODNN7EXAMPL is one short",
        "XAKIAIOSFODNN7EXAMPLE glued to a word",
        "aws_secret_access_key = <your key here>",
        "AIzaSyDdI0hCZtE6vySjMm-WEfRq3",
        "AccountKey=short==",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4 one short",
        "ghx_16C7e42F292c6912E7710c838347Ae178B4a wrong kind",
        "xoxc-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        "xoxb-not-a-token",
        "sk_live_short",
        "pk_live_4eC39HqLyjWDarjtT1zdp7dc publishable keys are public",
        "eyJhbGciOiJIUzI1NiJ9 is only a header",
        "eyJhbGciOiJIUzI1NiJ9.notjson.x",
        "password=aaaaaaaaaaaaaaaaaaaaaaaa",
        "password=${DATABASE_PASSWORD}",
        "password: <redacted>",
        "token=short",
        "the token is valid and the password policy is strict",
        "next_token=page0000000000000001",
    ];

    #[test]
    fn every_builtin_finds_its_example_exactly() {
        let s = builtins();
        for (rule, hay, secret) in POSITIVE {
            let f = found(&s, hay);
            assert_eq!(f, vec![(*rule, secret.to_string())], "{rule} in {hay:?}");
        }
        // Every built-in finds its own example once, and has a positive case.
        for b in BUILTINS {
            let f = found(&s, b.example);
            assert_eq!(f.len(), 1, "{}: {f:?}", b.name);
            assert_eq!(f[0].0, b.name);
            assert!(
                POSITIVE.iter().any(|(r, _, _)| *r == b.name),
                "no example for {}",
                b.name
            );
        }
    }

    #[test]
    fn near_misses_pass() {
        let s = builtins();
        for hay in NEGATIVE {
            assert_eq!(found(&s, hay), vec![], "{hay:?}");
        }
    }

    #[test]
    fn a_known_format_assigned_keeps_its_name_and_the_key_stays() {
        let s = builtins();
        assert_eq!(
            found(&s, "GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
            vec![(
                "github-token",
                "ghp_16C7e42F292c6912E7710c838347Ae178B4a".to_string()
            )]
        );
        // A low-entropy assignment does not hide a secret after it.
        assert_eq!(
            found(
                &s,
                "token=aaaaaaaaaaaaaaaaaaaaaaaaaaaa sk_live_4eC39HqLyjWDarjtT1zdp7dc"
            ),
            vec![("stripe-key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc".to_string())]
        );
    }

    #[test]
    fn own_patterns_join_the_builtins() {
        let s = Scanner::new(
            Some(Action::Redact),
            &[("employee-id", r"EMP-[0-9]{6}", Action::Deny)],
        )
        .expect("compiles");
        let f = found(&s, "EMP-123456 and AKIAIOSFODNN7EXAMPLE");
        assert_eq!(
            f,
            vec![
                ("employee-id", "EMP-123456".to_string()),
                ("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE".to_string())
            ]
        );
        assert_eq!(s.entries().last().map(|e| e.action), Some(Action::Deny));
        let own_only = Scanner::new(None, &[("x", "abc", Action::Redact)]).expect("compiles");
        assert!(!own_only.is_match(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(own_only.is_match(b"xabcx"));
    }

    #[test]
    fn the_raw_pass_finds_every_secret_as_json_escapes_it() {
        let s = builtins();
        for (rule, hay, _) in POSITIVE {
            // As an answer's JSON string has it: quotes and newlines escaped.
            let mut raw = Vec::new();
            crate::json::push_json_str(&mut raw, &format!("line\n{hay}\n\"{hay}\""));
            assert_eq!(
                s.raw_is_match(&raw),
                Some(true),
                "{rule}: {}",
                String::from_utf8_lossy(&raw)
            );
        }
        // Without word boundaries, a key glued to a word is a (harmless) raw
        // hit: the precise pass then finds nothing.
        for hay in NEGATIVE.iter().filter(|h| !h.contains("glued")) {
            let mut raw = Vec::new();
            crate::json::push_json_str(&mut raw, &format!("a\n{hay}"));
            assert_eq!(s.raw_is_match(&raw), Some(false), "{hay}");
        }
        assert_eq!(
            s.raw_is_match(br#""gh\u0070_16C7e42F292c6912E7710c838347Ae178B4a""#),
            None
        );
        assert_eq!(s.raw_is_match(br#""a\/b""#), None);
        let own = Scanner::new(Some(Action::Redact), &[("x", "abc", Action::Redact)]).unwrap();
        assert_eq!(own.raw_is_match(b"abc"), None);
    }

    #[test]
    fn the_raw_pass_never_misses_what_the_decoded_pass_finds() {
        // Texts built from pieces (secrets, near misses, keys, escapes that
        // JSON writes), by a fixed pseudo-random sequence: whenever the
        // decoded text holds a secret, the raw pass must say so (or ask to decode).
        let s = builtins();
        let mut pieces: Vec<&str> = POSITIVE.iter().map(|p| p.1).collect();
        pieces.extend(NEGATIVE);
        pieces.extend([
            "\n", "\t", "\"", "'", " ", "=", ": ", "password", "token=", "x", "\\", "é", "/",
        ]);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut found = 0;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(next() % 6 + 1) {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let decoded_hit = s.is_match(text.as_bytes());
            let mut raw = Vec::new();
            crate::json::push_json_str(&mut raw, &text);
            let raw_says = s.raw_is_match(&raw);
            if decoded_hit {
                found += 1;
                assert_ne!(
                    raw_says,
                    Some(false),
                    "missed in {}",
                    String::from_utf8_lossy(&raw)
                );
            }
        }
        assert!(found > 500, "{found}");
    }

    #[test]
    fn the_documentation_lists_every_builtin_as_it_is() {
        let doc = include_str!("../../docs/results.md");
        for b in BUILTINS {
            assert!(
                doc.contains(&format!("### `{}`", b.name)),
                "{} missing",
                b.name
            );
            assert!(
                doc.contains(&format!("```\n{}\n```", b.regex)),
                "{}: pattern differs",
                b.name
            );
        }
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        assert!(Scanner::new(None, &[("x", "(", Action::Redact)]).is_err());
    }

    #[test]
    fn entropy_is_shannon() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abab") - 1.0).abs() < 1e-9);
        assert!(is_high_entropy(b"9f8B3kLq7ZxW2mN5vR1tY6uP"));
        assert!(!is_high_entropy(b"passwordpassword"));
    }
}
