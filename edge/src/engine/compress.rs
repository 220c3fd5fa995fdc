//! Compression on the way out, per service (`compress = {types, min_size, algorithms}`).
//!
//! ```text
//! client AE ─▶ kept aside; the engine sees `Accept-Encoding: identity` (one object, one
//!              origin fetch, whatever clients accept)
//! response ─▶ compressible type? ── no ─▶ as is
//!              │ yes: Vary: Accept-Encoding
//!              ├─ 200, no Range, no no-transform, ≥ min_size, the client accepts br/zstd/gzip
//!              │     ├─ encoded form stored (key, variant, generation, coding)? ─▶ served
//!              │     └─ else encode as it streams, storing the result (≤ one chunk)
//!              └─ origin sent a coding the client does not accept ─▶ decoded to identity
//! ```
//! The encoded form is stored beside the object under a key derived from the object's key,
//! variant and body generation, so a new body (a refill) never meets an old encoding, and a
//! purge of the object makes its encodings unreachable with it. Ranges are served from the
//! identity form only.

use std::io;

use async_compression::Level;
use async_compression::tokio::bufread::{
    BrotliDecoder, BrotliEncoder, GzipDecoder, GzipEncoder, ZstdDecoder, ZstdEncoder,
};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyDataStream;
use tiercel_cluster::service::{Compress, Encoding};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{Body, Engine};
use crate::policy::VariantId;
use crate::storage::Chunk;

/// Which stored body a response carries, so its encodings can be stored beside it.
#[derive(Debug, Clone)]
pub struct StoredBody {
    /// The object's key.
    pub key: [u8; 32],
    /// Its variant.
    pub variant: VariantId,
    /// Its body's generation.
    pub generation: u64,
}

/// What the client asked that decides the coding of the answer.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// The client's `Accept-Encoding` (all of its field lines, joined).
    pub accept: Option<String>,
    /// A HEAD request.
    pub head: bool,
    /// The request carried `Range`.
    pub range: bool,
    /// The coding whose entity tags the client's `If-None-Match` named (rewritten to the
    /// stored object's before the engine compared them): a 304 then names them again.
    pub validators_of: Option<Encoding>,
}

/// Rewrites `If-None-Match` entity tags of `coding`'s representation (`"v1-br"`) to the
/// stored object's (`"v1"`), so the engine's precondition check compares like with like.
/// Whether any was rewritten.
pub fn strip_coding(h: &mut HeaderMap, coding: Encoding) -> bool {
    let suffix = format!("-{}\"", coding.token());
    let mut changed = false;
    let values: Vec<HeaderValue> = h
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .map(|v| {
            let Ok(text) = v.to_str() else {
                return v.clone();
            };
            let tags: Vec<String> = text
                .split(',')
                .map(|t| {
                    let t = t.trim();
                    match t.strip_suffix(&suffix) {
                        Some(base) if base.contains('"') => {
                            changed = true;
                            format!("{base}\"")
                        }
                        _ => t.to_owned(),
                    }
                })
                .collect();
            HeaderValue::from_str(&tags.join(", ")).unwrap_or_else(|_| v.clone())
        })
        .collect();
    if changed {
        h.remove(http::header::IF_NONE_MATCH);
        for v in values {
            h.append(http::header::IF_NONE_MATCH, v);
        }
    }
    changed
}

/// The client's preference for `coding` (RFC 9110 §12.5.3): its q-value, from an explicit
/// entry or else `*`; `None` when the field does not mention it.
fn q_of(accept: &str, coding: &str) -> Option<f32> {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            }
        }
        if name.eq_ignore_ascii_case(coding) {
            return Some(q);
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star
}

/// The coding to answer with: the offered one the client rates highest (q > 0), the service's
/// order breaking ties; `None` for identity (no field, or nothing offered is acceptable).
pub fn negotiate(accept: Option<&str>, offered: &[Encoding]) -> Option<Encoding> {
    //= https://www.rfc-editor.org/rfc/rfc9110#section-12.5.3
    //# If no Accept-Encoding header field is in the request, any content coding is
    //# considered acceptable by the user agent.
    // ... but most clients that send none cannot decode anything: identity, as every CDN does.
    let accept = accept?;
    let mut best: Option<(f32, Encoding)> = None;
    for &e in offered {
        let q = q_of(accept, e.token()).unwrap_or(0.0);
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, e));
        }
    }
    best.map(|(_, e)| e)
}

