//! A service's origin pool as an upstream: requests spread by `round_robin` (smooth weighted,
//! as nginx does), `least_conn` (fewest in flight per unit of weight) or `consistent` (weighted
//! rendezvous hashing on the cache key, so each object has one home); members leave the
//! rotation on failures and come back after a back-off or a passing health check.
//!
//! ```text
//! send(req, key) ─▶ pick (healthy members only) ─┬─▶ response head (5xx: counted against it)
//!                                               └─ failed before a byte came back, and
//!                                                  may_retry ─▶ one other member, once
//! health: passive (connect failure or 5xx ─▶ down for a back-off), active (GET check.path)
//! ```
//! With every member down the pool answers at once with an error (502, or stale-if-error),
//! instead of queueing on dead origins; back-offs expire and checks bring members back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{Method, Request};
use http_body_util::BodyExt;
use tiercel_cluster::service::{Balance, HealthCheck};
use tiercel_cluster::shield_select::{Candidate, rank};
use tokio::task::AbortHandle;

use super::health::Health;
use super::retry::{AttemptFacts, Replay, may_retry};
use super::{
    OriginUpstream, Upstream, UpstreamBody, UpstreamCtx, UpstreamError, UpstreamResponse,
    empty_body,
};

/// One origin of a pool.
pub struct PoolMember {
    client: Arc<OriginUpstream>,
    weight: u32,
    health: Health,
    in_flight: AtomicUsize,
    /// Requests sent to it (for `/metrics` and tests).
    sent: AtomicU64,
}

impl PoolMember {
    /// `client` with a relative `weight` (at least 1).
    pub fn new(client: Arc<OriginUpstream>, weight: u32) -> Self {
        PoolMember {
            client,
            weight: weight.max(1),
            health: Health::default(),
            in_flight: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
        }
    }
}

/// Counts a request in flight on a member while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The order in which members are tried for one request: pure, so each policy is tested
/// without sockets.
pub struct Picker {
    balance: Balance,
    /// `round_robin`: a smooth weighted schedule of member indexes, walked by `cursor`.
    schedule: Vec<usize>,
    cursor: AtomicUsize,
    /// `consistent`: members as rendezvous candidates.
    candidates: Vec<Candidate>,
}

/// The longest round-robin schedule (weights are scaled down to fit).
const MAX_SCHEDULE: usize = 4096;

impl Picker {
    /// A picker over members with these weights and names.
    pub fn new(balance: Balance, weights: &[u32], names: &[String]) -> Self {
        Picker {
            balance,
            schedule: smooth_schedule(weights),
            cursor: AtomicUsize::new(0),
            candidates: names
                .iter()
                .zip(weights)
                .map(|(n, w)| Candidate::new(n.clone(), f64::from(*w)))
                .collect(),
        }
    }

    /// Members to try, best first, among those `up`; `load(i)` is member i's requests in
    /// flight divided by its weight (least_conn).
    pub fn order(&self, key: &[u8; 32], up: &[bool], load: impl Fn(usize) -> f64) -> Vec<usize> {
        let n = up.len();
        let mut order: Vec<usize> = match self.balance {
            Balance::Consistent => rank(&self.candidates, key),
            Balance::RoundRobin => {
                let start = self.cursor.fetch_add(1, Relaxed);
                let len = self.schedule.len().max(1);
                let mut seen = vec![false; n];
                let mut out = Vec::with_capacity(n);
                for step in 0..len {
                    let Some(&i) = self.schedule.get((start + step) % len) else {
                        break;
                    };
                    if i < n && !seen[i] {
                        seen[i] = true;
                        out.push(i);
                    }
                }
                out
            }
            Balance::LeastConn => {
                let start = self.cursor.fetch_add(1, Relaxed);
                let mut all: Vec<usize> = (0..n).collect();
                // Ties go round in turn, not always to the first member.
                all.rotate_left(start % n.max(1));
                all.sort_by(|&a, &b| load(a).total_cmp(&load(b)));
                all
            }
        };
        order.retain(|&i| up.get(i).copied().unwrap_or(false));
        order
    }
}

