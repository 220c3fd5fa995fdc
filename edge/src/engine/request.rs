//! What the engine derives once from an incoming request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

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
}

/// A request, parsed once.
#[derive(Debug)]
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
