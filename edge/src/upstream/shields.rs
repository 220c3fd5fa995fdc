//! The shield tier as an upstream: each key goes to its shield by weighted rendezvous hashing
//! ([`tiercel_cluster::shield_select`]) among the healthy ones, fails over along the same
//! ranking, and goes straight to the origin when no shield can answer and the node allows it
//! (`origin_fallback`).
//!
//! ```text
//! send(req, key) ─▶ rank(key) ─▶ healthy shield #1 ─┬─▶ response head
//!                                 │ failed, may_retry └─▶ shield #2 ─▶ … ─▶ origin (fallback)
//!                                 └─ mark down (back-off)          probes: OPTIONS, Max-Forwards: 0
//! ```
//!
//! Health is passive (a connect error or connect timeout takes a shield down, with exponential
//! back-off)
//! and active (every [`PROBE_EVERY`], `OPTIONS /` with `Max-Forwards: 0`, which a Tiercel node
//! answers itself, RFC 9110 §9.3.7, without asking its origin). A shield's 5xx is passed on, not
//! held against it: it is usually its origin's answer.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{Method, Request};
use tiercel_cluster::shield_select::{Candidate, parse_shield, rank};
use tokio::task::AbortHandle;

use super::health::Health;
use super::retry::{AttemptFacts, Replay, may_retry};
use super::{
    OriginUpstream, OriginUrlError, Reach, Upstream, UpstreamBody, UpstreamCtx, UpstreamError,
    UpstreamResponse, UpstreamTimeouts, WireProtocol, empty_body,
};

/// How often each shield is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct Member {
    client: Arc<OriginUpstream>,
    health: Health,
}

/// Shields, ranked per key, with failover and an optional origin fallback.
pub struct ShieldUpstream {
    candidates: Vec<Candidate>,
    members: Arc<Vec<Member>>,
    fallback: Option<Arc<dyn Upstream>>,
    idle: Duration,
    probes: Vec<AbortHandle>,
}

impl Drop for ShieldUpstream {
    fn drop(&mut self) {
        for p in &self.probes {
            p.abort();
        }
    }
}

impl ShieldUpstream {
    /// Shields at `urls` (base URLs, each optionally `#weight=W`) spoken to over `protocol`,
    /// the origin as fallback when given. Starts the probes: call inside the runtime.
    pub fn new(
        urls: &[String],
        protocol: WireProtocol,
        fallback: Option<Arc<dyn Upstream>>,
        timeouts: UpstreamTimeouts,
        roots: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    ) -> Result<Arc<Self>, OriginUrlError> {
        let mut candidates = Vec::with_capacity(urls.len());
        let mut members = Vec::with_capacity(urls.len());
        for spec in urls {
            let (url, weight) =
                parse_shield(spec).map_err(|_| OriginUrlError::Invalid(spec.clone()))?;
            candidates.push(Candidate::new(url.clone(), weight));
            members.push(Member {
                client: OriginUpstream::connect(
                    &url,
                    timeouts,
                    Reach {
                        protocol,
                        roots,
                        addresses: &[],
                    },
                )?,
                health: Health::default(),
            });
        }
        let members = Arc::new(members);
        let probes = (0..members.len())
            .map(|i| tokio::spawn(probe(members.clone(), i)).abort_handle())
            .collect();
        Ok(Arc::new(ShieldUpstream {
            candidates,
            members,
            fallback,
            idle: timeouts.idle,
            probes,
        }))
    }

    /// Whether shield `i` is up (for tests and metrics).
    pub fn is_up(&self, i: usize) -> bool {
        self.members.get(i).is_some_and(|m| m.health.is_up())
    }
}

/// Probes shield `i` forever.
async fn probe(members: Arc<Vec<Member>>, i: usize) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(m) = members.get(i) else { return };
        let mut req = Request::new(empty_body());
        *req.method_mut() = Method::OPTIONS;
        *req.uri_mut() = http::Uri::from_static("/");
        req.headers_mut().insert(
            http::header::MAX_FORWARDS,
            http::HeaderValue::from_static("0"),
        );
        let answer = tokio::time::timeout(PROBE_TIMEOUT, m.client.send(req, &UpstreamCtx::probe()));
        match answer.await {
            Ok(Ok(resp)) if resp.status().is_success() => m.health.succeeded(),
            _ => m.health.failed(),
        }
    }
}

impl Upstream for ShieldUpstream {
    fn send(
        &self,
        req: Request<UpstreamBody>,
        ctx: &UpstreamCtx,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let order = rank(&self.candidates, &ctx.key);
        let members = self.members.clone();
        let fallback = self.fallback.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            let idempotent = req.method().is_idempotent();
            // Only a request without a body can be sent again; its parts are kept for that.
            let replay = Replay::of(&req);
            let facts = AttemptFacts {
                idempotent,
                replayable: replay.is_some(),
                sent_to_client: false,
            };
            // Healthy shields in rank order; when none is, the best-ranked one anyway unless
            // the origin can stand in (a probe may not have seen it recover yet).
            let mut tries: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| members[i].health.is_up())
                .collect();
            if tries.is_empty() && fallback.is_none() {
                tries.extend(order.first());
            }
            let mut first = Some(req);
            let mut next_attempt = || {
                first
                    .take()
                    .or_else(|| replay.as_ref().map(Replay::request))
            };
            let mut last = None;
            for i in tries {
                let Some(attempt) = next_attempt() else { break };
                match members[i].client.send(attempt, &ctx).await {
                    Ok(resp) => {
                        members[i].health.succeeded();
                        return Ok(resp);
                    }
                    Err(e) => {
                        // Only a shield that cannot be reached is marked down: a slow answer is
                        // usually a slow object, and a hung shield fails its probes.
                        if e.not_sent() {
                            members[i].health.failed();
                        }
                        tracing::warn!(error = %e, shield = %members[i].client.describe(), "shield failed");
                        if !may_retry(facts, &e) {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                }
            }
            match fallback {
                Some(origin) => match next_attempt() {
                    Some(attempt) => origin.send(attempt, &ctx).await,
                    None => Err(last.unwrap_or(UpstreamError::Request("no shield".into()))),
                },
                None => Err(last.unwrap_or_else(|| {
                    UpstreamError::Connect("no shield is up and origin_fallback is off".into())
                })),
            }
        })
    }

    fn idle_timeout(&self) -> Duration {
        self.idle
    }

    fn members_up(&self) -> Vec<(String, bool)> {
        self.candidates
            .iter()
            .zip(self.members.iter())
            .map(|(c, m)| (c.name.clone(), m.health.is_up()))
            .collect()
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.candidates.iter().map(|c| c.name.as_str()).collect();
        format!("shields [{}]", names.join(", "))
    }
}
