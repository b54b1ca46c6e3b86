//! Who is calling: the [`Principal`] of a request, built once per token
//! (or once per stdio process) and read by decisions without allocating.
//!
//! The proxy validates a bearer token (signature, issuer, audience, time)
//! and builds a `Principal` from the token's payload; sessions keep it in an
//! `Arc`. Everything a policy will read is borrowed from it: `sub`, `iss`
//! and the scopes as `&str`, the claims as a [`Value`] view over the
//! payload's own JSON bytes, which were validated here with
//! [`Strictness::STRICT`] (no duplicate or case-variant keys, so the view
//! and the JSON parser that checked `exp`/`iss`/`aud` cannot disagree on a
//! claim).
//!
//! Hook: [`crate::Env`] carries an
//! `Option<&Principal>`; generated code and the reference evaluator read
//! `principal.sub` / `principal.iss` / `principal.scopes` /
//! `principal.claims.<path>` through [`Principal::sub`], [`Principal::iss`],
//! [`Principal::scopes`] and [`Principal::claim`], all borrowing, so a
//! decision that reads claims stays allocation-free.

use crate::json::{self, JStr, Strictness, Val, Value};

crate::error_kinds! {
    /// Why a token's claims make no principal.
    pub enum PrincipalErrorKind {
        /// The payload is not valid JSON, or repeats a key.
        NotJson => "the claims are not one valid JSON object without repeated keys",
        /// The payload is JSON but not an object.
        NotObject => "the claims are not a JSON object",
        /// `sub` is missing or not a string.
        NoSubject => "the claims have no `sub` string",
        /// `iss` is missing or not a string.
        NoIssuer => "the claims have no `iss` string",
    }
}

/// The caller of a request: subject, issuer, scopes and every claim.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    sub: Box<str>,
    iss: Box<str>,
    scopes: Box<[Box<str>]>,
    /// The scopes as a JSON array of strings (what `principal.scopes` reads).
    scopes_json: Box<[u8]>,
    /// The claims as validated JSON text (an object).
    claims: Box<[u8]>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claims can be personal data: a debug print names the caller only.
        f.debug_struct("Principal")
            .field("sub", &self.sub)
            .field("iss", &self.iss)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// A principal from a token's claims (the JSON payload of a JWT whose
    /// signature and time claims were checked by the caller).
    ///
    /// Scopes come from `scope` (a space-separated string, RFC 8693 / RFC
    /// 9068) and from `scp` (a string of the same form, as Entra ID writes
    /// it, or an array of strings, as Okta writes it).
    pub fn from_claims(claims: Vec<u8>) -> Result<Principal, PrincipalErrorKind> {
        json::validate(&claims, Strictness::STRICT).map_err(|_| PrincipalErrorKind::NotJson)?;
        let Val::Object(obj) = Value::from_validated(&claims).val() else {
            return Err(PrincipalErrorKind::NotObject);
        };
        let string = |key: &str| match obj.get(key).map(|v| v.val()) {
            Some(Val::Str(s)) => Some(s.with_str(|s| Box::<str>::from(s))),
            _ => None,
        };
        let sub = string("sub").ok_or(PrincipalErrorKind::NoSubject)?;
        let iss = string("iss").ok_or(PrincipalErrorKind::NoIssuer)?;
        let mut scopes: Vec<Box<str>> = Vec::new();
        for key in ["scope", "scp"] {
            match obj.get(key).map(|v| v.val()) {
                Some(Val::Str(s)) => {
                    s.with_str(|s| scopes.extend(s.split_ascii_whitespace().map(Box::from)))
                }
                Some(Val::Array(a)) => {
                    for e in a.iter() {
                        if let Val::Str(s) = e.val() {
                            s.with_str(|s| scopes.push(Box::from(s)));
                        }
                    }
                }
                _ => {}
            }
        }
        scopes.sort_unstable();
        scopes.dedup();
        let mut scopes_json = String::from("[");
        for (i, s) in scopes.iter().enumerate() {
            if i > 0 {
                scopes_json.push(',');
            }
            json_string(&mut scopes_json, s);
        }
        scopes_json.push(']');
        Ok(Principal {
            sub,
            iss,
            scopes: scopes.into_boxed_slice(),
            scopes_json: scopes_json.into_bytes().into_boxed_slice(),
            claims: claims.into_boxed_slice(),
        })
    }

    /// The local user of a stdio proxy: `sub` = `user`, `iss` = `local`,
    /// no scopes, claims `{"sub":…,"iss":"local"}`.
    pub fn local(user: &str) -> Principal {
        let mut claims = String::from("{\"sub\":");
        json_string(&mut claims, user);
        claims.push_str(",\"iss\":\"local\"}");
        Principal::from_claims(claims.into_bytes()).expect("well-formed local claims")
    }

    /// The subject (`sub`).
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The issuer (`iss`).
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// The granted scopes, sorted, without repeats.
    pub fn scopes(&self) -> &[Box<str>] {
        &self.scopes
    }

    /// True when `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.binary_search_by(|s| (**s).cmp(scope)).is_ok()
    }

    /// Every claim: a view of the JSON object (no allocation).
    pub fn claims(&self) -> Value<'_> {
        Value::from_validated(&self.claims)
    }

    /// One top-level claim, if present (no allocation).
    pub fn claim(&self, name: &str) -> Option<Value<'_>> {
        match self.claims().val() {
            Val::Object(o) => o.get(name),
            _ => None,
        }
    }

    /// The value a policy path `principal.<field>[.<path>]` reads (no
    /// allocation): `sub` and `iss` as strings, `scopes` as an array of
    /// strings, `claims` followed by member names as the claim at that path
    /// (exact, case-sensitive member names, as JWT claims are). None when the
    /// claim is absent or a step is not an object.
    pub fn value(&self, field: PrincipalField, path: &[&str]) -> Option<Val<'_>> {
        match field {
            PrincipalField::Sub => Some(Val::Str(JStr::plain(&self.sub))),
            PrincipalField::Iss => Some(Val::Str(JStr::plain(&self.iss))),
            PrincipalField::Scopes => Some(Value::from_validated(&self.scopes_json).val()),
            PrincipalField::Claims => {
                let mut current = self.claims().val();
                for seg in path {
                    let Val::Object(o) = current else {
                        return None;
                    };
                    current = o.get(seg)?.val();
                }
                Some(current)
            }
        }
    }

    /// True when `other` is the same caller (same issuer and subject), the
    /// identity a session is bound to (scopes and expiry may differ between
    /// two tokens of one caller).
    pub fn same_caller(&self, other: &Principal) -> bool {
        self.iss == other.iss && self.sub == other.sub
    }
}