/// Whether the client accepts `coding` (a coding the origin used).
pub fn accepts(accept: Option<&str>, coding: &str) -> bool {
    if coding.eq_ignore_ascii_case("identity") {
        return true;
    }
    accept
        .and_then(|a| q_of(a, coding))
        .is_some_and(|q| q > 0.0)
}

/// The entity tag of an encoded representation: a different representation needs a
/// different tag (RFC 9110 §8.8.3).
pub fn encoded_etag(etag: &str, coding: &str) -> Option<HeaderValue> {
    let (weak, tag) = match etag.strip_prefix("W/") {
        Some(t) => ("W/", t),
        None => ("", etag),
    };
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    HeaderValue::from_str(&format!("{weak}\"{inner}-{coding}\"")).ok()
}

/// The key the encoded form of a stored body lives under.
fn encoded_key(key: &[u8; 32], coding: Encoding) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("tiercel 2026-12 encoded body v1");
    h.update(key);
    h.update(coding.token().as_bytes());
    *h.finalize().as_bytes()
}

/// Adds `Accept-Encoding` to the response's `Vary` unless it is there (or `*`).
fn vary_on_encoding(h: &mut HeaderMap) {
    let present = h.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !present {
        h.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

fn no_transform(h: &HeaderMap) -> bool {
    h.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    })
}

/// The most bytes an upstream's coded body may decode to when `cache.max_object_size` sets no
/// limit: a decompression bomb stops there.
const DECODE_LIMIT: u64 = 1 << 30;

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

fn stream_of<R: AsyncRead + Send + 'static>(r: R) -> ByteStream {
    Box::pin(ReaderStream::new(r))
}

fn encode(s: ByteStream, coding: Encoding) -> ByteStream {
    let r = StreamReader::new(s);
    match coding {
        // Quality 5: most of brotli's gain at a fraction of level 11's time (done once per
        // object, but on the first client's clock).
        Encoding::Br => stream_of(BrotliEncoder::with_quality(r, Level::Precise(5))),
        Encoding::Zstd => stream_of(ZstdEncoder::with_quality(r, Level::Default)),
        Encoding::Gzip => stream_of(GzipEncoder::with_quality(r, Level::Default)),
    }
}

fn decode(s: ByteStream, coding: Encoding, limit: u64) -> ByteStream {
    let r = StreamReader::new(s);
    let out = match coding {
        Encoding::Br => stream_of(BrotliDecoder::new(r)),
        Encoding::Zstd => stream_of(ZstdDecoder::new(r)),
        Encoding::Gzip => stream_of(GzipDecoder::new(r)),
    };
    // A decompression bomb from upstream stops at the object size limit.
    let mut seen = 0u64;
    Box::pin(out.map(move |item| {
        let b = item?;
        seen += b.len() as u64;
        if seen > limit {
            return Err(io::Error::other("decoded body over its size limit"));
        }
        Ok(b)
    }))
}

