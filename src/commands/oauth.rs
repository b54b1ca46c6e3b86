//! `--jwks-file` / `--jwks-url` and their flags: the local HTTP endpoint as
//! an OAuth resource server (see docs/operations.md, "Bearer tokens").

use std::sync::Arc;
use std::time::Duration;

use portcullis_proxy::http::server::OAuth;
use portcullis_proxy::jwt::{DEFAULT_ALGORITHMS, JwksSource, JwtOptions, Verifier, check_jwks_url};
use portcullis_proxy::log::Log;

use crate::cli::ProxyArgs;

/// The endpoint's resource-server settings, if `--jwks-*` is given; reads
/// (or fetches) the key set once. Err: the message and a hint.
pub async fn oauth(a: &ProxyArgs, log: Log) -> Result<Option<OAuth>, (String, String)> {
    let jwks = match (&a.jwks_file, &a.jwks_url) {
        (Some(f), _) => JwksSource::File(f.clone()),
        (None, Some(u)) => {
            // The keys decide who may call: they must not cross a network in
            // the clear (plain http only to this machine).
            check_jwks_url(u).map_err(|e| {
                (
                    e,
                    "the authorization server's jwks_uri over https://, e.g. https://idp.example.com/.well-known/jwks.json (http:// only to 127.0.0.1, ::1 or localhost)".to_string(),
                )
            })?;
            JwksSource::Url(u.clone())
        }
        (None, None) => {
            let stray = [
                ("--issuer", a.issuer.is_some()),
                ("--audience", !a.audience.is_empty()),
                ("--resource-url", a.resource_url.is_some()),
                ("--authorization-server", !a.authorization_server.is_empty()),
                ("--required-scope", !a.required_scope.is_empty()),
                ("--jwt-algorithm", !a.jwt_algorithm.is_empty()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, set)| *set) {
                return Err((
                    format!("{flag} requires --jwks-file or --jwks-url"),
                    "bearer tokens are validated against a JWKS".into(),
                ));
            }
            return Ok(None);
        }
    };
    let Some(issuer) = a.issuer.clone() else {
        return Err((
            "--jwks-file and --jwks-url require --issuer".into(),
            "the exact `iss` of your authorization server's tokens, e.g. https://idp.example.com/realms/mcp".into(),
        ));
    };
    let mut algorithms = Vec::new();
    for name in &a.jwt_algorithm {
        let alg: portcullis_proxy::jwt::Algorithm = name.parse().map_err(|_| {
            (
                format!("--jwt-algorithm `{name}` is not a JWS algorithm"),
                "one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA".to_string(),
            )
        })?;
        if name.starts_with("HS") {
            return Err((
                format!("--jwt-algorithm {name}: HMAC algorithms are never accepted"),
                "a resource server verifies with the authorization server's public keys".into(),
            ));
        }
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        algorithms = DEFAULT_ALGORITHMS.to_vec();
    }
    if let Some(r) = &a.resource_url
        && !(r.starts_with("https://") || r.starts_with("http://"))
    {
        return Err((
            format!("--resource-url `{r}` is not an http:// or https:// URL"),
            "the URL clients use for this endpoint, e.g. https://mcp.example.com/mcp".into(),
        ));
    }
    let opts = JwtOptions {
        jwks,
        issuer: issuer.clone(),
        audiences: a.audience.clone(),
        algorithms,
        required_scopes: a.required_scope.clone(),
        leeway: Duration::from_secs(a.jwt_leeway),
    };
    let verifier = Verifier::new(opts, log).await.map_err(|e| {
        (
            e,
            "a JWKS document: {\"keys\": [...]} with RSA, EC or OKP public keys".to_string(),
        )
    })?;
    Ok(Some(OAuth {
        verifier: Arc::new(verifier),
        resource: a.resource_url.clone().unwrap_or_default(),
        authorization_servers: if a.authorization_server.is_empty() {
            vec![issuer]
        } else {
            a.authorization_server.clone()
        },
    }))
}
