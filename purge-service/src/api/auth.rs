//! Bearer tokens, scopes, rate limits and the cluster secret.

use std::time::Instant;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use tiercel_cluster::purge::wire::TokenScope;

use super::response::Failure;
use super::routes::RateClass;
use crate::app::App;
use crate::member_auth::{MEMBER_HEADER, ProofError, now_secs};
use crate::types::{TokenRecord, token_hash, unix_ms};

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

/// Finds the request's token, checks that it is live (not revoked, not expired) and that its
/// scope covers `need`, takes one request from the rate limit of `class`, and records its use.
pub fn authorize(
    app: &App,
    headers: &HeaderMap,
    need: TokenScope,
    class: RateClass,
) -> Result<TokenRecord, Failure> {
    let secret = bearer(headers).ok_or_else(|| {
        Failure::Unauthorized("missing bearer token (Authorization: Bearer <token>)".into())
    })?;
    // Looked up by blake3 of the secret: timing can reveal at most something about the hash
    // of a guess, which says nothing about any real secret (blake3 is preimage resistant).
    let hash = token_hash(secret);
    let now = unix_ms();
    let token = app
        .state
        .with(|m| m.state.token_by_hash(&hash).cloned())
        .ok_or_else(|| Failure::Unauthorized("unknown or revoked token".into()))?;
    if token.expired(now) {
        return Err(Failure::Unauthorized(format!(
            "token {} expired",
            token.name
        )));
    }
    // Presented and valid: a use, whatever it was allowed to do.
    app.usage.record(&token.id, now);
    if token.scope < need {
        return Err(Failure::Forbidden(format!(
            "token scope {} does not allow this; it needs {}",
            token.scope, need
        )));
    }
    let limited = match class {
        RateClass::Api => app
            .limiter
            .lock()
            .check(&token.id, token.rate_per_sec, Instant::now()),
        RateClass::Follow => app
            .follow_limiter
            .lock()
            .check(&token.id, None, Instant::now()),
    };
    limited.map_err(|retry_after| Failure::RateLimited { retry_after })?;
    Ok(token)
}

/// Whether `token` is still live now: not revoked, not expired (checked again after the body).
pub fn still_live(app: &App, token: &TokenRecord) -> Result<(), Failure> {
    let now = unix_ms();
    let live = app
        .state
        .with(|m| m.state.token(&token.id).is_some_and(|t| !t.expired(now)));
    if live {
        Ok(())
    } else {
        Err(Failure::Unauthorized(format!(
            "token {} was revoked or expired",
            token.name
        )))
    }
}

/// Whether the request carries a valid member proof ([`crate::member_auth`]) for this
/// member, its method and its target. Without a configured secret nobody is a member: member
/// endpoints are closed, not open.
pub fn is_member(app: &App, parts: &http::request::Parts) -> bool {
    let Some(key) = &app.settings.member_key else {
        return false;
    };
    let header = parts
        .headers
        .get(MEMBER_HEADER)
        .and_then(|v| v.to_str().ok());
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match key.verify(header, parts.method.as_str(), path, app.id, now_secs()) {
        Ok(_) => true,
        Err(ProofError::Missing) => false,
        Err(e) => {
            tracing::warn!(error = %e, path, "member proof refused");
            false
        }
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
        assert_eq!(TokenScope::Purge.to_string(), "purge");
    }
}
