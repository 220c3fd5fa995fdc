//! Where misses go: the origin ([`OriginUpstream`]) or the shield tier ([`ShieldUpstream`],
//! which falls back to the origin when allowed).
//!
//! The engine hands an [`Upstream`] a request whose target is origin-form (`/path?query`) and
//! whose `Host` is the client's; the implementation picks the connection (pooled) and applies
//! the connect and first-byte timeouts (the latter from the request's end, with the idle
//! timeout bounding a request body that stops going out: `request_clock`). The response
//! body's idle timeout is the reader's job ([`IdleTimeout`]), because only the reader knows
//! when it is waiting.

mod error;
mod field_names;
mod h1conn;
mod h1pool;
mod h1send;
pub mod h1wire;
mod h2conn;
mod health;
mod idle;
mod origin;
mod pool;
mod request_clock;
mod resolve;
mod retry;
mod shields;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

pub use error::UpstreamError;
pub use h1conn::H1Body;
pub use health::{Health, backoff};
pub use idle::IdleTimeout;
pub use origin::{OriginUpstream, OriginUrlError, Reach, WireProtocol};
pub use pool::{OriginPool, Picker, PoolMember, smooth_schedule};
pub use retry::{AttemptFacts, may_retry};
pub use shields::{PROBE_EVERY, ShieldUpstream};

/// Errors a request body sent upstream may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body on its way upstream (empty for fills, the client's body for pass-through).
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// An empty request body for the upstream.
pub fn empty_body() -> UpstreamBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response body from an upstream: read straight from an HTTP/1.1 connection (`h1conn`), or
/// from one of hyper's HTTP/2 streams.
pub enum ResponseBody {
    H1(H1Body),
    H2(Incoming),
}

impl ResponseBody {
    /// When the field values of the head this body came with are slices of one exact-size
    /// copy of that head (HTTP/1.1 heads, copied out of the read buffer by `h1wire`), the
    /// copy's length: storing the values as they are keeps that many bytes alive, where
    /// hyper's HTTP/2 values are slices of its read buffers and must be copied.
    pub fn compact_head_len(&self) -> Option<usize> {
        match self {
            ResponseBody::H1(body) => Some(body.head_len()),
            ResponseBody::H2(_) => None,
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseBody::H1(_) => f.write_str("ResponseBody::H1"),
            ResponseBody::H2(body) => write!(f, "ResponseBody::H2({body:?})"),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            ResponseBody::H1(body) => Pin::new(body).poll_frame(cx),
            ResponseBody::H2(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| UpstreamError::Protocol(e.to_string())),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::H1(body) => body.is_end_stream(),
            ResponseBody::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::H1(body) => body.size_hint(),
            ResponseBody::H2(body) => body.size_hint(),
        }
    }
}

/// What an upstream answers: the head, with the body still streaming.
pub type UpstreamResponse = Response<ResponseBody>;

/// Timeouts of one upstream exchange.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// From the request's end to the response head.
    pub first_byte: Duration,
    /// Longest pause between two response body frames, or while the upstream takes none of a
    /// request body.
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(30),
        }
    }
}

/// What an upstream may need to know about a request besides the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCtx {
    /// The request's cache key: a shield set picks the shield by it, so every edge sends a
    /// key to the same shield.
    pub key: [u8; 32],
}

impl UpstreamCtx {
    /// The context of a health probe (no key).
    pub fn probe() -> Self {
        UpstreamCtx { key: [0; 32] }
    }
}

/// Something that answers the engine's upstream requests.
pub trait Upstream: Send + Sync + 'static {
    /// Sends `req`; resolves with the response head (the body streams afterwards). Whether it
    /// may be retried elsewhere follows from its method and body ([`may_retry`]).
    fn send(
        &self,
        req: Request<UpstreamBody>,
        ctx: &UpstreamCtx,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>>;

    /// The idle timeout the engine applies to response bodies from this upstream.
    fn idle_timeout(&self) -> Duration;

    /// For logs: where requests go.
    fn describe(&self) -> String;

    /// Each upstream member and whether it is up now (shields), for `/metrics`; none for a
    /// single origin.
    fn members_up(&self) -> Vec<(String, bool)> {
        Vec::new()
    }
}
