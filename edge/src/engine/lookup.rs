//! The cache path for GET and HEAD: look up, decide with the policy, serve or fill.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::RANGE;
use http::{Method, Response, StatusCode};

use super::fill::{Fill, Outcome};
use super::fills::{FillKey, FillSlot};
use super::leader_fetch::LeaderFetch;
use super::parts::ColdRange;
use super::purge::PurgeVerdict;
use super::serve::CacheInfo;
use super::{Body, Engine, Handshake, RequestCtx};
use crate::policy::{
    Reuse, RevalidateReason, VariantId, VarySpec, reuse, stale_if_error_allows, variant_id,
};
use crate::protocol::FwdReason;
use crate::protocol::slicing::single_range_start;
use crate::storage::{Head, ObjectMeta, VaryHead};

/// What storage holds for a request.
pub(super) enum Found {
    /// A stored response matching the request's variant.
    Object(Arc<ObjectMeta>),
    /// The URL is stored, but not this variant.
    VaryMiss {
        head: Arc<VaryHead>,
        variant: VariantId,
    },
    /// Nothing stored for the URL.
    UriMiss,
}

/// What a fill is for.
pub(super) struct FillTarget {
    /// Variant the request maps to (the coalescing key's second half).
    pub variant: VariantId,
    /// The URL's current Vary head, so a new variant joins it.
    pub head: Option<Arc<VaryHead>>,
    /// The stored response being revalidated, if any.
    pub stale: Option<Arc<ObjectMeta>>,
    /// Whether `stale` was soft-purged (may be served while the revalidation runs).
    pub soft_purged: bool,
    /// Why the upstream is contacted (RFC 9211 `fwd`).
    pub fwd: FwdReason,
}

impl FillTarget {
    /// A fill of `variant` from nothing stored (no Vary head, no stale response).
    pub(super) fn anew(variant: VariantId, fwd: FwdReason) -> Self {
        FillTarget {
            variant,
            head: None,
            stale: None,
            soft_purged: false,
            fwd,
        }
    }
}

/// A waiter's reading of a fill outcome.
enum Served {
    Done(Response<Body>),
    /// The shared response is not usable by this request: fetch alone.
    Alone,
    /// The response varies and this request is another variant: coalesce with the other
    /// requests for that variant (one fetch per variant, not one per request).
    Variant(Arc<VaryHead>),
}

/// How many times a request may go around lookup → fill before fetching alone.
const MAX_ROUNDS: usize = 3;

impl Engine {
    /// Finds the stored response for a request: head entry first, then the variant.
    pub(super) async fn lookup(&self, ctx: &RequestCtx) -> Found {
        match self.storage.head(&ctx.key).await {
            Head::Missing => Found::UriMiss,
            Head::Object(m) => Found::Object(m),
            Head::Vary(head) => {
                let variant = variant_id(&head.vary, &ctx.headers);
                match self.storage.variant(&ctx.key, &head, &variant).await {
                    Some(m) => Found::Object(m),
                    None => Found::VaryMiss { head, variant },
                }
            }
        }
    }

