//! `POST /v1/tokens`, `GET /v1/tokens` and `DELETE /v1/tokens/{id}`, plus the token imports
//! of start-up.
//!
//! Secrets are 256 random bits shown once; the replicated state keeps only their blake3 hash.
//! A token may expire (`ttl_secs`); a revoked one leaves a tombstone that no import undoes.
//! When each token was last used is soft state per member, merged from every member that
//! answers within a second when the list is asked for.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use rand::RngCore;
use tiercel_cluster::purge::wire::{TokenCreate, TokenCreated, TokenInfo, TokenScope};

use super::response::{Failure, empty, json};
use super::{Answer, ApiRequest, validate};
use crate::app::App;
use crate::types::{Actor, Command, NodeId, TokenCondition, TokenRecord, token_hash, unix_ms};
use crate::usage::merge;
use tiercel_cluster::secret::MIN_SECRET_LEN;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh bearer secret (`tcl_` + 64 hex digits).
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("tcl_{}", hex(&b))
}

/// A fresh token id (`tok_` + 16 hex digits).
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    format!("tok_{}", hex(&b))
}

/// The id of an imported token: derived from its hash, so every node importing the same
/// secret proposes the same record.
pub fn import_id(hash: &str) -> String {
    let derived = blake3::hash(format!("tiercel token id {hash}").as_bytes());
    format!("tok_{}", &derived.to_hex()[..16])
}

/// The record of an imported secret.
pub fn import_record(name: &str, scope: TokenScope, secret: &str) -> TokenRecord {
    let hash = token_hash(secret);
    TokenRecord {
        services: Vec::new(),
        id: import_id(&hash),
        name: name.to_string(),
        scope,
        hash,
        rate_per_sec: None,
        expires_ms: None,
        created_ms: 0,
        created_by: None,
    }
}

/// Whether `record` is something a member may import for itself (its `TIERCEL_ADMIN_TOKEN`
/// or `--token-file`): a conditional creation of a record derived from its own hash, with no
/// expiry, and an admin only under the "no admin exists yet" condition.
pub fn importable(record: &TokenRecord, unless: TokenCondition) -> Result<(), String> {
    if unless == TokenCondition::Never {
        return Err("only conditional token imports are accepted".into());
    }
    if record.id != import_id(&record.hash) {
        return Err("an imported token's id must derive from its hash".into());
    }
    if record.hash.len() != 64 || !record.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("an imported token's hash must be 64 hex digits".into());
    }
    if record.expires_ms.is_some() || record.created_by.is_some() {
        return Err("an imported token carries no expiry and no creator".into());
    }
    if unless == TokenCondition::AdminExists && record.scope != TokenScope::Admin {
        return Err("admin_exists applies to admin tokens only".into());
    }
    Ok(())
}

/// Creates a token and shows its secret once.
pub async fn create(app: &App, req: &ApiRequest, by: Option<&TokenRecord>) -> Answer {
    let body: TokenCreate = req.json()?;
    validate::token_create(&body)?;
    let secret = new_secret();
    let now = unix_ms();
    let expires_ms = body
        .ttl_secs
        .map(|t| now.saturating_add(t.saturating_mul(1000)));
    let record = TokenRecord {
        id: new_id(),
        name: body.name.clone(),
        scope: body.scope,
        hash: token_hash(&secret),
        rate_per_sec: body.rate_per_sec,
        expires_ms,
        created_ms: now,
        created_by: by.map(|t| t.name.clone()),
        services: body.services.clone(),
    };
    let id = record.id.clone();
    app.write(Command::TokenCreate {
        token: record,
        unless: TokenCondition::Never,
    })
    .await?;
    let created = TokenCreated {
        id,
        name: body.name,
        scope: body.scope,
        token: secret,
        expires_ms,
        services: body.services,
    };
    Ok(json(StatusCode::CREATED, &created))
}

/// How long a list waits for another member's usage.
const USAGE_WAIT: Duration = Duration::from_secs(1);