impl Engine {
    /// Applies the site's compression to a response (see the module docs).
    pub(super) async fn compress(
        &self,
        rules: &Compress,
        wanted: &Wanted,
        resp: Response<Body>,
    ) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        let compressible = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| rules.compresses(t));
        if parts.status == StatusCode::NOT_MODIFIED
            && let Some(coding) = wanted.validators_of
        {
            // The client validated its copy in `coding`: the answer names that copy.
            vary_on_encoding(&mut parts.headers);
            if let Some(tag) = parts.headers.get(ETAG).and_then(|v| v.to_str().ok())
                && let Some(new) = encoded_etag(tag, coding.token())
            {
                parts.headers.insert(ETAG, new);
            }
            return Response::from_parts(parts, body);
        }
        if !compressible
            || !matches!(
                parts.status,
                StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
            )
        {
            return Response::from_parts(parts, body);
        }
        vary_on_encoding(&mut parts.headers);
        if parts.status != StatusCode::OK || no_transform(&parts.headers) {
            return Response::from_parts(parts, body);
        }
        let accept = wanted.accept.as_deref();
        let origin_coding = parts
            .headers
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty() && s != "identity");
        let mut stream: Option<ByteStream> = None;
        // A decode's permit also covers the encode that may follow it.
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        let mut body = Some(body);
        let mut stored = parts.extensions.remove::<StoredBody>();
        if let Some(coding) = &origin_coding {
            if accepts(accept, coding) {
                return Response::from_parts(parts, body.take().unwrap_or(Body::Empty));
            }
            // The client cannot read the origin's coding: decode to identity, then maybe
            // encode again with one it can.
            let Some(known) = Encoding::from_token(coding) else {
                // A coding we cannot decode: the client gets it as is (RFC 9110 §12.5.3 lets
                // a server answer with a coding it was not asked for over sending nothing).
                return Response::from_parts(parts, body.take().unwrap_or(Body::Empty));
            };
            parts.headers.remove(CONTENT_ENCODING);
            parts.headers.remove(CONTENT_LENGTH);
            parts.headers.remove(ACCEPT_RANGES);
            // Another representation than the origin's: another entity tag (RFC 9110 §8.8.3).
            if let Some(tag) = parts.headers.get(ETAG).and_then(|v| v.to_str().ok())
                && let Some(new) = encoded_etag(tag, "identity")
            {
                parts.headers.insert(ETAG, new);
            }
            stored = None;
            if !wanted.head {
                let Ok(permit) = self.encoders.clone().try_acquire_owned() else {
                    self.stats
                        .encoders_busy
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut resp = self.plain_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy decoding: retry\n",
                        None,
                    );
                    resp.headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                    return resp;
                };
                let raw: ByteStream = Box::pin(
                    BodyDataStream::new(body.take().unwrap_or(Body::Empty))
                        .map_err(io::Error::other),
                );
                let limit = match self.cfg.max_object_size {
                    0 => DECODE_LIMIT,
                    n => n,
                };
                held = Some(permit);
                stream = Some(decode(raw, known, limit));
            }
        }
        let length = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let Some(coding) = negotiate(accept, &rules.algorithms)
            .filter(|_| !wanted.range && length.is_none_or(|n| n >= rules.min_size))
        else {
            return Response::from_parts(parts, rebuilt(stream.map(|s| holding(s, held)), body));
        };
        let place = stored.map(|s| (encoded_key(&s.key, coding), s));
        let stored_form = match &place {
            Some((key, s)) => {
                self.storage
                    .chunk_raw(key, &s.variant, s.generation, 0)
                    .await
            }
            None => None,
        };
        // Encoding takes CPU: at most `encoders` at once; past that, identity (always right).
        let permit = match (&stored_form, wanted.head) {
            (None, false) => match held
                .take()
                .map_or_else(|| self.encoders.clone().try_acquire_owned(), Ok)
            {
                Ok(p) => Some(p),
                Err(_) => {
                    self.stats
                        .encoders_busy
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Response::from_parts(parts, rebuilt(stream, body));
                }
            },
            _ => None,
        };
        parts
            .headers
            .insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
        parts.headers.remove(ACCEPT_RANGES);
        if let Some(tag) = parts.headers.get(ETAG).and_then(|v| v.to_str().ok())
            && let Some(new) = encoded_etag(tag, coding.token())
        {
            parts.headers.insert(ETAG, new);
        }
        if let Some(chunk) = stored_form {
            self.stats
                .encoded_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(chunk.len()));
            let body = match chunk.segments() {
                _ if wanted.head => Body::Empty,
                [one] => Body::Full(Some(one.clone())),
                many => Body::from_stream(
                    futures_util::stream::iter(Vec::from(many).into_iter().map(Ok::<_, io::Error>)),
                    Some(chunk.len() as u64),
                ),
            };
            return Response::from_parts(parts, body);
        }
        parts.headers.remove(CONTENT_LENGTH);
        if wanted.head {
            return Response::from_parts(parts, Body::Empty);
        }
        self.stats
            .encodings_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let identity: ByteStream = match stream {
            Some(s) => s,
            None => Box::pin(
                BodyDataStream::new(body.take().unwrap_or(Body::Empty)).map_err(io::Error::other),
            ),
        };
        // The permit goes with the stream: held while it encodes.
        let encoded = holding(encode(identity, coding), permit);
        let cap = self.cfg.chunk_size;
        let out: ByteStream = match place {
            // Kept while it streams, stored once whole: the next client is served from it.
            Some((key, s)) => {
                let storage = self.storage.clone();
                Box::pin(Teed {
                    inner: encoded,
                    kept: Some(BytesMut::new()),
                    cap,
                    on_end: Some(Box::new(move |bytes: Bytes| {
                        let chunk = Chunk::copy_from_slice(&bytes);
                        storage.put_chunk(&key, &s.variant, s.generation, 0, chunk);
                    })),
                })
            }
            None => encoded,
        };
        Response::from_parts(parts, Body::from_stream(out, None))
    }
}

