//! The HTTP API of `tiercel_cluster::purge::wire` and the member endpoints (Raft RPCs, writes
//! forwarded to the leader), on one listener or two (`--raft-listen`).
//!
//! ```text
//! request ─▶ routes::find ─▶ identify (head only: cluster secret, token, scope, rate)
//!         ─▶ read body (bounded) ─▶ on_leader? ──no──▶ handler (local)
//!                                                     │yes
//!                                      leader = me ───┼──▶ handler ──NotLeader──┐
//!                                      leader = other ┴──▶ forward::proxy ◀──────┘
//!                                      no leader (after a short wait) ──▶ 503 + Retry-After
//! ```

pub mod auth;
mod body;
pub mod cluster;
pub mod forward;
pub mod log_stream;
pub mod purges;
pub mod raft_rpc;
pub mod response;
pub mod routes;
pub mod server;
pub mod services;
pub mod tokens;
pub mod validate;

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::app::{App, LeaderView, WriteError};
use crate::client::{ClientError, FORWARDED_HEADER};
use crate::types::TokenRecord;
use response::{Body, Failure};
use routes::{Access, NoRoute, Route, RouteId};
use tiercel_cluster::conn::AmbiguousFraming;
use validate::{Invalid, MAX_BODY_BYTES};

/// Largest Raft RPC body (a snapshot chunk plus its header, or a batch of entries).
const MAX_RAFT_BODY: usize = 64 * 1024 * 1024;

/// Why a handler did not produce an answer.
#[derive(Debug)]
pub enum Reject {
    /// Answer with this error.
    Fail(Failure),
    /// This node lost leadership: send the request to the leader instead.
    NotLeader,
}

impl From<Failure> for Reject {
    fn from(f: Failure) -> Self {
        Reject::Fail(f)
    }
}

impl From<Invalid> for Reject {
    fn from(e: Invalid) -> Self {
        Reject::Fail(e.into())
    }
}

impl From<WriteError> for Reject {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotLeader => Reject::NotLeader,
            WriteError::Unavailable(m) => Reject::Fail(Failure::Unavailable {
                message: m,
                retry_after: 1,
            }),
            WriteError::Refused(m) => Reject::Fail(Failure::BadRequest(m)),
        }
    }
}

/// What a handler returns.
pub type Answer = Result<Response<Body>, Reject>;

/// A request with its body read and its path parameters extracted.
pub struct ApiRequest {
    /// Method, URI, headers.
    pub parts: http::request::Parts,
    /// The whole body.
    pub body: Bytes,
    /// Path parameters in template order.
    pub params: Vec<String>,
}

impl ApiRequest {
    /// Path parameter `i` (empty if absent).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.parts.uri.query().and_then(|q| {
            q.split('&').find_map(|kv| match kv.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if kv == key => Some(""),
                _ => None,
            })
        })
    }

    /// The body parsed as JSON, or a one-line 400.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        if self.body.is_empty() {
            return Err(Failure::BadRequest(
                "request body is empty; expected JSON".into(),
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Failure::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The API, also serving member traffic (no `--raft-listen`).
    Shared,
    /// The API only: Raft RPCs are not served here.
    Api,
    /// Member traffic only (`--raft-listen`): everything but health needs the cluster secret.
    Member,
}

/// Who is calling, decided from the request head alone, before any byte of its body is read.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Anyone (health checks).
    Anyone,
    /// Another member, proven by the cluster secret.
    Member,
    /// A client with a valid token; `forwarded` when a member relays it to this leader.
    Token {
        /// The token.
        token: TokenRecord,
        /// Relayed by a member (authenticated and rate-limited where it arrived).
        forwarded: bool,
    },
}

impl Caller {
    fn token(&self) -> Option<&TokenRecord> {
        match self {
            Caller::Token { token, .. } => Some(token),
            _ => None,
        }
    }

    fn forwarded(&self) -> bool {
        matches!(
            self,
            Caller::Token {
                forwarded: true,
                ..
            }
        )
    }
}

/// Decides who is calling from the head of the request: the credentials are checked before the
/// body is read, so an unauthenticated client cannot make a member buffer anything.
fn identify(
    app: &App,
    listener: Listener,
    route: &Route,
    parts: &http::request::Parts,
) -> Result<Caller, Failure> {
    let headers = &parts.headers;
    // With a separate member listener, the API listener has no members: a member proof there
    // (to skip a rate limit as a "forwarded" request, say) counts for nothing.
    let member = listener != Listener::Api && auth::is_member(app, parts);
    let health = matches!(route.access, Access::Public);
    if listener == Listener::Member && !member && !health {
        return Err(Failure::Unauthorized(
            "this listener serves cluster members only (member proof missing or invalid)".into(),
        ));
    }
    match route.access {
        Access::Public => Ok(Caller::Anyone),
        Access::Cluster if listener == Listener::Api => Err(Failure::NotFound(
            "member RPCs are served on the member listener (--raft-listen)".into(),
        )),
        Access::Cluster if member => Ok(Caller::Member),
        Access::Cluster => Err(Failure::Unauthorized(
            "member proof missing or invalid".into(),
        )),
        Access::Token(scope) => {
            // A forwarded write is charged again at the leader: the member it arrived at
            // protects itself, the leader holds the cluster-wide limit on writes.
            let forwarded = member && headers.contains_key(FORWARDED_HEADER);
            let token = auth::authorize(app, headers, scope, route.rate_class())?;
            Ok(Caller::Token { token, forwarded })
        }
    }
}

