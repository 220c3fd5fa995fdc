//! What the engine derives once from an incoming request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::Semaphore;

use http::{HeaderMap, Method, Uri, Version};
use tiercel_cluster::urlnorm::{NormalizedUrl, Scheme};

use crate::policy::RequestDirectives;

/// The connection a request arrived on, as front ends report it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// `https` for TLS (and QUIC) listeners.
    pub scheme: Scheme,
    /// The connection's fill slots ([`super::Engine::connection_fill_slots`]), one per
    /// connection, shared by its requests.
    pub fills: Arc<Semaphore>,
    /// The peer is a trusted forwarder (`trusted_forwarders`): its `X-Forwarded-For` names
    /// the client whose address access rules and rate limits apply to.
    pub trusted: bool,
    /// The server name the TLS client asked for (SNI), lowercase: a request for a host of
    /// another site than that name's is refused (421).
    pub sni: Option<Arc<str>>,
    /// Set on a connection that may carry TLS early data (0-RTT): until its handshake
    /// completes, what arrives on it may be a replay (RFC 8470).
    pub handshake: Option<Handshake>,
}

/// Whether a connection's TLS handshake has completed, for requests that arrived in early
/// data (0-RTT). An attacker can replay a client's first flight, early data included, but
/// cannot complete its handshake: a request acted on only once the handshake is complete is
/// not a replay. So early requests are answered from storage at once, while anything that
/// would go upstream waits for the handshake, and unsafe methods are refused with 425.
#[derive(Clone)]
pub struct Handshake(Shared<BoxFuture<'static, bool>>);

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("pending", &self.pending())
            .finish()
    }
}

impl Handshake {
    /// `ended` resolves when the connection's handshake ends, `true` if it completed; the
    /// connection makes it resolve by its handshake deadline. It is polled where it is asked
    /// about, so the answer is the transport's own at that moment, never a report late.
    pub fn new(ended: impl Future<Output = bool> + Send + 'static) -> Self {
        Handshake(ended.boxed().shared())
    }

    /// Whether the handshake is still under way (a request now is early data).
    pub fn pending(&self) -> bool {
        self.0.clone().now_or_never().is_none()
    }

    /// Waits for the handshake's end: `true` once it completed, `false` if it failed.
    pub async fn completed(&self) -> bool {
        self.0.clone().await
    }
}

/// A request, parsed once. A fill shares it (`Arc`) rather than copying what it needs; the
/// clone serves only a request passed on whole while a fill still holds it.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// Method as received.
    pub method: Method,
    /// HTTP version as received.
    pub version: Version,
    /// Target as received.
    pub uri: Uri,
    /// Header section as received.
    pub headers: HeaderMap,
    /// Normalised authority (`host[:port]`).
    pub authority: String,
    /// Normalised URL (what keys and purges use).
    pub url: NormalizedUrl,
    /// The canonical origin-form target (`url`'s path and query): what the upstream is asked
    /// for, so what is stored under the key is exactly what the key names.
    pub target: http::uri::PathAndQuery,
    /// The scheme of the listener.
    pub scheme: Scheme,
    /// The client's address.
    pub peer: SocketAddr,
    /// The connection's fill slots.
    pub conn_fills: Arc<Semaphore>,
    /// The handshake this request arrived before the end of (0-RTT early data), if any.
    pub early: Option<Handshake>,
    /// The site its host picked.
    pub site: Arc<super::Site>,
    /// Primary cache key.
    pub key: [u8; 32],
    /// Request cache directives.
    pub directives: RequestDirectives,
    /// When the request arrived.
    pub start: Instant,
}

impl RequestCtx {
    /// The canonical origin-form target (`/path?query`) sent upstream.
    pub fn path_and_query(&self) -> &str {
        self.target.as_str()
    }

    /// The target as the upstream request's URI.
    pub fn upstream_uri(&self) -> http::Uri {
        http::Uri::from(self.target.clone())
    }

    /// Whether the client asked only for the header section.
    pub fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }
}
