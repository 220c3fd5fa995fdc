//! The fetch behind a fill: one upstream exchange, its classification, and the body
//! written into the fill (and storage) as it arrives.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use parking_lot::Mutex;

use super::Engine;
use super::admission::{OverCap, admit, variants_after};
use super::fill::{Fill, FillError, FillHead, FinishedBody, Outcome};
use super::fill_job::FillJob;
use super::fills::{FillKey, FillSlot};
use super::parts::{MAX_CHUNKS, fills_by_parts};
use crate::policy::{
    AgeClock, FreshenOutcome, NotStorable, Storability, StorePlan, StoredPolicy, VarySpec,
    conditional_request_headers, ensure_date, freshen, has_validator, storability, variant_id,
};
use crate::protocol::slicing::{ContentRange, part_validator, response_content_range};
use crate::protocol::strip_hop_by_hop;
use crate::storage::{ChunkSet, Head, ObjectMeta, headers_weight, owned_headers};
use crate::upstream::{IdleTimeout, ResponseBody, UpstreamCtx};

/// What the answer to a sliced first exchange (`Range: bytes=0-(slice - 1)`) turned out to be.
enum Sliced {
    /// Not a range answer (a 200 from an upstream that ignores Range, a 404, a 5xx), or a 206
    /// that holds the whole representation, rewritten as the 200 it equals: handled as usual.
    AsUsual,
    /// The first `.0` bytes of a larger representation that may be stored by parts: streamed
    /// as the start of the 200, the rest fetched chunk by chunk.
    Segment(u64),
    /// A part that cannot be used (not to be stored by parts, or not the range asked for):
    /// the object is asked for again, whole.
    Refetch,
}

/// Body bytes a fill takes in before it yields once (see `stream_into`).
const YIELD_AFTER: u64 = 1024 * 1024;

/// The longest a body that will not be stored keeps its first chunks for readers behind.
const READERS_LINGER: std::time::Duration = std::time::Duration::from_secs(600);

/// Cache-Status detail of a response the policy does not let the cache store.
const NOT_STORED: &str = "not-stored";