/// Answers one HTTP request that arrived on `listener`.
pub async fn handle(app: Arc<App>, listener: Listener, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    if parts.extensions.get::<AmbiguousFraming>().is_some() {
        // Content-Length with Transfer-Encoding, or twice: refused unread (cluster::conn::head).
        let mut resp = Failure::BadRequest("ambiguous message framing".into()).into_response();
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return resp;
    }
    let (route, params) = match routes::find(&parts.method, parts.uri.path()) {
        Ok(found) => found,
        Err(NoRoute::NotFound) => {
            return Failure::NotFound(format!("no route for {}", parts.uri.path())).into_response();
        }
        Err(NoRoute::MethodNotAllowed(allowed)) => {
            let list: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
            return Failure::MethodNotAllowed(list.join(", ")).into_response();
        }
    };
    let caller = match identify(&app, listener, route, &parts) {
        Ok(c) => c,
        Err(f) => return f.into_response(),
    };
    let limit = if route.access == Access::Cluster {
        MAX_RAFT_BODY
    } else {
        MAX_BODY_BYTES
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match body::read(body, declared, limit, app.settings.body_timeout).await {
        Ok(b) => b,
        Err(f) => return f.into_response(),
    };
    let req = ApiRequest {
        parts,
        body,
        params,
    };
    let started = std::time::Instant::now();
    let resp = match dispatch(&app, route, &caller, &req).await {
        Ok(resp) => resp,
        Err(Reject::Fail(f)) => f.into_response(),
        Err(Reject::NotLeader) => Failure::Unavailable {
            message: "leadership is changing; retry".into(),
            retry_after: 1,
        }
        .into_response(),
    };
    tracing::debug!(
        method = %req.parts.method,
        path = %req.parts.uri.path(),
        status = resp.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    resp
}

async fn dispatch(app: &Arc<App>, route: &Route, caller: &Caller, req: &ApiRequest) -> Answer {
    if !route.on_leader {
        return run(app, route, caller, req).await;
    }
    let forwarded = caller.forwarded();
    let deadline = tokio::time::Instant::now() + app.settings.leader_wait;
    // A leader found unreachable: wait for another one (the request never reached it).
    let mut dead = None;
    // A few rounds: leadership may move between the check and the write.
    for _ in 0..3 {
        match app.wait_leader_until(dead, deadline).await {
            LeaderView::Me => match run(app, route, caller, req).await {
                Err(Reject::NotLeader) => continue,
                other => return other,
            },
            LeaderView::Other { id, addr } if !forwarded => {
                match forward::proxy(app, id, &addr, req).await {
                    Ok(resp) => return Ok(resp),
                    Err(e @ ClientError::Connect { .. }) => {
                        tracing::info!(leader = id, error = %e, "leader unreachable; waiting for another");
                        dead = Some(id);
                    }
                    Err(e) => {
                        // It may have been applied: the outcome is unknown, the client retries
                        // (with an Idempotency-Key the retry counts once).
                        return Err(Failure::Unavailable {
                            message: format!("forwarding to the leader failed ({e}); retry"),
                            retry_after: 1,
                        }
                        .into());
                    }
                }
            }
            LeaderView::Other { .. } => {
                return Err(Failure::Unavailable {
                    message: "this node is not the leader either; leadership is changing".into(),
                    retry_after: 1,
                }
                .into());
            }
            LeaderView::Unknown => break,
        }
    }
    Err(Failure::Unavailable {
        message: "no leader elected; retry".into(),
        retry_after: 1,
    }
    .into())
}

async fn run(app: &Arc<App>, route: &Route, caller: &Caller, req: &ApiRequest) -> Answer {
    let token = caller.token();
    // The token was checked on the request head; a body can take seconds to arrive and a
    // leader seconds to be found, and a revocation or expiry in between must still stop it.
    if let Some(t) = token {
        auth::still_live(app, t)?;
    }
    match route.id {
        RouteId::Healthz => cluster::healthz(app),
        RouteId::Readyz => cluster::readyz(app),
        RouteId::PurgeCreate => purges::create(app, req, token).await,
        RouteId::PurgeList => purges::list(app, req, token),
        RouteId::PurgeStatus => purges::status(app, req).await,
        RouteId::FollowerReport => purges::report(app, req, token),
        RouteId::Log => log_stream::stream(app.clone(), req, token).await,
        RouteId::ServiceList => services::list(app, token),
        RouteId::ServiceGet => services::get(app, req, token),
        RouteId::ServicePut => services::put(app, req, token).await,
        RouteId::ServiceDelete => services::delete(app, req, token).await,
        RouteId::TokenCreate => tokens::create(app, req, token).await,
        RouteId::TokenList => tokens::list(app).await,
        RouteId::TokenDelete => tokens::delete(app, req, token).await,
        RouteId::ClusterGet => cluster::info(app).await,
        RouteId::MemberAdd => cluster::add_member(app, req).await,
        RouteId::MemberRemove => cluster::remove_member(app, req).await,
        RouteId::RaftAppend => raft_rpc::append(app, req).await,
        RouteId::RaftVote => raft_rpc::vote(app, req).await,
        RouteId::RaftSnapshot => raft_rpc::snapshot(app, req).await,
        RouteId::RaftImport => raft_rpc::import(app, req).await,
        RouteId::RaftUsage => raft_rpc::usage(app),
    }
}
