//! Objects filled by ranges, one chunk at a time: a client's range request for an object the
//! cache does not hold asks the upstream only for the chunks it covers, and the object is then
//! stored in part (`ObjectMeta::present`); a later request that needs a chunk not yet stored
//! fetches just that chunk, whether it asks for a range or the whole object.
//!
//! ```text
//! GET Range: bytes=900000000-  (cold)  ─▶ upstream Range: bytes=899678208-900726783 (chunk 858)
//!   206 Content-Range: bytes 899678208-900726783/1073741824, ETag "v1"
//!   ─▶ metadata {size 1 GiB, ETag "v1", present {858}} + chunk 858 ─▶ client 206 from storage
//! next chunk needed ─▶ Range: bytes=900726784-901775359, If-Range: "v1"
//!   206, same length and validator ─▶ chunk 859 stored, present {858, 859}
//!   200 / other validator / other length ─▶ the object is dropped, never spliced
//! ```
//!
//! Chunk fetches are coalesced per (key, generation, chunk): fifty clients seeking to the same
//! minute make one upstream request. A cold object's first chunk is keyed with generation 0,
//! so fifty cold seeks to one place make one request too. The pure rules (which ranges, which
//! validators, what combines) are in `protocol::slicing`.
//!
//! When the upstream cannot serve parts to store (it ignores `Range`, the response varies or
//! has no strong validator), the object is fetched whole as before. When the response may not
//! be stored at all (private, no-store, over a cap), the key is marked hit-for-miss and the
//! client's own `Range` and `If-Range` go upstream: a private video still seeks without a full
//! download.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use parking_lot::Mutex;

use super::admission::admit;
use super::fetch::response_tags;
use super::fill::FillHead;
use super::fill_job::FillJob;
use super::fills::FillSlot;
use super::lookup::FillTarget;
use super::serve::CacheInfo;
use super::{Body, Engine, RequestCtx};
use crate::policy::{
    AgeClock, NO_VARY_VARIANT, NotStorable, Storability, StorePlan, VarySpec, ensure_date,
    storability,
};
use crate::protocol::slicing::{
    ContentRange, part_validator, response_content_range, same_representation,
};
use crate::protocol::{FwdReason, strip_hop_by_hop, unsatisfied_range};
use crate::storage::{Chunk, ChunkBuilder, ChunkSet, Head, ObjectMeta, owned_headers};
use crate::upstream::{IdleTimeout, ResponseBody, UpstreamCtx, UpstreamError, empty_body};

/// What fetching a chunk needs from the request that asked for it, owned so the fetch (and a
/// response body that fetches chunks as it goes) can outlive the request's handler.
#[derive(Clone)]
pub(super) struct PartJob {
    engine: Arc<Engine>,
    job: Arc<FillJob>,
    conn_fills: Arc<tokio::sync::Semaphore>,
    /// How long a fetch waits for a fill slot: `timeouts.fill_queue` for a request that has
    /// not been answered yet (it gets a 503 and may retry), [`LAGGING_READER_QUEUE`] for a
    /// reader already part-way through a body (cutting it short would waste what it has).
    queue: std::time::Duration,
}

/// Most chunks an object stored in part may have (1 TiB in 1 MiB chunks; its chunk set is then
/// 128 KiB). The complete length comes from the upstream: a larger one is fetched whole.
pub(super) const MAX_CHUNKS: u64 = 1 << 20;

/// How long a reader part-way through a body waits for a fill slot to fetch its next chunk.
pub(super) const LAGGING_READER_QUEUE: std::time::Duration = std::time::Duration::from_secs(30);

/// A chunk obtained, with the metadata of the object it belongs to.
#[derive(Clone)]
pub(super) struct Part {
    pub meta: Arc<ObjectMeta>,
    pub bytes: Chunk,
}