/// 500, 502, 503 and 504 are "errors" for stale-if-error (RFC 5861 §4).
fn is_server_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// Surrogate keys of a response: `Surrogate-Key` is space-separated, `Cache-Tag` comma-separated.
pub(super) fn response_tags(headers: &HeaderMap) -> Vec<String> {
    // Named by constants: a `&str` name is parsed into a `HeaderName` on every lookup.
    static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
    static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
    let mut tags = Vec::new();
    for v in headers.get_all(&SURROGATE_KEY) {
        if let Ok(s) = v.to_str() {
            tags.extend(s.split_ascii_whitespace().map(str::to_string));
        }
    }
    for v in headers.get_all(&CACHE_TAG) {
        if let Ok(s) = v.to_str() {
            tags.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        }
    }
    tags.sort();
    tags.dedup();
    tags
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Engine {
    /// Classifies the answer to a sliced first exchange that asked for bytes `0..asked`,
    /// rewriting a part that holds the whole representation, or the first slice of one to be
    /// stored by parts, into the 200 it is (or starts).
    fn sliced_answer(
        &self,
        job: &FillJob,
        parts: &mut http::response::Parts,
        asked: u64,
    ) -> Sliced {
        let range = response_content_range(&parts.headers);
        let (last, total) = match (parts.status, range) {
            (
                StatusCode::PARTIAL_CONTENT,
                Some(ContentRange::Bytes {
                    first: 0,
                    last,
                    len: Some(total),
                }),
            ) if last < total => (last, total),
            (StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE, _) => {
                return Sliced::Refetch;
            }
            _ => return Sliced::AsUsual,
        };
        let whole = last + 1 == total;
        let cs = self.cfg.chunk_size.max(1) as u64;
        if !whole {
            if last + 1 != asked {
                return Sliced::Refetch;
            }
            // Judged on the header section as it will be stored (hop-by-hop and `private="…"`
            // fields gone): the rest of the object is fetched against that validator.
            let Ok((plan, _, _)) = self.part_plan(job, &parts.headers, total, cs) else {
                return Sliced::Refetch;
            };
            let mut stored = parts.headers.clone();
            strip_hop_by_hop(&mut stored);
            for name in &plan.strip_fields {
                stored.remove(name.as_str());
            }
            if part_validator(&stored).is_none() {
                return Sliced::Refetch;
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc9111#section-3.4
        //# If the new response is a 206 (Partial Content) and both the stored and the new
        //# response have strong validators that match, then the cache MAY combine them
        // A part holding every byte is the representation itself: stored and served as a 200.
        parts.status = StatusCode::OK;
        parts.headers.remove(CONTENT_RANGE);
        crate::protocol::set_decimal(&mut parts.headers, CONTENT_LENGTH, total);
        if whole {
            Sliced::AsUsual
        } else {
            Sliced::Segment(last + 1)
        }
    }

    /// Runs one fill to completion: the upstream exchange finishes and the object is stored
    /// (or not) before the fill leaves the coalescing table, whatever its readers do, except
    /// that a fill nobody reads any more stops once it outgrows `cache.abandoned_fill_max`.
    /// `slot` is held until then.
    pub(super) fn run_fill(
        self: Arc<Self>,
        fill: Arc<Fill>,
        mut job: FillJob,
        table_key: Option<FillKey>,
        slot: FillSlot,
    ) -> impl Future<Output = ()> + Send + 'static {
        job.table_key = table_key;
        // A fill made alone (hit-for-miss) is not stored: one request for all of it.
        if table_key.is_none() {
            job.slice = None;
        }
        // Whatever happens to this fetch (even a panic, or being dropped before it ran), the
        // fill leaves the table and resolves for its readers: nobody waits forever, and the
        // next request starts afresh.
        struct Abandon(Arc<Engine>, Arc<Fill>, Option<FillKey>);
        impl Drop for Abandon {
            fn drop(&mut self) {
                if let Some(key) = &self.2 {
                    self.0.fills.finish(key, &self.1);
                }
                self.1.abandon();
            }
        }
        let guard = Abandon(self.clone(), fill.clone(), table_key);
        // Prepared before the future is made: it holds the job once, not also the arguments
        // it was made from (it is boxed, moved, for every fill).
        async move {
            let _slot = slot;
            let _guard = guard;
            self.fetch_into(&fill, &job).await;
        }
    }

    /// Deletes chunks `0..written` of a body that will not be stored, once no reader needs
    /// them: a reader that lags behind the fill still reads its first chunks from storage,
    /// and would find them gone (a body cut short) if they were deleted as the fill ends.
    fn remove_after_readers(&self, fill: &Arc<Fill>, head: &FillHead, written: u32) {
        let storage = self.storage.clone();
        let (key, variant, generation) = (head.key, head.variant, head.generation);
        if written == 0 {
            return;
        }
        if fill.abandoned() {
            storage.remove_chunks(&key, &variant, generation, written);
            return;
        }
        let fill = fill.clone();
        tokio::spawn(async move {
            // Bounded: a reader that never finishes does not keep the chunks for ever (they
            // are then left to eviction).
            let deadline = tokio::time::Instant::now() + READERS_LINGER;
            while !fill.abandoned() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            storage.remove_chunks(&key, &variant, generation, written);
        });
    }

    fn unregister(&self, fill: &Arc<Fill>, job: &FillJob) {
        if let Some(key) = &job.table_key {
            self.fills.finish(key, fill);
        }
    }

    fn settle(&self, fill: &Arc<Fill>, job: &FillJob, outcome: Outcome) {
        self.unregister(fill, job);
        fill.publish(outcome);
    }

    async fn fetch_into(&self, fill: &Arc<Fill>, job: &FillJob) {
        let mut validate = job
            .stale
            .as_ref()
            .filter(|m| has_validator(&m.headers))
            .cloned();
        let mut slice = job.slice;
        // At most two exchanges: a conditional one, and an unconditional one when the 304 did
        // not select the stored response (RFC 9111 §4.3.4); or, for a cold object (never
        // validated), a sliced one and a whole one when the part could not be used.
        for _ in 0..2 {
            let mut headers = self.fill_request_headers(job);
            if let Some(m) = &validate {
                for (name, value) in conditional_request_headers(&m.headers).iter() {
                    headers.insert(name.clone(), value.clone());
                }
            }
            let asked = slice.take();
            if let Some(n) = asked {
                let mut range = Vec::with_capacity(28);
                range.extend_from_slice(b"bytes=0-");
                range.extend_from_slice(itoa::Buffer::new().format(n - 1).as_bytes());
                if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(range)) {
                    headers.insert(RANGE, v);
                }
            }
            let request_time = SystemTime::now();
            self.stats
                .upstream_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The request is made in the call, not in a local: a local would stay in this
            // future's state beside the response it waits for.
            let sent = job
                .upstream
                .send(job.upstream_get(headers), &UpstreamCtx { key: job.key });
            let resp = match sent.await {
                Ok(r) => r,
                Err(e) => return self.settle(fill, job, Outcome::Failed(e)),
            };
            let response_time = SystemTime::now();
            let (mut parts, body) = resp.into_parts();
            //= https://www.rfc-editor.org/rfc/rfc9110#section-6.6.1
            //# A recipient with a clock that receives a response message without a Date header
            //# field MUST record the time it was received and append a corresponding Date
            //# header field to the message's header section if it is cached or forwarded
            //# downstream.
            let date = ensure_date(&mut parts.headers, response_time);
            let segment = match asked.map(|n| self.sliced_answer(job, &mut parts, n)) {
                None | Some(Sliced::AsUsual) => None,
                Some(Sliced::Segment(n)) => content_length(&parts.headers).map(|total| (n, total)),
                Some(Sliced::Refetch) => {
                    tracing::debug!(url = %job.url(), status = %parts.status, "slice not usable; fetching whole");
                    continue;
                }
            };
            let status = parts.status;
            if status == StatusCode::NOT_MODIFIED {
                let Some(stored) = &validate else {
                    // We never asked for a 304: hand it to the one client that can use it.
                    return self.publish_private(
                        fill,
                        job,
                        Response::from_parts(parts, body),
                        NOT_STORED,
                    );
                };
                match freshen(&stored.headers, &parts.headers) {
                    FreshenOutcome::Updated(headers) => {
                        self.publish_revalidated(
                            fill,
                            job,
                            stored,
                            headers,
                            request_time,
                            response_time,
                        )
                        .await;
                        return;
                    }
                    FreshenOutcome::NotSelected => {
                        validate = None;
                        continue;
                    }
                }
            }
            if is_server_error(status) && job.stale.is_some() {
                // Keep the stored response: stale-if-error may still serve it.
                return self.publish_private(
                    fill,
                    job,
                    Response::from_parts(parts, body),
                    NOT_STORED,
                );
            }
            match storability(
                &http::Method::GET,
                job.request_headers(),
                status,
                &parts.headers,
                &job.policy,
            ) {
                Storability::DoNotStore(reason) => {
                    tracing::debug!(%reason, url = %job.url(), "response not stored");
                    // Only the response's own verdict says something about the next requests;
                    // a leader's Authorization or no-store says nothing about anyone else's.
                    if !matches!(
                        reason,
                        NotStorable::Authorization | NotStorable::RequestNoStore
                    ) {
                        self.hit_for_miss.mark(job.key, Instant::now());
                    }
                    if let Some(stale) = &job.stale {
                        //= https://www.rfc-editor.org/rfc/rfc9111#section-4.3.3
                        //# the cache MUST use the full response to satisfy the request.
                        // It replaces the stored response, which must not outlive it.
                        self.storage.remove_object(stale);
                    }
                    return self.publish_private(
                        fill,
                        job,
                        Response::from_parts(parts, body),
                        NOT_STORED,
                    );
                }
                Storability::Store(plan) => {
                    let resp = Response::from_parts(parts, body);
                    let times = (request_time, response_time, date);
                    self.stream_into(fill, job, resp, plan, times, segment)
                        .await;
                    return;
                }
            }
        }
        let err =
            crate::upstream::UpstreamError::Protocol("no usable response in two exchanges".into());
        self.settle(fill, job, Outcome::Failed(err));
    }

    /// Hands a response that will not be stored to the leader; `detail` says why, in
    /// Cache-Status.
    fn publish_private(
        &self,
        fill: &Arc<Fill>,
        job: &FillJob,
        resp: Response<ResponseBody>,
        detail: &'static str,
    ) {
        let server_error = is_server_error(resp.status());
        self.settle(
            fill,
            job,
            Outcome::Private {
                slot: Arc::new(Mutex::new(Some(resp))),
                server_error,
                detail,
            },
        );
    }

    /// Publishes the stored response updated by a 304 (RFC 9111 §4.3.4): same body, new header
    /// section, new age inputs and the purge index of this validation. The updated header
    /// section is judged again: a 304 may turn a response private or add fields not to store.
    async fn publish_revalidated(
        &self,
        fill: &Arc<Fill>,
        job: &FillJob,
        stored: &Arc<ObjectMeta>,
        mut headers: HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) {
        let age = AgeClock::new(&headers, request_time, response_time);
        let plan = storability(
            &http::Method::GET,
            job.request_headers(),
            stored.status,
            &headers,
            &job.policy,
        );
        let (policy, keep) = match plan {
            Storability::Store(plan) => {
                for name in &plan.strip_fields {
                    headers.remove(name.as_str());
                }
                (plan.policy, true)
            }
            Storability::DoNotStore(reason) => {
                tracing::debug!(%reason, url = %job.url(), "revalidated response no longer storable");
                (
                    StoredPolicy::from_response(stored.status, &headers, &job.policy),
                    false,
                )
            }
        };
        let tags = response_tags(&headers);
        let current = match &stored.vary {
            VarySpec::Fields(_) => match self.storage.head(&job.key).await {
                Head::Vary(h) => Some(h),
                _ => None,
            },
            _ => None,
        };
        let caps = &self.cfg.store_caps;
        let epoch = stored.head_epoch;
        let keep =
            keep && admit(caps, &tags, &stored.vary, current.as_deref(), epoch, false).is_ok();
        let variants = variants_after(current.as_deref(), &stored.vary, epoch, false);
        let meta = Arc::new(ObjectMeta {
            headers: owned_headers(&headers),
            age,
            policy,
            tags,
            purge_index: job.purge_index,
            ..ObjectMeta::clone(stored)
        });
        if keep {
            self.storage.put_object(meta.clone(), variants);
        } else {
            self.storage.remove_object(stored);
        }
        self.settle(fill, job, Outcome::Stored(meta));
    }

    async fn stream_into(
        &self,
        fill: &Arc<Fill>,
        job: &FillJob,
        resp: Response<ResponseBody>,
        plan: StorePlan,
        (request_time, response_time, date): (SystemTime, SystemTime, Option<SystemTime>),
        segment: Option<(u64, u64)>,
    ) {
        let StorePlan {
            policy,
            vary,
            strip_fields,
        } = plan;
        let (mut parts, body) = resp.into_parts();
        let age = AgeClock::dated(&parts.headers, date, request_time, response_time);
        strip_hop_by_hop(&mut parts.headers);
        let mut withheld = HeaderMap::new();
        for name in &strip_fields {
            if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                for value in parts.headers.get_all(&name) {
                    withheld.append(name.clone(), value.clone());
                }
                parts.headers.remove(&name);
            }
        }
        if let Some((_, total)) = segment {
            // The complete length, whatever a `Connection` field listed: readers go on past
            // the slice to it.
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(total));
        }
        let length = content_length(&parts.headers);
        let max = self.cfg.max_object_size;
        if max > 0 && length.is_some_and(|l| l > max) {
            let resp = Response::from_parts(parts, body);
            return self.publish_private(fill, job, resp, "too-large");
        }
        let variant = variant_id(&vary, job.request_headers());
        let head_epoch = match (&vary, &job.head) {
            (VarySpec::Fields(_), Some(h)) if h.vary == vary => h.epoch,
            (VarySpec::Fields(_), _) => rand::random(),
            _ => 0,
        };
        let tags = response_tags(&parts.headers);
        // The head as stored now (another variant may have been added since the lookup).
        let current = match &vary {
            VarySpec::Fields(_) => match self.storage.head(&job.key).await {
                Head::Vary(h) => Some(h),
                _ => None,
            },
            _ => None,
        };
        let new_variant = job.stale.is_none();
        if let Err(over) = admit(
            &self.cfg.store_caps,
            &tags,
            &vary,
            current.as_deref(),
            head_epoch,
            new_variant,
        ) {
            tracing::debug!(url = %job.url(), cap = over.as_str(), "response over a storage cap");
            if over != OverCap::Variants {
                // The response itself is over the cap: the next ones for the key will be too.
                self.hit_for_miss.mark(job.key, Instant::now());
            }
            let resp = Response::from_parts(parts, body);
            return self.publish_private(fill, job, resp, over.as_str());
        }
        let variants = variants_after(current.as_deref(), &vary, head_epoch, new_variant);
        let head = Arc::new(FillHead {
            key: job.key,
            variant,
            vary: vary.clone(),
            status: parts.status,
            // What is stored must not pin a read buffer: values are copied to one exact-size
            // buffer, unless they already live in one that the stored fields' weight covers
            // (an origin padding its head with fields dropped here would otherwise have the
            // memory tier keep far more than it counts).
            headers: match body.compact_head_len() {
                Some(len) if headers_weight(&parts.headers) >= len => {
                    Arc::new(std::mem::take(&mut parts.headers))
                }
                _ => owned_headers(&parts.headers),
            },
            age,
            policy,
            length,
            generation: rand::random(),
            head_epoch,
            withheld,
        });
        fill.publish(Outcome::Stream(head.clone()));
        self.hit_for_miss.clear(&job.key);

        let mut body = std::pin::pin!(IdleTimeout::new(body, job.upstream.idle_timeout()));
        let mut result: Result<(), FillError> = Ok(());
        // Chunks written before the object turned out too large: deleted at the end.
        let mut oversized: Option<u32> = None;
        // The leader may be running this fetch in its own poll (`leader_fetch.rs`): a body
        // already waiting in large amounts is left to the fetch's own task past this many
        // bytes, so the leader starts answering its client at once. A small body never gets
        // there and completes in the leader's poll.
        let mut yield_at = Some(YIELD_AFTER);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if yield_at.is_some_and(|at| fill.received() >= at) {
                            yield_at = None;
                            tokio::task::yield_now().await;
                        }
                        if oversized.is_some() {
                            // Nothing is stored now: readers behind find their bytes only in
                            // memory, so the upstream waits for the slowest.
                            fill.wait_for_readers(data.len(), job.upstream.idle_timeout())
                                .await;
                        }
                        fill.push(data, &head);
                        if max > 0 && oversized.is_none() && fill.received() > max {
                            // No Content-Length told us before: stop writing at once.
                            oversized = Some(fill.stop_storing());
                        }
                        if !job.background
                            && fill.abandoned()
                            && fill.received() > self.cfg.abandoned_fill_max
                        {
                            self.stats
                                .fills_abandoned
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            result = Err(FillError::Abandoned);
                            break;
                        }
                    }
                }
                Err(e) => {
                    result = Err(FillError::Upstream(e));
                    break;
                }
            }
        }
        // A sliced fill ends after its first slice; the rest is fetched by parts.
        if result.is_ok()
            && let Some(want) = segment.map(|(got, _)| got).or(length)
            && fill.received() != want
        {
            result = Err(FillError::Truncated {
                got: fill.received(),
                want,
            });
        }
        let finished = fill.seal(&result, &head, self.cfg.inline_max);
        tracing::debug!(url = %job.url(), received = fill.received(), ?result, "fill ended");
        let chunk_size = u32::try_from(self.cfg.chunk_size).unwrap_or(u32::MAX);
        let object = |size: u64, inline: Option<Bytes>, present: Option<ChunkSet>| ObjectMeta {
            url: job.url(),
            host: job.host(),
            tags: tags.clone(),
            purge_index: job.purge_index,
            inline,
            present,
            ..head.object_meta(size, chunk_size)
        };
        let not_stored = matches!(finished, FinishedBody::Failed) || oversized.is_some();
        if not_stored {
            let written = oversized.unwrap_or_else(|| fill.stop_storing());
            // A body cut short (every reader left, or the upstream broke) keeps its complete
            // chunks as an object stored in part, when the rest can be fetched by range and
            // checked against a strong validator; otherwise nothing partial stays behind.
            let cs = self.cfg.chunk_size.max(1) as u64;
            let partial = match (oversized, length) {
                (None, Some(total)) if written > 0 && total.div_ceil(cs) <= MAX_CHUNKS => {
                    u32::try_from(total.div_ceil(cs))
                        .ok()
                        .map(|chunks| {
                            let mut present = ChunkSet::new(chunks);
                            (0..written).for_each(|i| present.insert(i));
                            object(total, None, Some(present))
                        })
                        .filter(fills_by_parts)
                }
                _ => None,
            };
            match partial {
                Some(meta) => self.storage.put_object(Arc::new(meta), variants),
                None => self.remove_after_readers(fill, &head, written),
            }
            self.unregister(fill, job);
            return fill.end(result);
        }
        let inline = match finished {
            FinishedBody::Failed => return fill.end(result),
            FinishedBody::Inline(b) => Some(b),
            FinishedBody::Chunked => None,
        };
        let meta = match (segment, inline) {
            (Some((got, total)), None) => {
                let cs = self.cfg.chunk_size.max(1) as u64;
                let present = u32::try_from(total.div_ceil(cs)).ok().map(|chunks| {
                    let mut present = ChunkSet::new(chunks);
                    (0..got / cs).for_each(|i| present.insert(i as u32));
                    present
                });
                Some(object(total, None, present)).filter(fills_by_parts)
            }
            (Some(_), Some(_)) => None,
            (None, inline) => Some(object(fill.received(), inline, None)),
        };
        let Some(meta) = meta else {
            // Never a slice stored as if it were the whole object.
            let written = fill.stop_storing();
            self.remove_after_readers(fill, &head, written);
            self.unregister(fill, job);
            return fill.end(Err(FillError::Truncated {
                got: fill.received(),
                want: length.unwrap_or(0),
            }));
        };
        self.storage.put_object(Arc::new(meta), variants);
        self.unregister(fill, job);
        fill.end(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn tags_from_both_headers() {
        let mut h = HeaderMap::new();
        h.append("surrogate-key", HeaderValue::from_static("a  b"));
        h.append("surrogate-key", HeaderValue::from_static("c"));
        h.append("cache-tag", HeaderValue::from_static("d, a,,e "));
        assert_eq!(response_tags(&h), vec!["a", "b", "c", "d", "e"]);
        assert!(response_tags(&HeaderMap::new()).is_empty());
    }
}