/// A stream that keeps a copy of what passes (up to `cap` bytes) and hands it to `on_end`
/// when the stream ends whole; an error or a longer body keeps nothing.
struct Teed {
    inner: ByteStream,
    kept: Option<BytesMut>,
    cap: usize,
    on_end: Option<Box<dyn FnOnce(Bytes) + Send>>,
}

impl Stream for Teed {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(b)) => {
                if let Some(k) = &mut this.kept {
                    if k.len() + b.len() > this.cap {
                        this.kept = None;
                    } else {
                        k.extend_from_slice(b);
                    }
                }
            }
            Some(Err(_)) => this.kept = None,
            None => {
                if let (Some(k), Some(f)) = (this.kept.take(), this.on_end.take()) {
                    f(k.freeze());
                }
            }
        }
        std::task::Poll::Ready(item)
    }
}

/// `s`, keeping `permit` until it is over or dropped.
fn holding(s: ByteStream, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> ByteStream {
    match permit {
        Some(p) => Box::pin(s.map(move |item| {
            let _held = &p;
            item
        })),
        None => s,
    }
}

/// The identity body: decoded when it was, else as it came.
fn rebuilt(stream: Option<ByteStream>, body: Option<Body>) -> Body {
    match (stream, body) {
        (Some(s), _) => Body::from_stream(s, None),
        (None, Some(b)) => b,
        (None, None) => Body::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Encoding; 3] = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];

    #[test]
    fn negotiation_follows_q_values_then_the_services_order() {
        let cases: &[(Option<&str>, Option<Encoding>)] = &[
            (None, None),
            (Some(""), None),
            (Some("gzip"), Some(Encoding::Gzip)),
            (Some("gzip, deflate, br"), Some(Encoding::Br)),
            (Some("gzip, deflate, br, zstd"), Some(Encoding::Br)),
            (Some("br;q=0.5, gzip;q=0.8"), Some(Encoding::Gzip)),
            (Some("br;q=0, gzip"), Some(Encoding::Gzip)),
            (Some("*"), Some(Encoding::Br)),
            (Some("*;q=0.1, zstd;q=0.9"), Some(Encoding::Zstd)),
            (Some("*;q=0"), None),
            (Some("identity"), None),
            (Some("deflate, compress"), None),
            (Some("GZIP;Q=1"), Some(Encoding::Gzip)),
            (Some("gzip;q=nonsense"), None),
            (Some("gzip;q=2"), None),
            (Some(" , ,gzip"), Some(Encoding::Gzip)),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(*accept, &ALL), *want, "{accept:?}");
        }
        // Only what the service offers.
        assert_eq!(negotiate(Some("br, zstd"), &[Encoding::Gzip]), None);
        assert_eq!(
            negotiate(Some("br, gzip"), &[Encoding::Gzip, Encoding::Br]),
            Some(Encoding::Gzip)
        );
    }

    #[test]
    fn an_origin_coding_is_kept_only_for_clients_that_accept_it() {
        assert!(accepts(Some("gzip, br"), "gzip"));
        assert!(!accepts(Some("br"), "gzip"));
        assert!(!accepts(Some("gzip;q=0"), "gzip"));
        assert!(!accepts(None, "gzip"));
        assert!(accepts(None, "identity"));
    }

    #[test]
    fn encoded_representations_get_their_own_entity_tags() {
        assert_eq!(encoded_etag("\"v1\"", "br").unwrap(), "\"v1-br\"");
        assert_eq!(encoded_etag("W/\"v1\"", "gzip").unwrap(), "W/\"v1-gzip\"");
        assert!(encoded_etag("v1", "br").is_none());
        // A client's tags of the coding it will get name the stored object's.
        let mut h = HeaderMap::new();
        h.append(
            http::header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a-br\", W/\"b-br\""),
        );
        h.append(
            http::header::IF_NONE_MATCH,
            HeaderValue::from_static("\"c-gzip\""),
        );
        assert!(strip_coding(&mut h, Encoding::Br));
        let got: Vec<&str> = h
            .get_all(http::header::IF_NONE_MATCH)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(got, ["\"a\", W/\"b\"", "\"c-gzip\""]);
        assert!(!strip_coding(&mut h, Encoding::Zstd));
    }

    #[test]
    fn vary_gains_accept_encoding_once() {
        let mut h = HeaderMap::new();
        vary_on_encoding(&mut h);
        vary_on_encoding(&mut h);
        assert_eq!(h.get_all(VARY).iter().count(), 1);
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("Origin, accept-encoding"));
        vary_on_encoding(&mut h);
        assert_eq!(h.get_all(VARY).iter().count(), 1);
    }
}