    /// GET and HEAD. `ctx` comes shared, so that a fill started for it needs no copy of what it
    /// asks upstream (and this future, boxed for every request, holds no copy of it either).
    pub(super) async fn cached(self: &Arc<Self>, ctx: Arc<RequestCtx>) -> Response<Body> {
        // Hits never look at the hit-for-miss marks: only a request about to fill does.
        let mut alone = ctx.directives.no_store;
        // Set when a fill told us the URL's Vary before storage can: the next round goes
        // straight to this request's variant.
        let mut known_vary: Option<Arc<VaryHead>> = None;
        for _ in 0..MAX_ROUNDS {
            let found = match known_vary.take() {
                Some(head) => {
                    let variant = variant_id(&head.vary, &ctx.headers);
                    match self.storage.variant(&ctx.key, &head, &variant).await {
                        Some(m) => Found::Object(m),
                        None => Found::VaryMiss { head, variant },
                    }
                }
                None => self.lookup(&ctx).await,
            };
            let target = match found {
                Found::Object(meta) => match self.reuse_stored(&ctx, meta).await {
                    Ok(resp) => return resp,
                    Err(target) => target,
                },
                Found::VaryMiss { head, variant } => FillTarget {
                    variant,
                    head: Some(head),
                    stale: None,
                    soft_purged: false,
                    fwd: FwdReason::VaryMiss,
                },
                Found::UriMiss => FillTarget {
                    variant: variant_id(&VarySpec::None, &ctx.headers),
                    head: None,
                    stale: None,
                    soft_purged: false,
                    fwd: FwdReason::UriMiss,
                },
            };
            if ctx.directives.only_if_cached {
                //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.7
                //# If a cache receives a request with only-if-cached and has no suitable stored
                //# response, it SHOULD respond with a 504 (Gateway Timeout) status code.
                return self.plain_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "not in cache (only-if-cached)\n",
                    Some(target.fwd),
                );
            }
            // Past here the request goes upstream: not before its handshake is complete,
            // if it came in early data (a stored response was served at once above).
            if !self.after_handshake(&ctx).await {
                return self.too_early();
            }
            if !alone && self.hit_for_miss.is_marked_now(&ctx.key) {
                alone = true;
            }
            // A partly stored object the client wants validated (see `reuse_stored`): its own
            // request goes upstream, the object stays.
            // `pass_range` is boxed where it is called: a rare path, whose future would
            // otherwise make this one (boxed for every request) twice as large.
            if target.fwd == FwdReason::Request && target.stale.is_none() {
                return Box::pin(self.pass_range(Arc::unwrap_or_clone(ctx))).await;
            }
            if ctx.method == Method::GET && ctx.headers.contains_key(RANGE) {
                // Not stored: the client's own range goes upstream, not a whole object. An
                // answer to a request with Authorization is stored only if it says so (RFC
                // 9111 §3.5), which shared media seldom does: its range goes upstream as it
                // came, one request, instead of an aligned part first.
                if alone || ctx.headers.contains_key(http::header::AUTHORIZATION) {
                    return Box::pin(self.pass_range(Arc::unwrap_or_clone(ctx))).await;
                }
                let first = single_range_start(&ctx.headers);
                // A whole fetch of the object in flight serves the range as its bytes arrive,
                // when they are near; a seek far ahead of it fetches its own chunk instead of
                // waiting for the whole fetch to get there.
                let reach = self.cfg.window_chunks.max(1) as u64 * self.cfg.chunk_size as u64;
                let in_flight = self
                    .fills
                    .get(&(ctx.key, target.variant))
                    .is_some_and(|f| first.is_none_or(|at| at <= f.received() + reach));
                if let (Some(first), None, None, false) =
                    (first, &target.stale, &target.head, in_flight)
                {
                    match self.cold_range(&ctx, first).await {
                        ColdRange::Done(resp) => return resp,
                        ColdRange::Private => {
                            return Box::pin(self.pass_range(Arc::unwrap_or_clone(ctx))).await;
                        }
                        ColdRange::Whole => {}
                    }
                }
            }
            match self.fill_and_serve(&ctx, target, alone).await {
                Served::Done(resp) => return resp,
                Served::Alone => alone = true,
                Served::Variant(head) => known_vary = Some(head),
            }
        }
        self.plain_error(
            StatusCode::BAD_GATEWAY,
            "could not obtain a usable response\n",
            Some(FwdReason::Miss),
        )
    }

    /// Decides what to do with a stored response: serve it (`Ok`) or fetch (`Err(target)`).
    async fn reuse_stored(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        meta: Arc<ObjectMeta>,
    ) -> Result<Response<Body>, FillTarget> {
        let verdict = self.purges.verdict(&tiercel_cluster::purge::ObjectRef {
            url: &meta.url,
            host: &meta.host,
            tags: &meta.tags,
            service: &ctx.site.name,
            stored_index: meta.purge_index,
        });
        if verdict == PurgeVerdict::Hard {
            self.storage.remove_object(&meta);
            return Err(FillTarget::anew(meta.variant, FwdReason::Miss));
        }
        let soft = verdict == PurgeVerdict::Soft;
        let force_stale = soft || self.purges.lagging();
        let now = SystemTime::now();
        let decision = reuse(
            &meta.policy,
            &meta.age,
            &ctx.directives,
            now,
            force_stale,
            &ctx.site.policy,
        );
        if meta.present.is_some() && !matches!(decision, Reuse::Fresh { .. }) {
            let forward = match decision {
                // One client's wish for a validated answer is met by forwarding its request;
                // it does not make the object, and everyone's chunks of it, go.
                Reuse::Revalidate(
                    RevalidateReason::RequestNoCache
                    | RevalidateReason::RequestMaxAge
                    | RevalidateReason::RequestMinFresh,
                ) => true,
                // Nor does a purge log this node has not heard from lately: nothing says the
                // object was purged, so while it would be fresh but for the lag, requests are
                // forwarded until the log is back, and the object stays for then (whatever
                // the lag made of the decision: a revalidation, or stale-while-revalidate).
                _ if !soft && self.purges.lagging() => matches!(
                    reuse(
                        &meta.policy,
                        &meta.age,
                        &ctx.directives,
                        now,
                        false,
                        &ctx.site.policy
                    ),
                    Reuse::Fresh { .. }
                ),
                _ => false,
            };
            if forward {
                return Err(FillTarget::anew(meta.variant, FwdReason::Request));
            }
            // An object stored in part is served only while fresh: revalidating it would
            // still leave its missing parts to fetch, so it is filled afresh instead.
            self.storage.remove_object(&meta);
            return Err(FillTarget::anew(meta.variant, FwdReason::Stale));
        }
        let fill_key: FillKey = (ctx.key, meta.variant);
        match decision {
            Reuse::Fresh { .. } | Reuse::StaleAccepted => {}
            Reuse::StaleWhileRevalidate => self.revalidate_in_background(ctx, &meta),
            Reuse::Revalidate(reason) => {
                // A soft-purged object may be served while its revalidation is under way.
                if soft && self.fills.get(&fill_key).is_some() && !ctx.directives.only_if_cached {
                    let info = CacheInfo::hit().detail("soft-purged");
                    if let Ok(resp) = self.serve_object(ctx, &meta, info, now).await {
                        return Ok(resp);
                    }
                }
                let fwd = match reason {
                    RevalidateReason::RequestNoCache
                    | RevalidateReason::RequestMaxAge
                    | RevalidateReason::RequestMinFresh => FwdReason::Request,
                    _ => FwdReason::Stale,
                };
                return Err(FillTarget {
                    variant: meta.variant,
                    head: None,
                    stale: Some(meta),
                    soft_purged: soft,
                    fwd,
                });
            }
        }
        let detail = match decision {
            Reuse::StaleWhileRevalidate => Some("stale-while-revalidate"),
            Reuse::StaleAccepted => Some("max-stale"),
            _ => None,
        };
        let mut info = CacheInfo::hit();
        info.detail = detail;
        match self.serve_object(ctx, &meta, info, now).await {
            Ok(resp) => Ok(resp),
            Err(_evicted) => {
                self.storage.remove_object(&meta);
                Err(FillTarget::anew(meta.variant, FwdReason::Miss))
            }
        }
    }

    /// Starts a revalidation nobody waits for (stale-while-revalidate), unless one is running
    /// or no fill slot is free right now (the stale response is served either way).
    fn revalidate_in_background(self: &Arc<Self>, ctx: &Arc<RequestCtx>, meta: &Arc<ObjectMeta>) {
        let key: FillKey = (ctx.key, meta.variant);
        // A request in early data may be a replay: it gets the stale response, and the
        // next request starts the revalidation.
        if self.fills.get(&key).is_some() || ctx.early.as_ref().is_some_and(Handshake::pending) {
            return;
        }
        let Some(slot) = FillSlot::try_acquire(&self.fill_slots, &ctx.conn_fills) else {
            return;
        };
        let (fill, leader) = self.fills.join_or_start(key, || self.new_fill());
        if leader {
            let target = FillTarget {
                variant: meta.variant,
                head: None,
                stale: Some(meta.clone()),
                soft_purged: false,
                fwd: FwdReason::Stale,
            };
            let mut job = self.fill_job(ctx, &target);
            // Nobody reads a background revalidation: it is not "abandoned" for that.
            job.background = true;
            // Boxed: a fetch's state is kilobytes, and the task would copy it as it starts.
            tokio::spawn(Box::pin(self.clone().run_fill(fill, job, Some(key), slot)));
        }
    }

    pub(super) fn new_fill(&self) -> Arc<Fill> {
        Fill::new(
            self.storage.clone(),
            self.cfg.chunk_size,
            self.cfg.window_chunks,
        )
    }

    /// Joins or starts the fill for the request's variant and serves its outcome.
    async fn fill_and_serve(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        target: FillTarget,
        alone: bool,
    ) -> Served {
        let key: FillKey = (ctx.key, target.variant);
        // Joining a fill in flight costs nothing; starting one takes a slot of the node and of
        // this connection, waiting briefly for one.
        let joined = if alone { None } else { self.fills.get(&key) };
        let (fill, leader, slot) = match joined {
            Some(fill) => (fill, false, None),
            None => {
                let Some(slot) =
                    FillSlot::acquire(&self.fill_slots, &ctx.conn_fills, self.cfg.fill_queue).await
                else {
                    self.stats
                        .fills_refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Served::Done(self.too_many_fills());
                };
                if alone {
                    (self.new_fill(), true, Some(slot))
                } else {
                    let (fill, leader) = self.fills.join_or_start(key, || self.new_fill());
                    (fill, leader, leader.then_some(slot))
                }
            }
        };
        // This client's interest keeps the fill going until it is served (its body reader
        // then holds its own).
        let _interest = fill.interest();
        self.stats
            .misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = if let (true, Some(slot)) = (leader, slot) {
            let job = self.fill_job(ctx, &target);
            // The leader runs the fetch until the outcome is known; what is left of it then
            // (a body still arriving) goes on in a task of its own.
            let mut fetch = LeaderFetch::new(self.clone().run_fill(
                fill.clone(),
                job,
                (!alone).then_some(key),
                slot,
            ));
            fetch.outcome(&fill).await
        } else {
            self.stats
                .collapsed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            fill.outcome().await
        };
        self.serve_outcome(ctx, &fill, outcome, &target, !leader)
            .await
    }

    async fn serve_outcome(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        fill: &Arc<Fill>,
        outcome: Outcome,
        target: &FillTarget,
        collapsed: bool,
    ) -> Served {
        let now = SystemTime::now();
        let info = CacheInfo::forwarded(target.fwd).collapsed(collapsed);
        match outcome {
            Outcome::Stream(head) => {
                if matches!(head.vary, VarySpec::Star) {
                    return Served::Alone;
                }
                if head.variant != variant_id(&head.vary, &ctx.headers) {
                    return Served::Variant(Arc::new(VaryHead {
                        vary: head.vary.clone(),
                        epoch: head.head_epoch,
                        variants: 0,
                    }));
                }
                // Whether it will be stored is known up front only when its length is, or when
                // no size cap applies; otherwise Cache-Status does not claim it.
                let stored =
                    fill.storing() && (self.cfg.max_object_size == 0 || head.length.is_some());
                let mut info = info.fwd_status(head.status.as_u16()).stored(stored);
                if !fill.storing() {
                    // Joined after the body outgrew `cache.max_object_size`.
                    info = info.detail("not-stored");
                }
                Served::Done(self.serve_fill(ctx, fill, &head, info))
            }
            Outcome::Stored(meta) => {
                if meta.variant != variant_id(&meta.vary, &ctx.headers) {
                    return match meta.vary {
                        VarySpec::Fields(_) => Served::Variant(Arc::new(VaryHead {
                            vary: meta.vary.clone(),
                            epoch: meta.head_epoch,
                            variants: 0,
                        })),
                        _ => Served::Alone,
                    };
                }
                let status = if target.stale.is_some() {
                    304
                } else {
                    meta.status.as_u16()
                };
                match self
                    .serve_object(ctx, &meta, info.fwd_status(status).stored(true), now)
                    .await
                {
                    Ok(resp) => Served::Done(resp),
                    Err(_) => Served::Alone,
                }
            }
            Outcome::Private {
                slot,
                server_error,
                detail,
            } => {
                if server_error && let Some(resp) = self.stale_on_error(ctx, target, now).await {
                    return Served::Done(resp);
                }
                // A response that may not be stored may not be shared either: it was fetched with
                // the leader's request (its Authorization, its cookies) and only the leader gets
                // it. Everyone who joined asks the upstream on their own.
                if collapsed {
                    return Served::Alone;
                }
                let taken = slot.lock().take();
                match taken {
                    Some(resp) => Served::Done(self.relay(ctx, resp, info.detail(detail))),
                    None => Served::Alone,
                }
            }
            Outcome::Failed(err) => {
                if let Some(resp) = self.stale_on_error(ctx, target, now).await {
                    return Served::Done(resp);
                }
                tracing::warn!(error = %err, upstream = %ctx.site.upstream.describe(), "upstream failed");
                Served::Done(self.plain_error(err.status(), err.client_text(), Some(target.fwd)))
            }
        }
    }

    /// Serves the stale response of `target` if stale-if-error (or a soft purge) allows it.
    async fn stale_on_error(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        target: &FillTarget,
        now: SystemTime,
    ) -> Option<Response<Body>> {
        let stale = target.stale.as_ref()?;
        if !stale_if_error_allows(
            &stale.policy,
            &stale.age,
            &ctx.directives,
            now,
            target.soft_purged,
        ) {
            return None;
        }
        let info = CacheInfo::hit().detail("stale-if-error");
        self.serve_object(ctx, stale, info, now).await.ok()
    }
}