/// Every token, without secrets, with when any answering member last saw it used.
pub async fn list(app: &App) -> Answer {
    let mut last_used = app.usage.snapshot();
    let others: Vec<(NodeId, String)> = {
        let m = app.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != app.id)
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    };
    let asks = others.iter().map(|(id, addr)| peer_usage(app, *id, addr));
    for usage in futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
    {
        merge(&mut last_used, usage);
    }
    let now = unix_ms();
    let tokens: Vec<TokenInfo> = app.state.with(|m| {
        m.state
            .tokens()
            .map(|t| TokenInfo {
                id: t.id.clone(),
                name: t.name.clone(),
                scope: t.scope,
                created_ms: t.created_ms,
                created_by: t.created_by.clone(),
                expires_ms: t.expires_ms,
                expired: t.expired(now),
                last_used_ms: last_used.get(&t.id).copied(),
                rate_per_sec: t.rate_per_sec,
                services: t.services.clone(),
            })
            .collect()
    });
    Ok(json(StatusCode::OK, &tokens))
}

/// Another member's usage map, or nothing if it does not answer within [`USAGE_WAIT`].
async fn peer_usage(app: &App, id: NodeId, addr: &str) -> Option<HashMap<String, u64>> {
    let req = app
        .client
        .builder(addr, id, Method::GET, "/raft/usage")
        .ok()?
        .body(Full::new(Bytes::new()))
        .ok()?;
    let resp = app.client.send(addr, req, USAGE_WAIT).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    serde_json::from_slice(resp.body()).ok()
}

/// Revokes a token.
pub async fn delete(app: &App, req: &ApiRequest, by: Option<&TokenRecord>) -> Answer {
    let id = req.param(0).to_string();
    let _serial = app.write_lock.lock().await;
    app.linearize().await?;
    if app.state.with(|m| m.state.token(&id).is_none()) {
        return Err(Failure::NotFound(format!("no token {id:?}")).into());
    }
    app.write(Command::TokenDelete {
        id,
        ts_ms: unix_ms(),
        by: by.map(Actor::of),
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Parses a `--token-file`: one `scope name secret` per line; blank lines and `#` comments are
/// skipped. Errors name the line.
pub fn parse_token_file(text: &str) -> Result<Vec<TokenRecord>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [scope, name, secret] = fields.as_slice() else {
            return Err(format!("line {}: expected `scope name secret`", n + 1));
        };
        let scope = match *scope {
            "follow" => TokenScope::Follow,
            "purge" => TokenScope::Purge,
            "admin" => TokenScope::Admin,
            other => {
                return Err(format!(
                    "line {}: unknown scope {other:?} (follow, purge, admin)",
                    n + 1
                ));
            }
        };
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "line {}: secret shorter than {MIN_SECRET_LEN} characters",
                n + 1
            ));
        }
        out.push(import_record(name, scope, secret));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_ids_are_random_and_well_formed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert!(a.starts_with("tcl_") && a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        let id = new_id();
        assert_eq!(id.len(), 4 + 16);
        assert_eq!(import_id("h"), import_id("h"));
        assert_ne!(import_id("h"), import_id("i"));
    }

    #[test]
    fn token_files_parse_with_errors_naming_the_line() {
        let text = "# CI tokens\n\npurge ci-main 0123456789abcdef0123\n  admin ops  fedcba9876543210fedc  \n";
        let got = parse_token_file(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].name.as_str(), got[0].scope),
            ("ci-main", TokenScope::Purge)
        );
        assert_eq!(got[0].hash, token_hash("0123456789abcdef0123"));
        assert_eq!(got[1].scope, TokenScope::Admin);
        assert_eq!(got[0].id, import_id(&got[0].hash));
        let bad: &[(&str, &str)] = &[
            ("purge ci", "line 1: expected `scope name secret`"),
            ("purge ci s e c", "line 1: expected `scope name secret`"),
            (
                "\nroot ci 0123456789abcdef",
                "line 2: unknown scope \"root\" (follow, purge, admin)",
            ),
            (
                "purge ci short",
                "line 1: secret shorter than 16 characters",
            ),
        ];
        for &(text, want) in bad {
            assert_eq!(parse_token_file(text).unwrap_err(), want);
        }
    }
}