/// Why a chunk could not be had.
#[derive(Debug, Clone)]
pub(super) enum PartFailure {
    /// The stored object is no longer usable: the upstream's representation changed (another
    /// validator or length, or a 200 to `If-Range`), or a chunk is gone and cannot be fetched
    /// by range. The object is dropped and filled afresh.
    Gone,
    /// The upstream's answer cannot be stored by parts (it ignores `Range`, varies, has no
    /// strong validator, or is an error): the object is fetched whole, as before.
    Whole,
    /// The response may not be stored or shared: the client's own range goes upstream.
    Private,
    /// The range starts past the end of a representation of this many bytes.
    Unsatisfiable(u64),
    /// No fill slot came free in time (`timeouts.fill_queue`, or [`LAGGING_READER_QUEUE`]).
    Busy,
    /// The exchange failed.
    Failed(UpstreamError),
}

type PartFuture = Shared<BoxFuture<'static, Result<Part, PartFailure>>>;

/// (key, generation, chunk index).
type PartKey = ([u8; 32], u64, u32);

/// Chunk fetches in flight, one per (key, generation, chunk).
#[derive(Default)]
pub(super) struct PartTable {
    parts: Mutex<HashMap<PartKey, PartFuture>>,
}

/// How a range request for an object the cache does not hold was answered.
pub(super) enum ColdRange {
    /// Served (or answered with an error).
    Done(Response<Body>),
    /// Fetch the whole object the usual way.
    Whole,
    /// Forward the client's own range: the response is not to be stored.
    Private,
}

/// Whether missing chunks of `meta` may be fetched by range: a 200 stored without Vary, in
/// chunks, with a strong validator to fetch them against.
pub(super) fn fills_by_parts(meta: &ObjectMeta) -> bool {
    meta.inline.is_none()
        && meta.status == StatusCode::OK
        && matches!(meta.vary, VarySpec::None)
        && part_validator(&meta.headers).is_some()
}

/// How a reader of a fill in flight that fell behind its window gets a chunk storage no longer
/// holds (a small memory tier evicts it while the fill races on): by range, against the fill's
/// own validator and length, stored under the fill's generation, and coalesced with every other
/// reader that needs it. Only for fills that could be stored by parts (200, a length, a strong
/// validator, no Vary); any other lagging reader's response is cut short, never stalled and
/// never buffered.
pub(crate) struct Behind {
    job: PartJob,
    meta: Arc<ObjectMeta>,
}

impl Behind {
    /// Chunk `index` of the fill's body, or `None` when it cannot be had.
    pub(super) async fn chunk(&self, index: u32) -> Option<Chunk> {
        match self.job.chunk(&self.meta, index).await {
            Ok(b) => Some(b),
            Err(why) => {
                tracing::warn!(
                    index,
                    ?why,
                    "a reader behind the fill could not get its chunk"
                );
                None
            }
        }
    }
}

impl Behind {
    /// Starts fetching chunk `index` ahead of the reader (see [`PartJob::prefetch`]).
    pub(super) fn prefetch(&self, index: u32) {
        self.job.prefetch(&self.meta, index);
    }
}

impl PartJob {
    /// Starts getting chunk `index` of `meta` in the background, so a reader streaming an
    /// object chunk by chunk finds its next chunk on the way instead of paying an upstream
    /// round trip at every chunk boundary. Coalesced like any chunk fetch; nothing past the
    /// object's end.
    pub(super) fn prefetch(&self, meta: &Arc<ObjectMeta>, index: u32) {
        if u64::from(index) >= meta.size.div_ceil(u64::from(meta.chunk_size.max(1))) {
            return;
        }
        let (job, meta) = (self.clone(), meta.clone());
        tokio::spawn(async move {
            // Whoever reads the chunk reports a failure; this is only a head start.
            let _ = job.chunk(&meta, index).await;
        });
    }

    /// The same job for a reader already part-way through its body.
    pub(super) fn patient(self) -> Self {
        PartJob {
            queue: LAGGING_READER_QUEUE,
            ..self
        }
    }

    /// Chunk `index` of `meta`: from storage, else fetched by range, joining a fetch of it
    /// already in flight.
    pub(super) async fn chunk(
        &self,
        meta: &Arc<ObjectMeta>,
        index: u32,
    ) -> Result<Chunk, PartFailure> {
        if let Some(b) = self.engine.storage.chunk(meta, index).await {
            return Ok(b);
        }
        if !fills_by_parts(meta) {
            return Err(PartFailure::Gone);
        }
        let part = self
            .engine
            .fetch_part(self.clone(), Some(meta.clone()), index)
            .await?;
        Ok(part.bytes)
    }
}