/// What a `principal.*` path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalField {
    /// `principal.sub`
    Sub,
    /// `principal.iss`
    Iss,
    /// `principal.scopes`: the granted scopes, an array of strings.
    Scopes,
    /// `principal.claims.<name>...`: any claim of the token.
    Claims,
}

impl PrincipalField {
    /// The name after `principal.`.
    pub fn name(self) -> &'static str {
        match self {
            PrincipalField::Sub => "sub",
            PrincipalField::Iss => "iss",
            PrincipalField::Scopes => "scopes",
            PrincipalField::Claims => "claims",
        }
    }

    /// The field named `name` (`sub`, `iss`, `scopes`, `claims`).
    pub fn from_name(name: &str) -> Option<PrincipalField> {
        Some(match name {
            "sub" => PrincipalField::Sub,
            "iss" => PrincipalField::Iss,
            "scopes" => PrincipalField::Scopes,
            "claims" => PrincipalField::Claims,
            _ => return None,
        })
    }
}

/// The value of a `principal.*` path for a caller that may be unknown: a
/// missing value when there is no principal (see [`Principal::value`]).
/// Generated code and the reference evaluator both read principal paths
/// through this function.
pub fn value<'a>(
    principal: Option<&'a Principal>,
    field: PrincipalField,
    path: &[&str],
) -> Option<Val<'a>> {
    principal?.value(field, path)
}

/// The counter partition of a limit counted `by principal.<field>[.<path>]`
/// for this caller, or None when there is no such value (no principal, or
/// a token without the claim: the limit then denies, failing closed).
/// `principal.sub` partitions by issuer and subject together
/// ([`crate::ops::partition_of_caller`]); any other path by its value
/// ([`crate::ops::partition_of`]). Shared by generated code and the
/// reference evaluator; no allocation.
pub fn partition(
    principal: Option<&Principal>,
    field: PrincipalField,
    path: &[&str],
) -> Option<u128> {
    let p = principal?;
    match field {
        PrincipalField::Sub => Some(crate::ops::partition_of_caller(p.iss(), p.sub())),
        _ => Some(crate::ops::partition_of(Some(p.value(field, path)?))),
    }
}