/// Smooth weighted round robin (nginx's): a schedule in which each member appears in
/// proportion to its weight, spread out rather than in runs.
pub fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
    // Scale down so the schedule stays short; every member keeps at least one slot.
    let scale = total.div_ceil(MAX_SCHEDULE as u64).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|&w| i64::try_from((u64::from(w.max(1)) / scale).max(1)).unwrap_or(1))
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let Some(best) =
            (0..current.len()).max_by(|&a, &b| current[a].cmp(&current[b]).then(b.cmp(&a)))
        else {
            break;
        };
        current[best] -= total;
        out.push(best);
    }
    out
}

/// A pool of origins behind one service.
pub struct OriginPool {
    members: Arc<Vec<PoolMember>>,
    picker: Picker,
    idle: Duration,
    checks: Vec<AbortHandle>,
    name: String,
}

impl Drop for OriginPool {
    fn drop(&mut self) {
        for c in &self.checks {
            c.abort();
        }
    }
}

impl OriginPool {
    /// A pool over `members` (URL, client, weight), with active checks when `check` is given.
    /// Call inside the runtime (the checks are tasks).
    pub fn new(
        members: Vec<(String, PoolMember)>,
        balance: Balance,
        check: Option<HealthCheck>,
        idle: Duration,
    ) -> Arc<Self> {
        let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let weights: Vec<u32> = members.iter().map(|(_, m)| m.weight).collect();
        let members = Arc::new(members.into_iter().map(|(_, m)| m).collect::<Vec<_>>());
        let checks = match check {
            Some(check) => (0..members.len())
                .map(|i| {
                    tokio::spawn(health_check(members.clone(), i, check.clone())).abort_handle()
                })
                .collect(),
            None => Vec::new(),
        };
        Arc::new(OriginPool {
            members,
            picker: Picker::new(balance, &weights, &names),
            idle,
            checks,
            name: format!("pool [{}]", names.join(", ")),
        })
    }

    /// Requests sent to each member so far.
    pub fn sent(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.sent.load(Relaxed)).collect()
    }
}