impl Engine {
    /// The chunk-fetching context of a request.
    pub(super) fn part_job(self: &Arc<Self>, ctx: &Arc<RequestCtx>) -> PartJob {
        let target = FillTarget::anew(NO_VARY_VARIANT, FwdReason::Miss);
        PartJob {
            engine: self.clone(),
            job: Arc::new(self.fill_job(ctx, &target)),
            conn_fills: ctx.conn_fills.clone(),
            queue: self.cfg.fill_queue,
        }
    }

    /// The means for a reader of `fill_head`'s fill to fetch what fell out of storage.
    pub(super) fn behind(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        head: &FillHead,
    ) -> Option<Behind> {
        let size = head.length?;
        let meta = ObjectMeta {
            // Never stored: its chunk set only keeps `mark_present` away from the real one.
            present: Some(ChunkSet::new(0)),
            ..head.object_meta(size, u32::try_from(self.cfg.chunk_size).ok()?)
        };
        fills_by_parts(&meta).then(|| Behind {
            job: self.part_job(ctx).patient(),
            meta: Arc::new(meta),
        })
    }

    /// Answers a range request starting at `first_byte` for an object storage does not hold,
    /// by fetching only the chunk that byte is in.
    pub(super) async fn cold_range(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        first_byte: u64,
    ) -> ColdRange {
        let cs = self.cfg.chunk_size.max(1) as u64;
        let Ok(index) = u32::try_from(first_byte / cs) else {
            return ColdRange::Whole;
        };
        self.stats
            .misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let job = self.part_job(ctx);
        match self.fetch_part(job, None, index).await {
            Ok(part) => {
                let info = CacheInfo::forwarded(FwdReason::UriMiss)
                    .fwd_status(206)
                    .stored(true);
                match self
                    .serve_object(ctx, &part.meta, info, SystemTime::now())
                    .await
                {
                    Ok(resp) => ColdRange::Done(resp),
                    Err(_) => ColdRange::Whole,
                }
            }
            // With If-Range the range may be for another version: the whole one then (§13.1.5).
            Err(PartFailure::Unsatisfiable(_)) if ctx.headers.contains_key(IF_RANGE) => {
                ColdRange::Whole
            }
            Err(PartFailure::Unsatisfiable(len)) => ColdRange::Done(self.unsatisfiable(len)),
            Err(PartFailure::Private) => ColdRange::Private,
            Err(PartFailure::Whole | PartFailure::Gone) => ColdRange::Whole,
            Err(PartFailure::Busy) => ColdRange::Done(self.too_many_fills()),
            Err(PartFailure::Failed(e)) => {
                tracing::warn!(error = %e, upstream = %ctx.site.upstream.describe(), "upstream failed");
                ColdRange::Done(self.plain_error(
                    e.status(),
                    e.client_text(),
                    Some(FwdReason::UriMiss),
                ))
            }
        }
    }

    /// Forwards a GET with its own `Range` and `If-Range`: for responses that are not stored.
    pub(super) async fn pass_range(self: &Arc<Self>, ctx: RequestCtx) -> Response<Body> {
        self.pass(ctx, Empty::<Bytes>::new(), FwdReason::Miss).await
    }