/// Appends `s` to `out` as a JSON string.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_give_subject_issuer_scopes_and_views() {
        let p = Principal::from_claims(
            br#"{"sub":"al\u0069ce","iss":"https://idp","scope":"b a","scp":["c","a"],"groups":["finance"]}"#
                .to_vec(),
        )
        .unwrap();
        assert_eq!(p.sub(), "alice");
        assert_eq!(p.iss(), "https://idp");
        let scopes: Vec<&str> = p.scopes().iter().map(|s| &**s).collect();
        assert_eq!(scopes, ["a", "b", "c"]);
        assert!(p.has_scope("c") && !p.has_scope("d"));
        assert_eq!(p.claim("groups").unwrap().as_bytes(), br#"["finance"]"#);
        assert!(p.claim("nope").is_none());
        assert!(
            !format!("{p:?}").contains("finance"),
            "claims are not printed"
        );
    }

    #[test]
    fn claims_that_make_no_principal_are_refused() {
        for (claims, kind) in [
            (
                &br#"{"sub":"a","iss":"i","sub":"b"}"#[..],
                PrincipalErrorKind::NotJson,
            ),
            (
                br#"{"sub":"a","iss":"i","Sub":"b"}"#,
                PrincipalErrorKind::NotJson,
            ),
            (b"[1]", PrincipalErrorKind::NotObject),
            (br#"{"iss":"i"}"#, PrincipalErrorKind::NoSubject),
            (br#"{"sub":1,"iss":"i"}"#, PrincipalErrorKind::NoSubject),
            (br#"{"sub":"a"}"#, PrincipalErrorKind::NoIssuer),
        ] {
            assert_eq!(
                Principal::from_claims(claims.to_vec()).unwrap_err(),
                kind,
                "{}",
                String::from_utf8_lossy(claims)
            );
        }
    }

    #[test]
    fn paths_read_sub_iss_scopes_and_nested_claims() {
        let p = Principal::from_claims(
            br#"{"sub":"alice","iss":"https://idp","scope":"write read","org":{"team":{"name":"pay"}},"n":3,"admin":true}"#
                .to_vec(),
        )
        .unwrap();
        let show = |v: Option<Val<'_>>| match v {
            Some(Val::Str(s)) => format!("str:{}", s.chars().collect::<String>()),
            Some(Val::Array(a)) => format!("array:{}", String::from_utf8_lossy(a.as_bytes())),
            Some(Val::Num(n)) => format!("num:{n:?}"),
            Some(Val::Bool(b)) => format!("bool:{b}"),
            Some(other) => format!("{other:?}"),
            None => "missing".into(),
        };
        assert_eq!(show(p.value(PrincipalField::Sub, &[])), "str:alice");
        assert_eq!(show(p.value(PrincipalField::Iss, &[])), "str:https://idp");
        assert_eq!(
            show(p.value(PrincipalField::Scopes, &[])),
            r#"array:["read","write"]"#
        );
        assert_eq!(
            show(p.value(PrincipalField::Claims, &["org", "team", "name"])),
            "str:pay"
        );
        assert_eq!(
            show(p.value(PrincipalField::Claims, &["admin"])),
            "bool:true"
        );
        assert!(matches!(
            p.value(PrincipalField::Claims, &["n"]),
            Some(Val::Num(_))
        ));
        // Claim names are case-sensitive, and a step into a non-object is missing.
        assert_eq!(show(p.value(PrincipalField::Claims, &["Admin"])), "missing");
        assert_eq!(
            show(p.value(PrincipalField::Claims, &["n", "x"])),
            "missing"
        );
        assert_eq!(show(value(None, PrincipalField::Sub, &[])), "missing");
        let none = Principal::local("bob");
        assert_eq!(show(none.value(PrincipalField::Scopes, &[])), "array:[]");
    }

    #[test]
    fn partitions_are_per_issuer_and_subject_or_per_value() {
        let a = Principal::from_claims(br#"{"sub":"alice","iss":"https://a","team":"t"}"#.to_vec())
            .unwrap();
        let b = Principal::from_claims(br#"{"sub":"alice","iss":"https://b","team":"t"}"#.to_vec())
            .unwrap();
        let sub = |p| partition(Some(p), PrincipalField::Sub, &[]).unwrap();
        assert_ne!(
            sub(&a),
            sub(&b),
            "one subject name at two issuers is two callers"
        );
        assert_eq!(
            sub(&a),
            partition(Some(&a.clone()), PrincipalField::Sub, &[]).unwrap()
        );
        let team = |p| partition(Some(p), PrincipalField::Claims, &["team"]).unwrap();
        assert_eq!(
            team(&a),
            team(&b),
            "a claim's value is shared by whoever has it"
        );
        assert_eq!(
            team(&a),
            crate::ops::partition_of(Some(Val::Str(JStr::plain("t"))))
        );
        assert!(partition(None, PrincipalField::Sub, &[]).is_none());
        assert!(partition(Some(&a), PrincipalField::Claims, &["nope"]).is_none());
        // Never the partition of a global counter or a session.
        assert!(sub(&a) >= crate::ops::ARG_PARTITION);
    }

    #[test]
    fn the_local_user_is_a_principal() {
        let p = Principal::local("bob \"the\" builder");
        assert_eq!((p.sub(), p.iss()), ("bob \"the\" builder", "local"));
        assert!(p.same_caller(&Principal::local("bob \"the\" builder")));
        assert!(!p.same_caller(&Principal::local("bob")));
    }
}
