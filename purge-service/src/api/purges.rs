//! `POST /v1/purges`, `GET /v1/purges` (the audit trail), `GET /v1/purges/{id}` and
//! `POST /v1/followers/report`.

use std::time::Instant;

use http::StatusCode;
use tiercel_cluster::purge::wire::{FollowerReport, PurgeList, PurgeRequest};

use super::response::{Failure, empty, json};
use super::{Answer, ApiRequest, validate};
use crate::app::App;
use crate::reports::ReportRefused;
use crate::types::{Actor, IdempotencyKey, PurgeItem, TokenRecord, parse_purge_id};

/// Header making a retried purge count once.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Validates, batches and commits a purge; answers once it is committed.
///
/// With an `Idempotency-Key`, a retry by the same token returns the first `{id, index}` and
/// commits nothing: concurrent retries queue on a per-key lock, and the key is looked up after a
/// read barrier, so a retry sent to a new leader sees a purge the old one committed. The same
/// key sent with a different purge is refused (422) rather than silently dropped.
pub async fn create(app: &App, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
    let purge: PurgeRequest = req.json()?;
    let purge = validate::purge(purge)?;
    // A tenant's token purges its own services' objects only: the purge must name one, and
    // nodes then match it against that service's objects alone.
    if let Some(t) = token
        && !t.services.is_empty()
    {
        match &purge.service {
            Some(name) if t.covers(name) => {}
            Some(name) => {
                return Err(Failure::Forbidden(format!(
                    "this token may not purge service {name:?}"
                ))
                .into());
            }
            None => {
                return Err(Failure::Forbidden(
                    "this token is limited to services: name one with `service`".into(),
                )
                .into());
            }
        }
    }
    let by = token.map(Actor::of);
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
        let accepted = app.batcher.submit(PurgeItem::new(purge, None, by)).await?;
        return Ok(json(StatusCode::OK, &accepted));
    };
    let item = PurgeItem::new(purge, Some(key.clone()), by);
    let fingerprint = item.fingerprint.clone().unwrap_or_default();
    let lock = app.idempotency_lock(&key);
    let _held = lock.lock().await;
    if let Some(first) = earlier(app, &key, &fingerprint)? {
        return Ok(first);
    }
    app.linearize().await?;
    if let Some(first) = earlier(app, &key, &fingerprint)? {
        return Ok(first);
    }
    let accepted = app.batcher.submit(item).await?;
    Ok(json(StatusCode::OK, &accepted))
}

/// The first answer given for `key`, when this is a retry of it; 422 when the key was used
/// for another purge.
fn earlier(
    app: &App,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<Option<http::Response<super::response::Body>>, Failure> {
    let Some(first) = app.state.with(|m| m.state.idempotent_answer(key).cloned()) else {
        return Ok(None);
    };
    if !first.same_request(fingerprint) {
        return Err(Failure::Unprocessable(format!(
            "Idempotency-Key {:?} was used for a different purge (id {}); use a new key",
            key.key, first.answer.id
        )));
    }
    Ok(Some(json(StatusCode::OK, &first.answer)))
}

/// Most purges in one page of `GET /v1/purges`.
const MAX_LIST: usize = 1000;

/// The audit trail: purges accepted at or after `since` (ms since the epoch) that come after
/// the purge id `after`, oldest first, `limit` per page (default 100).
pub fn list(app: &App, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
    let number = |name: &str| -> Result<Option<u64>, Failure> {
        match req.query(name) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                Failure::BadRequest(format!("{name}: {v:?} is not a non-negative integer"))
            }),
        }
    };
    let since = number("since")?.unwrap_or(0);
    let after = match req.query("after") {
        None | Some("") => None,
        Some(id) => {
            let (index, item) = parse_purge_id(id)
                .ok_or_else(|| Failure::BadRequest(format!("after: {id:?} is not a purge id")))?;
            Some((index, item.unwrap_or(0)))
        }
    };
    let limit = number("limit")?
        .map_or(100, |l| l as usize)
        .clamp(1, MAX_LIST);
    let (mut purges, more) = app
        .state
        .with(|m| m.state.audit().list(since, after, limit));
    let next_after = if more {
        purges.last().map(|p| p.id.clone())
    } else {
        None
    };
    // A token limited to services sees its services' purges only (a page may then hold
    // fewer than `limit`; `next_after` still walks on).
    if let Some(t) = token.filter(|t| !t.services.is_empty()) {
        purges.retain(|p| p.purge.service.as_deref().is_some_and(|s| t.covers(s)));
    }
    Ok(json(StatusCode::OK, &PurgeList { purges, next_after }))
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
pub fn report(app: &App, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
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
    let token = token.map(|t| t.id.as_str()).unwrap_or_default();
    let committed = *app.state.applied().borrow();
    app.reports
        .lock()
        .record(token, report, committed, Instant::now())
        .map_err(|e| match e {
            ReportRefused::TooOften(_) => Failure::RateLimited { retry_after: 1 },
            ReportRefused::NameTaken(_) => Failure::Conflict(e.to_string()),
            ReportRefused::TooManyNodes(_) => Failure::Forbidden(e.to_string()),
        })?;
    Ok(empty(StatusCode::NO_CONTENT))
}
