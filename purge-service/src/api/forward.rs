//! Proxying a request that only the leader can answer.
//!
//! The follower has already authenticated the client and charged its rate limit. It replays
//! the request (method, path and query, the headers that matter, body) to the leader's member
//! address from the membership, as a member (a member proof) and marked with
//! [`FORWARDED_HEADER`], so the leader checks the token again but neither charges it twice
//! nor forwards it again, and relays the answer as it came.

use http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderName, IF_MATCH, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{HeaderValue, Response};
use http_body_util::Full;

use super::ApiRequest;
use super::response::{Body, full};
use crate::app::App;
use crate::client::{ClientError, FORWARDED_HEADER};
use crate::types::NodeId;

/// Request headers relayed to the leader.
const REQUEST_HEADERS: &[HeaderName] = &[AUTHORIZATION, CONTENT_TYPE, IF_MATCH];
/// Response headers relayed back.
const RESPONSE_HEADERS: &[HeaderName] = &[
    CONTENT_TYPE,
    CACHE_CONTROL,
    ETAG,
    RETRY_AFTER,
    WWW_AUTHENTICATE,
    ALLOW,
];

/// Sends `req` to the leader at `addr` and relays its answer. A [`ClientError::Connect`]
/// means the request never reached the leader; any other error leaves its outcome unknown.
pub async fn proxy(
    app: &App,
    leader: NodeId,
    addr: &str,
    req: &ApiRequest,
) -> Result<Response<Body>, ClientError> {
    try_proxy(app, leader, addr, req).await.inspect_err(|e| {
        tracing::warn!(%addr, error = %e, "forwarding to the leader failed");
    })
}

async fn try_proxy(
    app: &App,
    leader: NodeId,
    addr: &str,
    req: &ApiRequest,
) -> Result<Response<Body>, ClientError> {
    let path = req
        .parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut builder = app
        .client
        .builder(addr, leader, req.parts.method.clone(), path)?;
    for name in REQUEST_HEADERS {
        if let Some(v) = req.parts.headers.get(name) {
            builder = builder.header(name, v);
        }
    }
    if let Some(v) = req.parts.headers.get("idempotency-key") {
        builder = builder.header("idempotency-key", v);
    }
    builder = builder.header(FORWARDED_HEADER, HeaderValue::from(app.id));
    let out = builder
        .body(Full::new(req.body.clone()))
        .map_err(|e| ClientError::Build {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    let deadline = app.settings.write_timeout + app.settings.leader_wait;
    let resp = app.client.send(addr, out, deadline).await?;
    let (parts, body) = resp.into_parts();
    let mut relayed = Response::new(full(body));
    *relayed.status_mut() = parts.status;
    for name in RESPONSE_HEADERS {
        if let Some(v) = parts.headers.get(name) {
            relayed.headers_mut().insert(name, v.clone());
        }
    }
    Ok(relayed)
}
