//! `POST /v1/purges`, `GET /v1/purges/{id}` and `POST /v1/followers/report`.

use std::time::Instant;

use http::StatusCode;
use tiercel_cluster::purge::wire::{FollowerReport, PurgeRequest};

use super::response::{Failure, empty, json};
use super::{Answer, ApiRequest, validate};
use crate::app::App;
use crate::types::{IdempotencyKey, PurgeItem, TokenRecord};

/// Header making a retried purge count once.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Validates, batches and commits a purge; answers once it is committed.
///
/// With an `Idempotency-Key`, a retry by the same token returns the first `{id, index}` and
/// commits nothing: concurrent retries queue on a per-key lock, and the key is looked up after a
/// read barrier, so a retry sent to a new leader sees a purge the old one committed.
pub async fn create(app: &App, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
    let purge: PurgeRequest = req.json()?;
    let purge = validate::purge(purge)?;
    let key = match req.header(IDEMPOTENCY_HEADER) {
        Some(k) => {
            validate::idempotency_key(k)?;
            let token_id = token.map(|t| t.id.clone()).unwrap_or_default();
            Some(IdempotencyKey {
                token_id,
                key: k.to_string(),
            })
        }
        None if req.parts.headers.contains_key(IDEMPOTENCY_HEADER) => {
            return Err(
                Failure::BadRequest("Idempotency-Key: must be visible ASCII".into()).into(),
            );
        }
        None => None,
    };
    let Some(key) = key else {
        let accepted = app
            .batcher
            .submit(PurgeItem {
                purge,
                idempotency: None,
            })
            .await?;
        return Ok(json(StatusCode::OK, &accepted));
    };
    let lock = app.idempotency_lock(&key);
    let _held = lock.lock().await;
    if let Some(first) = app.state.with(|m| m.state.idempotent_answer(&key).cloned()) {
        return Ok(json(StatusCode::OK, &first));
    }
    app.linearize().await?;
    if let Some(first) = app.state.with(|m| m.state.idempotent_answer(&key).cloned()) {
        return Ok(json(StatusCode::OK, &first));
    }
    let accepted = app
        .batcher
        .submit(PurgeItem {
            purge,
            idempotency: Some(key),
        })
        .await?;
    Ok(json(StatusCode::OK, &accepted))
}

/// How far a purge has spread among live followers (answered by the leader).
pub async fn status(app: &App, req: &ApiRequest) -> Answer {
    let id = req.param(0);
    let mut index = app.state.with(|m| m.state.purge_index(id));
    if index.is_none() {
        // A purge committed by the previous leader may not be applied here yet.
        app.linearize().await?;
        index = app.state.with(|m| m.state.purge_index(id));
    }
    let index =
        index.ok_or_else(|| Failure::NotFound(format!("no purge {id:?} (unknown or expired)")))?;
    let status = app.reports.lock().status(id, index, Instant::now());
    Ok(json(StatusCode::OK, &status))
}

/// Records a follower's applied index (answered by the leader).
pub fn report(app: &App, req: &ApiRequest) -> Answer {
    let report: FollowerReport = req.json()?;
    if report.node.is_empty()
        || report.node.len() > 256
        || report.node.chars().any(char::is_control)
    {
        return Err(Failure::BadRequest(
            "node: must be 1-256 characters without control characters".into(),
        )
        .into());
    }
    if report.role.len() > 64 {
        return Err(Failure::BadRequest("role: at most 64 characters".into()).into());
    }
    app.reports.lock().record(report, Instant::now());
    Ok(empty(StatusCode::NO_CONTENT))
}
