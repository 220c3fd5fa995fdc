//! `POST /v1/tokens` and `DELETE /v1/tokens/{id}`, plus the token imports of start-up.
//!
//! Secrets are 256 random bits shown once; the replicated state keeps only their blake3 hash.

use http::StatusCode;
use rand::RngCore;
use tiercel_cluster::purge::wire::{TokenCreate, TokenCreated, TokenScope};

use super::response::{Failure, empty, json};
use super::{Answer, ApiRequest, validate};
use crate::app::App;
use crate::types::{Command, TokenCondition, TokenRecord, token_hash};

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
        id: import_id(&hash),
        name: name.to_string(),
        scope,
        hash,
        rate_per_sec: None,
    }
}

/// Creates a token and shows its secret once.
pub async fn create(app: &App, req: &ApiRequest) -> Answer {
    let body: TokenCreate = req.json()?;
    validate::token_create(&body)?;
    let secret = new_secret();
    let record = TokenRecord {
        id: new_id(),
        name: body.name.clone(),
        scope: body.scope,
        hash: token_hash(&secret),
        rate_per_sec: body.rate_per_sec,
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
    };
    Ok(json(StatusCode::CREATED, &created))
}

/// Revokes a token.
pub async fn delete(app: &App, req: &ApiRequest) -> Answer {
    let id = req.param(0).to_string();
    let _serial = app.write_lock.lock().await;
    app.linearize().await?;
    if app.state.with(|m| m.state.token(&id).is_none()) {
        return Err(Failure::NotFound(format!("no token {id:?}")).into());
    }
    app.write(Command::TokenDelete { id }).await?;
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
        if secret.len() < 16 {
            return Err(format!("line {}: secret shorter than 16 characters", n + 1));
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
