//! Turning a stored response or a fill into the client's response: preconditions (304/412),
//! ranges (206/416), HEAD, and the header fields a cache adds (Age, Via, Cache-Status).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};

use super::fill::{Fill, FillHead, FillReader};
use super::parts::{Behind, PartFailure, PartJob, fills_by_parts};
use super::{Body, Engine, RequestCtx};
use crate::policy::ttl_seconds;
use crate::protocol::{
    CacheStatus, ClientContext, FwdReason, Precondition, RangeOutcome, add_forwarding_headers,
    append_cache_status_lines, connection_named, content_range, evaluate_preconditions,
    evaluate_range, is_hop_by_hop, not_modified_headers, propagate_trace, unsatisfied_range,
};
use crate::storage::{Chunk, ObjectMeta};

/// `Cache-Status` (RFC 9211).
pub(super) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// What this cache did for a request, for its `Cache-Status` member.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CacheInfo {
    pub hit: bool,
    pub fwd: Option<FwdReason>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub detail: Option<&'static str>,
}

impl CacheInfo {
    pub fn hit() -> Self {
        CacheInfo {
            hit: true,
            ..Default::default()
        }
    }
    pub fn forwarded(fwd: FwdReason) -> Self {
        CacheInfo {
            fwd: Some(fwd),
            ..Default::default()
        }
    }
    pub fn fwd_status(mut self, s: u16) -> Self {
        self.fwd_status = Some(s);
        self
    }
    pub fn stored(mut self, b: bool) -> Self {
        self.stored = b;
        self
    }
    pub fn collapsed(mut self, b: bool) -> Self {
        self.collapsed = b;
        self
    }
    pub fn detail(mut self, d: &'static str) -> Self {
        self.detail = Some(d);
        self
    }
}

/// A stored object's first chunk was gone: the caller treats the object as a miss.
#[derive(Debug)]
pub(super) struct Evicted;

/// The parts of a representation the response builder needs, from storage or from a fill.
struct Representation<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
    age_secs: u64,
    ttl: Option<i64>,
    size: Option<u64>,
    /// `no-cache="…"` fields to withhold: served without revalidation.
    withhold: &'a [String],
}

/// Where the body bytes come from.
enum BodySource {
    /// A stored object, its first needed chunk already read, and for an object stored in part
    /// the means to fetch the chunks it lacks.
    Object(Arc<ObjectMeta>, Option<Chunk>, Option<PartJob>),
    Fill(Arc<Fill>, Arc<FillHead>, Option<Behind>),
}