    /// 416 for a range past the end of a representation of `len` bytes.
    fn unsatisfiable(&self, len: u64) -> Response<Body> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_RANGE, unsatisfied_range(len));
        h.insert(CONTENT_LENGTH, HeaderValue::from(0));
        self.set_cache_status(
            &mut h,
            &CacheInfo::forwarded(FwdReason::UriMiss).fwd_status(416),
            None,
        );
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
        *resp.headers_mut() = h;
        resp
    }

    /// The fetch of chunk `index` (of `meta`, or of a cold object when `None`), joined if one
    /// is in flight. It runs in its own task: a client that leaves does not cut it short for
    /// the others.
    fn fetch_part(
        self: &Arc<Self>,
        job: PartJob,
        meta: Option<Arc<ObjectMeta>>,
        index: u32,
    ) -> PartFuture {
        let slot_key = (
            job.job.key,
            meta.as_ref().map_or(0, |m| m.generation),
            index,
        );
        let mut table = self.parts.parts.lock();
        if let Some(f) = table.get(&slot_key) {
            self.stats
                .collapsed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return f.clone();
        }
        let engine = self.clone();
        let task = tokio::spawn(async move {
            // Out of the table however the fetch ends (a panic included), so the next request
            // starts afresh instead of joining a dead one.
            struct Leave(Arc<Engine>, PartKey);
            impl Drop for Leave {
                fn drop(&mut self) {
                    self.0.parts.parts.lock().remove(&self.1);
                }
            }
            let _leave = Leave(engine.clone(), slot_key);
            engine.fetch_part_now(&job, meta.as_ref(), index).await
        });
        let fut = async move {
            task.await.unwrap_or_else(|e| {
                Err(PartFailure::Failed(UpstreamError::Protocol(format!(
                    "chunk fetch: {e}"
                ))))
            })
        }
        .boxed()
        .shared();
        table.insert(slot_key, fut.clone());
        fut
    }

    async fn fetch_part_now(
        &self,
        job: &PartJob,
        meta: Option<&Arc<ObjectMeta>>,
        index: u32,
    ) -> Result<Part, PartFailure> {
        // A cold request finds the object stored meanwhile (by a fetch that finished between
        // its lookup and now): the chunk is read, or fetched against that object.
        let adopted;
        let meta = match meta {
            Some(m) => {
                // A fetch of this chunk that ended between the caller's look in storage and
                // this one's registration stored it first: no second request for it.
                if let Some(bytes) = self.storage.chunk(m, index).await {
                    return Ok(Part {
                        meta: m.clone(),
                        bytes,
                    });
                }
                Some(m)
            }
            None => {
                adopted = match self.storage.head(&job.job.key).await {
                    Head::Object(m) if fills_by_parts(&m) => Some(m),
                    _ => None,
                };
                if let Some(m) = &adopted
                    && let Some(bytes) = self.storage.chunk(m, index).await
                {
                    return Ok(Part {
                        meta: m.clone(),
                        bytes,
                    });
                }
                adopted.as_ref()
            }
        };
        let cs = meta.map_or(self.cfg.chunk_size as u64, |m| u64::from(m.chunk_size));
        let cs = cs.max(1);
        let first = u64::from(index) * cs;
        let mut last = first + cs - 1;
        if let Some(m) = meta {
            if first >= m.size {
                return Err(PartFailure::Gone);
            }
            last = last.min(m.size - 1);
        }
        let mut headers = self.fill_request_headers(&job.job);
        let range = HeaderValue::try_from(format!("bytes={first}-{last}"))
            .map_err(|e| PartFailure::Failed(UpstreamError::Request(e.to_string())))?;
        headers.insert(RANGE, range);
        //= https://www.rfc-editor.org/rfc/rfc9111#section-3.4
        //# A cache MUST NOT combine partial content responses unless both the stored response
        //# and the incoming response have strong validators that match
        if let Some(v) = meta.and_then(|m| part_validator(&m.headers)) {
            headers.insert(IF_RANGE, v);
        }
        let Some(_slot) = FillSlot::acquire(&self.fill_slots, &job.conn_fills, job.queue).await
        else {
            self.stats
                .fills_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(PartFailure::Busy);
        };
        let mut req = Request::new(empty_body());
        *req.uri_mut() = job.job.target();
        *req.headers_mut() = headers;
        self.stats
            .upstream_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request_time = SystemTime::now();
        let resp = job
            .job
            .upstream
            .send(req, &UpstreamCtx { key: job.job.key })
            .await
            .map_err(PartFailure::Failed)?;
        let response_time = SystemTime::now();
        let (mut parts, body) = resp.into_parts();
        ensure_date(&mut parts.headers, response_time);
        let status = parts.status;
        let content_range = response_content_range(&parts.headers);
        let (got_first, got_last, total) = match (status, content_range, meta) {
            (
                StatusCode::PARTIAL_CONTENT,
                Some(ContentRange::Bytes {
                    first,
                    last,
                    len: Some(len),
                }),
                _,
            ) => (first, last, len),
            (StatusCode::RANGE_NOT_SATISFIABLE, Some(ContentRange::Unsatisfied { len }), None) => {
                return Err(PartFailure::Unsatisfiable(len));
            }
            // A stored object's part answered with the whole representation (If-Range failed:
            // it changed) or with anything unexpected.
            (
                StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE,
                _,
                Some(_),
            ) => {
                return Err(PartFailure::Gone);
            }
            (s, _, Some(_)) => {
                return Err(PartFailure::Failed(UpstreamError::Protocol(format!(
                    "chunk {index}: upstream answered {s}"
                ))));
            }
            (_, _, None) => return Err(PartFailure::Whole),
        };
        match meta {
            Some(m) => {
                if got_first != first
                    || got_last != last
                    || total != m.size
                    || !same_representation(&m.headers, &parts.headers)
                {
                    tracing::info!(url = %m.url, index, "representation changed mid-fill; dropped");
                    return Err(PartFailure::Gone);
                }
            }
            None => {
                if got_first != first || got_last != (first + cs).min(total) - 1 {
                    return Err(PartFailure::Whole);
                }
            }
        }
        let want = got_last - got_first + 1;
        let idle = job.job.upstream.idle_timeout();
        if let Some(m) = meta {
            let bytes = read_part(body, want, idle).await?;
            self.storage
                .put_chunk(&m.key, &m.variant, m.generation, index, bytes.clone());
            self.mark_present(m, index).await;
            return Ok(Part {
                meta: m.clone(),
                bytes,
            });
        }
        // Whether and where the chunk is stored is decided from the header section, before
        // its body is read: a part that may not be stored costs no more than its head.
        // Another cold fetch of the same representation may have stored its object meanwhile:
        // this chunk joins it rather than starting a rival generation.
        let joined = match self.storage.head(&job.job.key).await {
            Head::Object(m)
                if m.present.is_some()
                    && m.size == total
                    && u64::from(m.chunk_size) == cs
                    && same_representation(&m.headers, &parts.headers) =>
            {
                Some(m)
            }
            _ => None,
        };
        let (meta, fresh) = match joined {
            Some(m) => (m, false),
            None => {
                let m = self.first_part_meta(
                    &job.job,
                    parts.headers,
                    total,
                    cs,
                    index,
                    request_time,
                    response_time,
                )?;
                (m, true)
            }
        };
        let bytes = read_part(body, want, idle).await?;
        self.storage.put_chunk(
            &meta.key,
            &meta.variant,
            meta.generation,
            index,
            bytes.clone(),
        );
        if fresh {
            self.storage.put_object(meta.clone(), 0);
            self.hit_for_miss.clear(&meta.key);
        } else {
            self.mark_present(&meta, index).await;
        }
        Ok(Part { meta, bytes })
    }

    /// Whether a representation of `total` bytes, whose header section is `headers` (a part's,
    /// judged as the 200 it is part of: RFC 9110 §15.3.7), may be stored in parts of `cs`
    /// bytes: how (the plan, its tags and its number of chunks), or why not. A response that
    /// may not be stored marks its key hit-for-miss, as a whole fill's would.
    pub(super) fn part_plan(
        &self,
        job: &FillJob,
        headers: &HeaderMap,
        total: u64,
        cs: u64,
    ) -> Result<(StorePlan, Vec<String>, u32), PartFailure> {
        let plan = match storability(
            &Method::GET,
            job.request_headers(),
            StatusCode::OK,
            headers,
            &job.policy,
        ) {
            Storability::Store(plan) => plan,
            Storability::DoNotStore(reason) => {
                if !matches!(
                    reason,
                    NotStorable::Authorization | NotStorable::RequestNoStore
                ) {
                    self.hit_for_miss.mark(job.key, Instant::now());
                }
                return Err(PartFailure::Private);
            }
        };
        if !matches!(plan.vary, VarySpec::None) || part_validator(headers).is_none() {
            return Err(PartFailure::Whole);
        }
        let max = self.cfg.max_object_size;
        let tags = response_tags(headers);
        if (max > 0 && total > max)
            || admit(&self.cfg.store_caps, &tags, &VarySpec::None, None, 0, true).is_err()
        {
            self.hit_for_miss.mark(job.key, Instant::now());
            return Err(PartFailure::Private);
        }
        let chunks = total.div_ceil(cs.max(1));
        match u32::try_from(chunks) {
            Ok(n) if chunks <= MAX_CHUNKS => Ok((plan, tags, n)),
            _ => Err(PartFailure::Whole),
        }
    }

    /// The metadata of an object whose first stored part just arrived with `headers`, or why
    /// it is not stored by parts.
    #[allow(clippy::too_many_arguments)]
    fn first_part_meta(
        &self,
        job: &FillJob,
        mut headers: HeaderMap,
        total: u64,
        cs: u64,
        index: u32,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Result<Arc<ObjectMeta>, PartFailure> {
        let (plan, tags, chunks) = self.part_plan(job, &headers, total, cs)?;
        let age = AgeClock::new(&headers, request_time, response_time);
        strip_hop_by_hop(&mut headers);
        for name in &plan.strip_fields {
            headers.remove(name.as_str());
        }
        headers.remove(CONTENT_RANGE);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(total));
        let mut present = ChunkSet::new(chunks);
        present.insert(index);
        Ok(Arc::new(ObjectMeta {
            key: job.key,
            variant: NO_VARY_VARIANT,
            vary: VarySpec::None,
            head_epoch: 0,
            status: StatusCode::OK,
            headers: owned_headers(&headers),
            age,
            policy: plan.policy,
            url: job.url(),
            host: job.host(),
            tags,
            purge_index: job.purge_index,
            size: total,
            chunk_size: u32::try_from(cs).unwrap_or(u32::MAX),
            // Never 0: a cold object's first chunk is coalesced under generation 0.
            generation: rand::random::<u64>() | 1,
            inline: None,
            present: (!present.is_full()).then_some(present),
        }))
    }

    /// Records chunk `index` in the stored metadata's set, if that is still `meta`'s object;
    /// the set full, the object is complete. The set is a hint (a missing chunk is fetched
    /// whatever it says), so a lost race costs nothing but a later refetch.
    async fn mark_present(&self, meta: &ObjectMeta, index: u32) {
        // One update at a time per object (its set is read, changed and written back); other
        // objects' updates go on in parallel, each holding its finished part meanwhile.
        let lock = &self.present_locks[usize::from(meta.key[0]) % self.present_locks.len()];
        let _one_at_a_time = lock.lock().await;
        let Head::Object(current) = self.storage.head(&meta.key).await else {
            return;
        };
        if current.generation != meta.generation {
            return;
        }
        let Some(present) = &current.present else {
            return;
        };
        if present.contains(index) {
            return;
        }
        let mut present = present.clone();
        present.insert(index);
        let updated = ObjectMeta {
            present: (!present.is_full()).then_some(present),
            ..ObjectMeta::clone(&current)
        };
        self.storage.put_object(Arc::new(updated), 0);
    }
}

/// Reads a part's body: exactly `want` bytes, copied into the chunk's segments as they come
/// (never a slice of the connection's read buffer), each piece within the upstream idle
/// timeout.
async fn read_part(
    body: ResponseBody,
    want: u64,
    idle: std::time::Duration,
) -> Result<Chunk, PartFailure> {
    let failed = |msg: &str| PartFailure::Failed(UpstreamError::Protocol(msg.to_owned()));
    let want = usize::try_from(want).map_err(|_| failed("part too large"))?;
    let mut body = std::pin::pin!(IdleTimeout::new(body, idle));
    let mut buf = ChunkBuilder::with_len(want);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(PartFailure::Failed)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > want {
                return Err(failed("part longer than its Content-Range"));
            }
            buf.extend(&data);
        }
    }
    if buf.len() != want {
        return Err(failed("part shorter than its Content-Range"));
    }
    Ok(buf.finish())
}
