//! `GET /v1/services`, `GET|PUT|DELETE /v1/services/{name}`.
//!
//! A service's version is the log index of the change that made it, so versions only grow,
//! also across a delete and re-create. Writes take the node's write lock and a read barrier
//! before checking `If-Match`, so the check sees every earlier write.

use http::header::ETAG;
use http::{HeaderValue, StatusCode};
use std::sync::Arc;

use tiercel_cluster::purge::wire::{ServiceRecord, TokenScope};
use tiercel_cluster::service::{Service, check_hosts, from_json};

use super::response::{Failure, json};
use super::{Answer, ApiRequest, validate};
use crate::app::App;
use crate::state::change;
use crate::types::{Actor, Command, TokenRecord, unix_ms};

fn with_etag(
    mut resp: http::Response<super::response::Body>,
    version: u64,
) -> http::Response<super::response::Body> {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

/// What an `If-Match` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No header.
    None,
    /// `*`: the service must exist.
    Exists,
    /// One of these versions.
    Versions(Vec<u64>),
}

/// Parses `If-Match`: `*`, or a list of versions, bare (`5`) or as entity tags (`"5"`, `W/"5"`).
pub fn precondition(value: Option<&str>) -> Result<Precondition, Failure> {
    let Some(value) = value else {
        return Ok(Precondition::None);
    };
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.1
    //= "If-Match = "*" / #entity-tag"
    if value.trim() == "*" {
        return Ok(Precondition::Exists);
    }
    let mut versions = Vec::new();
    for part in value.split(',') {
        let tag = part.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let tag = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        let v = tag
            .parse::<u64>()
            .map_err(|_| Failure::BadRequest(format!("If-Match: {value:?} is not a version")))?;
        versions.push(v);
    }
    Ok(Precondition::Versions(versions))
}

/// Whether `current` (None: no such service) satisfies `pre`.
pub fn satisfied(pre: &Precondition, current: Option<u64>) -> bool {
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.1
    //= "If the field value is "*", the condition is false if the origin server does not have a
    //= current representation for the target resource."
    match (pre, current) {
        (Precondition::None, _) => true,
        (Precondition::Exists, c) => c.is_some(),
        (Precondition::Versions(vs), Some(c)) => vs.contains(&c),
        (Precondition::Versions(_), None) => false,
    }
}

/// What a private key reads as for callers below admin scope.
pub const REDACTED: &str = "(redacted)";

/// Hides a service's TLS private key from callers below admin scope: a CI token reads the
/// definition, never the key (nodes get it from the log stream, which needs follow scope).
fn redact(doc: &mut serde_json::Value, token: Option<&TokenRecord>) {
    if token.is_some_and(|t| t.scope < TokenScope::Admin)
        && let Some(key) = doc.get_mut("tls").and_then(|t| t.get_mut("key"))
    {
        *key = serde_json::Value::String(REDACTED.to_owned());
    }
}

/// Every service (those a token limited to services covers).
pub fn list(app: &App, token: Option<&TokenRecord>) -> Answer {
    let mut services = app.state.with(|m| m.state.services());
    if let Some(t) = token {
        services.retain(|s| t.covers(&s.name));
    }
    for s in &mut services {
        redact(&mut s.doc, token);
    }
    Ok(json(StatusCode::OK, &services))
}

/// One service.
pub fn get(app: &App, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
    let name = req.param(0);
    validate::service_name(name)?;
    if token.is_some_and(|t| !t.covers(name)) {
        return Err(Failure::Forbidden(format!("this token may not read service {name:?}")).into());
    }
    let record = app
        .state
        .with(|m| m.state.service(name).cloned())
        .ok_or_else(|| Failure::NotFound(format!("no service {name:?}")))?;
    let version = record.version;
    let mut record = record;
    redact(&mut record.doc, token);
    Ok(with_etag(json(StatusCode::OK, &record), version))
}

/// Creates or replaces a service.
pub async fn put(app: &App, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
    let name = req.param(0).to_string();
    validate::service_name(&name)?;
    let pre = precondition(req.header("if-match"))?;
    let doc: serde_json::Value = req.json()?;
    let service = validate::service_doc(&name, &doc)?;
    let _serial = app.write_lock.lock().await;
    app.linearize().await?;
    let current = app
        .state
        .with(|m| m.state.service(&name).map(|s| s.version));
    if !satisfied(&pre, current) {
        return Err(mismatch(&name, current).into());
    }
    // No host may belong to two services: nodes would not know where to send it.
    let others = app.state.with(|m| m.state.services());
    let mut all: Vec<Arc<Service>> = others
        .iter()
        .filter(|r| r.name != name)
        .filter_map(|r| from_json(&r.name, &r.doc).ok().map(Arc::new))
        .collect();
    all.push(Arc::new(service));
    if let Err(conflict) = check_hosts(&all) {
        return Err(Failure::Conflict(conflict.to_string()).into());
    }
    let by = token.map(Actor::of);
    let ts_ms = unix_ms();
    let changed = change(&by, ts_ms);
    let (index, _) = app
        .write(Command::ServicePut {
            name: name.clone(),
            doc: doc.clone(),
            ts_ms,
            by,
        })
        .await?;
    let record = ServiceRecord {
        name,
        version: index,
        doc,
        changed,
    };
    Ok(with_etag(json(StatusCode::OK, &record), index))
}

/// Deletes a service; answers its last document with the deletion's version.
pub async fn delete(app: &App, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
    let name = req.param(0).to_string();
    validate::service_name(&name)?;
    let pre = precondition(req.header("if-match"))?;
    let _serial = app.write_lock.lock().await;
    app.linearize().await?;
    let current = app
        .state
        .with(|m| m.state.service(&name).cloned())
        .ok_or_else(|| Failure::NotFound(format!("no service {name:?}")))?;
    if !satisfied(&pre, Some(current.version)) {
        return Err(mismatch(&name, Some(current.version)).into());
    }
    let by = token.map(Actor::of);
    let ts_ms = unix_ms();
    let changed = change(&by, ts_ms);
    let (index, _) = app
        .write(Command::ServiceDelete {
            name: name.clone(),
            ts_ms,
            by,
        })
        .await?;
    let record = ServiceRecord {
        name,
        version: index,
        doc: current.doc,
        changed,
    };
    Ok(json(StatusCode::OK, &record))
}

fn mismatch(name: &str, current: Option<u64>) -> Failure {
    match current {
        Some(v) => Failure::PreconditionFailed(format!(
            "If-Match does not match service {name:?} at version {v}"
        )),
        None => Failure::PreconditionFailed(format!(
            "If-Match given but service {name:?} does not exist"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_is_parsed_and_evaluated() {
        type Case = (Option<&'static str>, Option<u64>, Result<bool, ()>);
        let table: &[Case] = &[
            (None, None, Ok(true)),
            (None, Some(3), Ok(true)),
            (Some("*"), Some(3), Ok(true)),
            (Some("*"), None, Ok(false)),
            (Some("3"), Some(3), Ok(true)),
            (Some("\"3\""), Some(3), Ok(true)),
            (Some("W/\"3\""), Some(3), Ok(true)),
            (Some("\"2\", \"3\""), Some(3), Ok(true)),
            (Some("4"), Some(3), Ok(false)),
            (Some("3"), None, Ok(false)),
            (Some("abc"), Some(3), Err(())),
            (Some(""), Some(3), Err(())),
        ];
        for &(header, current, ref want) in table {
            let got = precondition(header)
                .map(|p| satisfied(&p, current))
                .map_err(|_| ());
            assert_eq!(&got, want, "{header:?} vs {current:?}");
        }
    }
}