/// Checks member `i` forever: GET `check.path`, any 2xx or 3xx within the timeout is up.
async fn health_check(members: Arc<Vec<PoolMember>>, i: usize, check: HealthCheck) {
    let mut tick = tokio::time::interval(check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let Ok(path) = http::Uri::try_from(check.path.as_str()) else {
        return;
    };
    loop {
        tick.tick().await;
        let Some(m) = members.get(i) else { return };
        let mut req = Request::new(empty_body());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = path.clone();
        let answer = tokio::time::timeout(check.timeout, async {
            let resp = m.client.send(req, &UpstreamCtx::probe()).await?;
            let ok = resp.status().is_success() || resp.status().is_redirection();
            // Read the (small) body so the connection can be reused; bounded by the timeout.
            let _ = resp.into_body().collect().await;
            Ok::<bool, UpstreamError>(ok)
        });
        match answer.await {
            Ok(Ok(true)) => m.health.succeeded(),
            _ => m.health.failed(),
        }
    }
}

impl Upstream for OriginPool {
    fn send(
        &self,
        req: Request<UpstreamBody>,
        ctx: &UpstreamCtx,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let members = self.members.clone();
        let up: Vec<bool> = members.iter().map(|m| m.health.is_up()).collect();
        let order = self.picker.order(&ctx.key, &up, |i| {
            members.get(i).map_or(f64::MAX, |m| {
                m.in_flight.load(Relaxed) as f64 / f64::from(m.weight)
            })
        });
        let ctx = ctx.clone();
        Box::pin(async move {
            let again = Replay::of(&req);
            let facts = AttemptFacts {
                idempotent: req.method().is_idempotent(),
                replayable: again.is_some(),
                sent_to_client: false,
            };
            let mut attempt = Some(req);
            let mut last = None;
            // The first choice, and at most one other member.
            for i in order.into_iter().take(2) {
                let Some(req) = attempt
                    .take()
                    .or_else(|| again.as_ref().map(Replay::request))
                else {
                    break;
                };
                let Some(m) = members.get(i) else { break };
                m.in_flight.fetch_add(1, Relaxed);
                m.sent.fetch_add(1, Relaxed);
                let _flight = InFlight(&m.in_flight);
                match m.client.send(req, &ctx).await {
                    Ok(resp) => {
                        // A 5xx is passed on (it may be the object's answer), and counted
                        // against the member: a run of them takes it out for a while.
                        if resp.status().is_server_error() {
                            m.health.failed();
                        } else {
                            m.health.succeeded();
                        }
                        return Ok(resp);
                    }
                    Err(e) => {
                        if e.not_sent() || matches!(e, UpstreamError::Protocol(_)) {
                            m.health.failed();
                        }
                        tracing::warn!(error = %e, origin = %m.client.describe(), "origin failed");
                        if !may_retry(facts, &e) {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                }
            }
            Err(last.unwrap_or_else(|| {
                UpstreamError::Connect("every origin of the pool is down".into())
            }))
        })
    }

    fn idle_timeout(&self) -> Duration {
        self.idle
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn members_up(&self) -> Vec<(String, bool)> {
        self.picker
            .candidates
            .iter()
            .zip(self.members.iter())
            .map(|(c, m)| (c.name.clone(), m.health.is_up()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://o{i}")).collect()
    }

    #[test]
    fn smooth_round_robin_follows_the_weights_without_runs() {
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[1, 1]), vec![0, 1]);
        let s = smooth_schedule(&[1000; 64]);
        assert!(s.len() <= MAX_SCHEDULE + 64, "{}", s.len());
        for i in 0..64 {
            assert!(s.contains(&i));
        }
    }

    #[test]
    fn round_robin_shares_by_weight_and_skips_members_that_are_down() {
        let p = Picker::new(Balance::RoundRobin, &[2, 1], &names(2));
        let key = [0u8; 32];
        let firsts: Vec<usize> = (0..300)
            .map(|_| p.order(&key, &[true, true], |_| 0.0)[0])
            .collect();
        assert_eq!(firsts.iter().filter(|&&i| i == 0).count(), 200);
        // Every order offers the other member second, for the one retry.
        assert_eq!(p.order(&key, &[true, true], |_| 0.0).len(), 2);
        for _ in 0..10 {
            assert_eq!(p.order(&key, &[false, true], |_| 0.0), vec![1]);
        }
        assert!(p.order(&key, &[false, false], |_| 0.0).is_empty());
    }

    #[test]
    fn least_conn_picks_the_least_loaded_per_weight() {
        let p = Picker::new(Balance::LeastConn, &[1, 1, 1], &names(3));
        let load = [3.0, 0.5, 2.0];
        for _ in 0..5 {
            assert_eq!(p.order(&[0; 32], &[true; 3], |i| load[i]), vec![1, 2, 0]);
        }
        // Ties rotate.
        let firsts: std::collections::HashSet<usize> = (0..6)
            .map(|_| p.order(&[0; 32], &[true; 3], |_| 0.0)[0])
            .collect();
        assert_eq!(firsts.len(), 3);
    }

    #[test]
    fn consistent_sends_a_key_to_one_member_and_moves_only_its_keys_when_it_is_down() {
        let p = Picker::new(Balance::Consistent, &[1, 1, 1], &names(3));
        let mut moved = 0;
        for k in 0..300u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&k.to_le_bytes());
            let first = p.order(&key, &[true; 3], |_| 0.0)[0];
            assert_eq!(p.order(&key, &[true; 3], |_| 0.0)[0], first, "stable");
            let mut up = [true; 3];
            up[2] = false;
            let then = p.order(&key, &up, |_| 0.0)[0];
            if first != 2 {
                assert_eq!(then, first, "a key whose member is up stays");
            } else {
                moved += 1;
            }
        }
        assert!((50..150).contains(&moved), "{moved}");
    }
}
