//! Bearer tokens, scopes, rate limits and the cluster secret.

use std::time::Instant;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use tiercel_cluster::purge::wire::TokenScope;

use super::response::Failure;
use crate::app::App;
use crate::client::CLUSTER_SECRET_HEADER;
use crate::types::{TokenRecord, token_hash};

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    //= https://www.rfc-editor.org/rfc/rfc6750#section-2.1
    //= "credentials = "Bearer" 1*SP b64token"
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ').trim_end();
    (!token.is_empty()).then_some(token)
}

fn scope_name(s: TokenScope) -> &'static str {
    match s {
        TokenScope::Follow => "follow",
        TokenScope::Purge => "purge",
        TokenScope::Admin => "admin",
    }
}

/// Finds the request's token, checks its scope against `need`, and (when `limit`) takes one
/// request from its rate limit.
pub fn authorize(
    app: &App,
    headers: &HeaderMap,
    need: TokenScope,
    limit: bool,
) -> Result<TokenRecord, Failure> {
    let secret = bearer(headers).ok_or_else(|| {
        Failure::Unauthorized("missing bearer token (Authorization: Bearer <token>)".into())
    })?;
    let hash = token_hash(secret);
    let token = app
        .state
        .with(|m| m.state.token_by_hash(&hash).cloned())
        .ok_or_else(|| Failure::Unauthorized("unknown or revoked token".into()))?;
    if token.scope < need {
        return Err(Failure::Forbidden(format!(
            "token scope {} does not allow this; it needs {}",
            scope_name(token.scope),
            scope_name(need)
        )));
    }
    if limit {
        app.limiter
            .lock()
            .check(&token.id, token.rate_per_sec, Instant::now())
            .map_err(|retry_after| Failure::RateLimited { retry_after })?;
    }
    Ok(token)
}

/// Checks the cluster secret on `/raft/*` when one is configured.
pub fn cluster(app: &App, headers: &HeaderMap) -> Result<(), Failure> {
    let Some(want) = app.settings.cluster_secret else {
        return Ok(());
    };
    let given = headers
        .get(CLUSTER_SECRET_HEADER)
        .map(|v| blake3::hash(v.as_bytes()));
    // blake3::Hash compares in constant time.
    if given == Some(want) {
        Ok(())
    } else {
        Err(Failure::Unauthorized(
            "cluster secret missing or wrong".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_per_rfc6750() {
        let table: &[(&str, Option<&str>)] = &[
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER   abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("abc", None),
        ];
        for &(value, want) in table {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            assert_eq!(bearer(&h), want, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(TokenScope::Follow < TokenScope::Purge && TokenScope::Purge < TokenScope::Admin);
        assert_eq!(scope_name(TokenScope::Purge), "purge");
    }
}