impl Engine {
    /// The header section sent upstream for a client request: hop-by-hop fields removed,
    /// forwarding fields, CDN-Loop and traceparent added, and Host set to the canonical
    /// authority, the one the key holds (for an absolute-form target that is the target's,
    /// not the client's Host line: RFC 9112 §3.2.2). `drop` lists the client's fields that
    /// must not reach the upstream (a shared fill's: `fill_job::CLIENT_ONLY`). `trace_random`
    /// gives the ids of this hop's span (and of a new trace when the client sent none).
    pub(super) fn upstream_request_headers(
        &self,
        ctx: &RequestCtx,
        drop: Option<&[HeaderName]>,
        trace_random: [u8; 24],
    ) -> HeaderMap {
        // Built from the fields that may go rather than cloned and then thinned: a shared
        // fill drops some thirty names, each a lookup in a map of a handful.
        let drop = drop.unwrap_or_default();
        let mut h = HeaderMap::with_capacity(ctx.headers.keys_len() + 6);
        // Hop-by-hop fields (RFC 9110 §7.6.1) are left behind here too.
        let named = connection_named(&ctx.headers);
        for (name, value) in &ctx.headers {
            if name != http::header::EXPECT
                && !is_hop_by_hop(name)
                && !drop.contains(name)
                && !named.contains(name)
            {
                h.append(name, value.clone());
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc9112#section-3.2.2
        //# When a proxy receives a request with an absolute-form of request-target, the proxy
        //# MUST ignore the received Host header field (if any) and instead replace it with the
        //# host information of the request-target.
        match HeaderValue::from_str(&ctx.url.host) {
            Ok(v) => {
                h.insert(HOST, v);
            }
            Err(_) => {
                h.remove(HOST);
            }
        }
        let client = ClientContext {
            peer: ctx.peer.ip(),
            scheme: ctx.scheme,
            version: ctx.version,
        };
        add_forwarding_headers(&mut h, &client, &ctx.authority, &self.hop);
        self.hop.add_cdn_loop(&mut h);
        propagate_trace(&mut h, trace_random);
        if let Some(rules) = ctx.site.request_rules() {
            rules.apply(&mut h);
        }
        h
    }

    /// Serves a stored response. Fails only when its first needed chunk has been evicted (and,
    /// for an object stored in part, could not be fetched by range either).
    pub(super) async fn serve_object(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        meta: &Arc<ObjectMeta>,
        info: CacheInfo,
        now: SystemTime,
    ) -> Result<Response<Body>, Evicted> {
        // An object stored in part may fetch its missing chunks while it is served: not on a
        // request that may be a replay (0-RTT) until its handshake is complete.
        if meta.present.is_some() && !self.after_handshake(ctx).await {
            return Ok(self.too_early());
        }
        let age = meta.age.current_age(now).as_secs();
        let withhold: &[String] = if info.hit {
            &meta.policy.no_cache_fields
        } else {
            &[]
        };
        let rep = Representation {
            status: meta.status,
            headers: &meta.headers,
            age_secs: age,
            ttl: Some(ttl_seconds(&meta.policy, &meta.age, now)),
            size: Some(meta.size),
            withhold,
        };
        // An object stored in part fetches the chunks it lacks as the body needs them.
        // Never for only-if-cached: such a request is not forwarded (RFC 9111 §5.2.1.7).
        let parts = (meta.present.is_some()
            && fills_by_parts(meta)
            && !ctx.is_head()
            && !ctx.directives.only_if_cached)
            .then(|| self.part_job(ctx));
        // Fetch the first chunk the response needs before committing to a 200: an evicted
        // object is then a clean miss instead of a truncated response.
        // Only when a body will be sent: a 304, 412 or 416 needs no chunk (and for an object
        // stored in part must not make the edge fetch one).
        // Worked out here only for a body in chunks (an inline body needs no read, and the
        // hot path of small hits does not evaluate the request's conditionals twice).
        let chunked = meta.inline.is_none() && meta.size > 0;
        let (plan, sends_body) = if chunked || meta.present.is_some() {
            let plan = self.planned_range(ctx, &rep);
            let sends_body = !ctx.is_head()
                && plan != Some(RangeOutcome::Unsatisfiable)
                && evaluate_preconditions(&ctx.method, &ctx.headers, rep.status, rep.headers)
                    == Precondition::Proceed;
            (plan, sends_body)
        } else {
            (None, false)
        };
        let first = if chunked && sends_body {
            let start = match &plan {
                Some(RangeOutcome::Partial { start, .. }) => *start,
                Some(RangeOutcome::Multi(ranges)) => ranges.first().map_or(0, |r| r.0),
                _ => 0,
            };
            let index = (start / u64::from(meta.chunk_size.max(1))) as u32;
            let chunk = match &parts {
                Some(job) => job.chunk(meta, index).await,
                None => self
                    .storage
                    .chunk(meta, index)
                    .await
                    .ok_or(PartFailure::Gone),
            };
            match chunk {
                Ok(c) => Some(c),
                Err(PartFailure::Busy) => return Ok(self.too_many_fills()),
                Err(PartFailure::Failed(e)) => {
                    return Ok(self.plain_error(
                        e.status(),
                        e.client_text(),
                        Some(FwdReason::Miss),
                    ));
                }
                Err(_) => return Err(Evicted),
            }
        } else {
            None
        };
        // An object stored in part whose chunk set lacks some of what this answer needs is
        // completed from upstream as the body goes: not a hit (RFC 9211 `fwd=partial`).
        let info = match &meta.present {
            Some(present) if info.hit && sends_body => {
                let cs = u64::from(meta.chunk_size.max(1));
                let spans: Vec<(u64, u64)> = match &plan {
                    Some(RangeOutcome::Partial { start, end }) => vec![(*start, *end)],
                    Some(RangeOutcome::Multi(ranges)) => ranges.clone(),
                    _ => vec![(0, meta.size.saturating_sub(1))],
                };
                let complete = spans.iter().all(|&(a, b)| {
                    (a / cs..=b / cs).all(|i| u32::try_from(i).is_ok_and(|i| present.contains(i)))
                });
                if complete {
                    info
                } else {
                    CacheInfo::forwarded(FwdReason::Partial)
                }
            }
            _ => info,
        };
        self.stats
            .hits
            .fetch_add(u64::from(info.hit), std::sync::atomic::Ordering::Relaxed);
        let mut resp = self.respond(
            ctx,
            &rep,
            info,
            // Past its first chunk, a response waits for fill slots rather than stop short.
            BodySource::Object(meta.clone(), first, parts.map(PartJob::patient)),
        );
        // Only the compressor reads it: an extension map is an allocation per response.
        if ctx.site.compresses() {
            resp.extensions_mut().insert(super::compress::StoredBody {
                key: meta.key,
                variant: meta.variant,
                generation: meta.generation,
            });
        }
        Ok(resp)
    }

    /// Serves a response still arriving from upstream.
    pub(super) fn serve_fill(
        self: &Arc<Self>,
        ctx: &Arc<RequestCtx>,
        fill: &Arc<Fill>,
        head: &Arc<FillHead>,
        info: CacheInfo,
    ) -> Response<Body> {
        let now = SystemTime::now();
        // Only a response the fill stores can be completed by range from what it stored.
        let behind = (!ctx.is_head() && fill.storing())
            .then(|| self.behind(ctx, head))
            .flatten();
        // The client that started the fill also gets the fields withheld from storage.
        let with_private;
        let headers = if info.collapsed || head.withheld.is_empty() {
            &*head.headers
        } else {
            let mut h = HeaderMap::clone(&head.headers);
            for (name, value) in &head.withheld {
                h.append(name.clone(), value.clone());
            }
            with_private = h;
            &with_private
        };
        let rep = Representation {
            status: head.status,
            headers,
            age_secs: head.age.current_age(now).as_secs(),
            ttl: Some(ttl_seconds(&head.policy, &head.age, now)),
            size: head.length,
            withhold: &[],
        };
        let storing = fill.storing();
        let mut resp = self.respond(
            ctx,
            &rep,
            info,
            BodySource::Fill(fill.clone(), head.clone(), behind),
        );
        if storing && ctx.site.compresses() {
            resp.extensions_mut().insert(super::compress::StoredBody {
                key: head.key,
                variant: head.variant,
                generation: head.generation,
            });
        }
        resp
    }

    /// A short plain-text error answer from this cache itself.
    pub(super) fn plain_error(
        &self,
        status: StatusCode,
        text: &'static str,
        fwd: Option<FwdReason>,
    ) -> Response<Body> {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        h.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
        let mut info = CacheInfo {
            fwd,
            ..Default::default()
        };
        if status == StatusCode::GATEWAY_TIMEOUT || status == StatusCode::BAD_GATEWAY {
            info.detail = Some("upstream-error");
        }
        self.set_cache_status(&mut h, &info, None);
        let mut resp = Response::new(Body::text(text));
        *resp.status_mut() = status;
        *resp.headers_mut() = h;
        resp
    }

    /// 503 when no fill slot freed up within `timeouts.fill_queue`: the node (or this
    /// connection) already fetches as much as it may.
    //= https://www.rfc-editor.org/rfc/rfc9110#section-15.6.4
    //# The server MAY send a Retry-After header field (Section 10.2.3) to suggest an
    //# appropriate amount of time for the client to wait before retrying the request.
    pub(super) fn too_many_fills(&self) -> Response<Body> {
        let mut resp = self.plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many fetches in flight; retry\n",
            None,
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }

    /// The answer to `OPTIONS` with `Max-Forwards: 0` (RFC 9110 §9.3.7): what this cache does.
    pub(super) fn options_here(&self) -> Response<Body> {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE"),
        );
        h.insert(CONTENT_LENGTH, HeaderValue::from(0));
        self.set_cache_status(&mut h, &CacheInfo::default().detail("max-forwards"), None);
        build(StatusCode::OK, h, Body::Empty)
    }

    /// Appends our `Cache-Status` member to whatever the upstream said.
    pub(super) fn set_cache_status(&self, h: &mut HeaderMap, info: &CacheInfo, ttl: Option<i64>) {
        let ours = CacheStatus {
            cache: &self.cfg.name,
            hit: info.hit,
            fwd: info.fwd,
            fwd_status: info.fwd_status,
            ttl,
            stored: info.stored,
            collapsed: info.collapsed,
            key: None,
            detail: info.detail,
        };
        let v = append_cache_status_lines(h.get_all(&CACHE_STATUS), &ours);
        h.insert(CACHE_STATUS.clone(), v);
    }

    /// Removes what a stored or upstream header section must not show clients.
    pub(super) fn strip_for_client(&self, h: &mut HeaderMap) {
        // A response's few names compared against the hidden ones first: most have none of
        // them, and a removal hashes its name whether or not the field is there.
        if !h.keys().any(|k| self.client_hidden.contains(k)) {
            return;
        }
        for name in &self.client_hidden {
            h.remove(name);
        }
    }

    fn planned_range(&self, ctx: &RequestCtx, rep: &Representation<'_>) -> Option<RangeOutcome> {
        let len = rep.size?;
        if rep.status != StatusCode::OK {
            return None;
        }
        Some(evaluate_range(&ctx.method, &ctx.headers, rep.headers, len))
    }

    fn respond(
        &self,
        ctx: &RequestCtx,
        rep: &Representation<'_>,
        info: CacheInfo,
        source: BodySource,
    ) -> Response<Body> {
        match evaluate_preconditions(&ctx.method, &ctx.headers, rep.status, rep.headers) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut h = not_modified_headers(rep.headers);
                self.decorate(&mut h, rep, &info);
                return build(StatusCode::NOT_MODIFIED, h, Body::Empty);
            }
            Precondition::PreconditionFailed => {
                let mut h = HeaderMap::new();
                self.decorate(&mut h, rep, &info);
                h.insert(CONTENT_LENGTH, HeaderValue::from(0));
                return build(StatusCode::PRECONDITION_FAILED, h, Body::Empty);
            }
        }
        let mut h = rep.headers.clone();
        for f in rep.withhold {
            h.remove(f.as_str());
        }
        self.strip_for_client(&mut h);
        self.decorate(&mut h, rep, &info);
        let plan = self.planned_range(ctx, rep);
        // Several ranges of a stored object are a multipart answer; of a body still arriving,
        // the whole of it is sent (a 200, RFC 9110 §14.2).
        let source = match (&plan, source) {
            (Some(RangeOutcome::Multi(ranges)), BodySource::Object(meta, first, parts)) => {
                return self.multipart(h, meta, first, parts, ranges, ctx.is_head());
            }
            (_, source) => source,
        };
        let (status, start, end) = match plan {
            Some(RangeOutcome::Partial { start, end }) => {
                let len = rep.size.unwrap_or(0);
                h.insert(CONTENT_RANGE, content_range(start, end, len));
                (StatusCode::PARTIAL_CONTENT, start, Some(end + 1))
            }
            Some(RangeOutcome::Unsatisfiable) => {
                let len = rep.size.unwrap_or(0);
                h.insert(CONTENT_RANGE, unsatisfied_range(len));
                h.insert(CONTENT_LENGTH, HeaderValue::from(0));
                h.remove(CONTENT_TYPE);
                return build(StatusCode::RANGE_NOT_SATISFIABLE, h, Body::Empty);
            }
            _ => (rep.status, 0, rep.size),
        };
        let body_len = end.map(|e| e - start);
        match body_len {
            Some(n) => crate::protocol::set_decimal(&mut h, CONTENT_LENGTH, n),
            None => {
                h.remove(CONTENT_LENGTH);
            }
        }
        if ctx.is_head() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return build(status, h, Body::Empty);
        }
        let body = match source {
            BodySource::Object(meta, first, parts) => {
                self.object_body(meta, first, parts, start, end.unwrap_or(0))
            }
            // A body already whole (a small miss, fetched while its leader waited for the
            // head) goes out in one piece, without a reader and its stream; never when it is
            // shorter than what the response announces (the first slice of a larger object).
            BodySource::Fill(fill, _, _)
                if let Some(whole) = fill.whole_body()
                    && end.is_none_or(|e| e <= whole.len() as u64) =>
            {
                Body::Full(Some(inline_slice(&whole, start, end.unwrap_or(u64::MAX))))
            }
            BodySource::Fill(fill, head, behind) => {
                let reader = FillReader::new(fill, head, start, end, behind);
                let stream = futures_util::stream::unfold(reader, |mut r| async move {
                    r.next().await.map(|item| (item, r))
                });
                Body::from_stream(stream, body_len)
            }
        };
        build(status, h, body)
    }

    /// Age, Via and Cache-Status.
    fn decorate(&self, h: &mut HeaderMap, rep: &Representation<'_>, info: &CacheInfo) {
        h.insert(AGE, crate::protocol::decimal_value(rep.age_secs));
        self.hop.add_via(h, Version::HTTP_11);
        self.set_cache_status(h, info, if info.hit { rep.ttl } else { None });
    }

    fn object_body(
        &self,
        meta: Arc<ObjectMeta>,
        first: Option<Chunk>,
        parts: Option<PartJob>,
        start: u64,
        end: u64,
    ) -> Body {
        let len = end.saturating_sub(start);
        if let Some(inline) = &meta.inline {
            return Body::Full(Some(inline_slice(inline, start, end)));
        }
        Body::from_stream(
            self.object_stream(meta, first, parts, start, end),
            Some(len),
        )
    }

    /// Bytes `start..end` of a stored object, chunk by chunk (`first` is the chunk `start` is
    /// in, when already read).
    fn object_stream(
        &self,
        meta: Arc<ObjectMeta>,
        first: Option<Chunk>,
        parts: Option<PartJob>,
        start: u64,
        end: u64,
    ) -> impl futures_util::Stream<Item = Result<Bytes, crate::upstream::BoxError>> + Send + 'static
    {
        let storage = self.storage.clone();
        let cs = u64::from(meta.chunk_size.max(1));
        // The chunk being walked, held weakly (see `storage::Chunk`); of the first chunk, read
        // already, only the first frame is kept strongly: a body that waits long for its first
        // poll (an h2 stream without window) holds a segment, not the chunk.
        let held = first.as_ref().map(|c| c.downgrade((start / cs) as u32));
        let first = first.map(|c| {
            let n = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
            c.frame((start % cs) as usize, n)
        });
        let state = (meta, first, held, start, (storage, parts));
        futures_util::stream::unfold(state, move |(meta, first, held, pos, src)| async move {
            if pos >= end {
                return None;
            }
            if let Some(inline) = &meta.inline {
                let piece = inline_slice(inline, pos, end);
                return Some((Ok(piece), (meta, None, None, end, src)));
            }
            let index = (pos / cs) as u32;
            let (storage, parts) = &src;
            // The chunk after this one, if the answer needs it and the object lacks it, is
            // fetched while this one is sent (asked once, as this one starts).
            let next = index.saturating_add(1);
            if let Some(job) = parts
                && (pos % cs == 0 || pos == start)
                && u64::from(next) * cs < end
                && !meta.present.as_ref().is_some_and(|p| p.contains(next))
            {
                job.prefetch(&meta, next);
            }
            if let Some(piece) = first {
                let next = if piece.is_empty() {
                    end
                } else {
                    pos + piece.len() as u64
                };
                return Some((Ok(piece), (meta, None, held, next, src)));
            }
            let still = held.and_then(|w| w.upgrade(index));
            let chunk = match (still, parts) {
                (Some(c), _) => Ok(c),
                (None, Some(job)) => job.chunk(&meta, index).await,
                (None, None) => storage.chunk(&meta, index).await.ok_or(PartFailure::Gone),
            };
            let chunk = match chunk {
                Ok(c) => c,
                Err(why) => {
                    // Never a gap and never another representation's bytes: the response is
                    // cut short, and a stored object that cannot be completed goes.
                    tracing::warn!(index, ?why, "chunk unavailable mid-response; aborting it");
                    if matches!(why, PartFailure::Gone) {
                        storage.remove_object(&meta);
                    }
                    let err: crate::upstream::BoxError = "stored chunk unavailable".into();
                    return Some((Err(err), (meta, None, None, end, src)));
                }
            };
            let offset = (pos % cs) as usize;
            let n = ((end - pos) as usize).min(chunk.len().saturating_sub(offset));
            // One segment at most, and the chunk is only held weakly for the next piece: a
            // client that stops reading holds a segment, not a chunk. See `storage::Chunk`.
            let piece = chunk.frame(offset, n);
            let n = piece.len();
            let next = pos + n as u64;
            let next = if n == 0 { end } else { next };
            let held = Some(chunk.downgrade(index));
            Some((Ok(piece), (meta, None, held, next, src)))
        })
    }

    /// A 206 `multipart/byteranges` (RFC 9110 §14.6) of `ranges` of a stored object: each part
    /// with the representation's Content-Type and its own Content-Range.
    fn multipart(
        &self,
        mut h: HeaderMap,
        meta: Arc<ObjectMeta>,
        first: Option<Chunk>,
        parts: Option<PartJob>,
        ranges: &[(u64, u64)],
        head_only: bool,
    ) -> Response<Body> {
        let boundary = format!("{:016x}", rand::random::<u64>());
        let type_line = h
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|t| format!("Content-Type: {t}\r\n"))
            .unwrap_or_default();
        let heads: Vec<Bytes> = ranges
            .iter()
            .map(|(a, b)| {
                Bytes::from(format!(
                    "\r\n--{boundary}\r\n{type_line}Content-Range: bytes {a}-{b}/{}\r\n\r\n",
                    meta.size
                ))
            })
            .collect();
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        let len = heads.iter().map(|b| b.len() as u64).sum::<u64>()
            + ranges.iter().map(|(a, b)| b - a + 1).sum::<u64>()
            + tail.len() as u64;
        h.remove(CONTENT_RANGE);
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::try_from(format!("multipart/byteranges; boundary={boundary}"))
                .unwrap_or_else(|_| HeaderValue::from_static("multipart/byteranges")),
        );
        if head_only {
            return build(StatusCode::PARTIAL_CONTENT, h, Body::Empty);
        }
        use futures_util::StreamExt;
        let mut first = first;
        let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
        for (head, (a, b)) in heads.into_iter().zip(ranges) {
            pieces.push(futures_util::stream::once(async move { Ok(head) }).boxed());
            let body = self.object_stream(meta.clone(), first.take(), parts.clone(), *a, b + 1);
            pieces.push(body.boxed());
        }
        pieces.push(futures_util::stream::once(async move { Ok(tail) }).boxed());
        let stream = futures_util::stream::iter(pieces).flatten();
        build(
            StatusCode::PARTIAL_CONTENT,
            h,
            Body::from_stream(stream, Some(len)),
        )
    }
}

/// Bytes `start..end` of an inline body, clamped to it.
fn inline_slice(inline: &Bytes, start: u64, end: u64) -> Bytes {
    let (s, e) = (start as usize, (end as usize).min(inline.len()));
    inline.slice(s.min(e)..e)
}

fn build(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// The fields a client never gets from this node: targeted cache fields (RFC 9213 §2.1: they
/// are for this CDN's caches) unless configured to forward them, and surrogate keys when
/// configured to strip them.
//= https://www.rfc-editor.org/rfc/rfc9213#section-2.1
// Targeted fields are for this CDN's caches; the edge does not pass them on.
pub(super) fn client_hidden(cfg: &super::EngineConfig) -> Vec<HeaderName> {
    let mut hidden = Vec::new();
    if !cfg.forward_targeted_fields {
        hidden.extend(cfg.policy.targeted_fields.iter().cloned());
    }
    if cfg.strip_surrogate_headers {
        hidden.push(HeaderName::from_static("surrogate-key"));
        hidden.push(HeaderName::from_static("cache-tag"));
    }
    hidden
}
