//! Accept loops: HTTP/1.1 and HTTP/2 (cleartext prior knowledge, or TLS with ALPN) on one
//! port each, all handing requests to the same engine.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tiercel_cluster::conn::{
    self, ConnLimiter, ConnOptions, ConnectionStats, Protocols, QuietLimits,
};
use tiercel_cluster::urlnorm::Scheme;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::engine::{ConnInfo, Engine};
use crate::protocol::forwarded_scheme;
use tiercel_cluster::cidr::Cidr;

/// Limits and timeouts of client connections.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request head (request line + header fields) accepted; larger → 431.
    pub max_request_head: usize,
    /// Most header fields per request; more → 431.
    pub max_headers: usize,
    /// Time a client has to send an HTTP/1.1 request head once it starts (and a fresh
    /// connection its TLS handshake and first head, together).
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Connections served at once, across every client listener (near it idle ones are
    /// closed; beyond it new ones wait in the kernel's backlog).
    pub max_connections: usize,
    /// Connections one client address may hold (`0`: no cap).
    pub max_connections_per_ip: usize,
    /// How long in-flight requests may finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-Proto` is believed (`trusted_forwarders`).
    pub trusted_forwarders: Arc<Vec<Cidr>>,
    /// `Alt-Svc` added to every response of this listener (the TLS one, when HTTP/3 is
    /// served on its port: RFC 7838).
    pub alt_svc: Option<http::HeaderValue>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_request_head: 64 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 0,
            shutdown_grace: Duration::from_secs(10),
            trusted_forwarders: Arc::new(Vec::new()),
            alt_svc: None,
        }
    }
}

/// The most header fields hyper parses in a request head when not told otherwise.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// How much of an HTTP/1.1 response hyper queues before it writes: four 128 KiB storage
/// segments per `writev`, two for a 1 MiB body (one per segment cost 400 µs of CPU per 1 MiB
/// hit, two 290 µs, one 240 µs). Also the most a client that stops reading can pin of stored
/// bodies in its queue (beside its socket's buffer in the kernel): at 1 MiB, 1 000 stalled
/// readers of a 1 GiB object took the edge to 376 MiB RSS, over the 300 MiB that
/// `memory_bounds` holds it to; at 512 KiB they stay under it. (A `limits.max_request_head`
/// above it raises the queue with it: hyper has one buffer limit for both.)
const H1_WRITE_QUEUE: usize = 512 * 1024;

fn protocols(opts: &ServerOptions) -> Protocols {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        // Request heads and idle keep-alive are timed by the connection's watchdog (quiet.rs):
        // hyper's header timer would also cut idle keep-alive connections at the header timeout.
        .header_read_timeout(None)
        .max_buf_size(H1_WRITE_QUEUE.max(opts.max_request_head))
        .max_header_size(opts.max_request_head)
        .keep_alive(true);
    // hyper's own limit without this call is the same 100 fields; set, it makes hyper build
    // its parse arrays element by element on every request (1 700 instructions).
    if opts.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        http1.max_headers(opts.max_headers);
    }
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_request_head).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    Protocols { http1, http2 }
}

/// Serves `listener` until `shutdown` is cancelled, then lets connections finish for the
/// grace period. With `tls`, connections are TLS (ALPN picks h2 or http/1.1). Listeners given
/// the same `limiter` share one connection limit.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    engine: Arc<Engine>,
    opts: ServerOptions,
    limiter: Arc<ConnLimiter>,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
) {
    let scheme = if tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let conn = ConnOptions {
        limits: QuietLimits {
            header: opts.header_timeout,
            idle: opts.idle_timeout,
        },
        limiter,
        shutdown_grace: opts.shutdown_grace,
    };
    let trusted = opts.trusted_forwarders.clone();
    let alt_svc = opts.alt_svc.clone();
    let handler = move |peer: std::net::SocketAddr| {
        let engine = engine.clone();
        let alt_svc = alt_svc.clone();
        let believed = trusted.iter().any(|range| range.contains(peer.ip()));
        let fills = if believed {
            engine.forwarder_fill_slots()
        } else {
            engine.connection_fill_slots()
        };
        move |req: http::Request<hyper::body::Incoming>| {
            let engine = engine.clone();
            let alt_svc = alt_svc.clone();
            // A trusted forwarder (a shield's edge) says which scheme the client used, so http
            // and https objects keep apart across tiers.
            let scheme = if believed {
                forwarded_scheme(req.headers()).unwrap_or(scheme)
            } else {
                scheme
            };
            let sni = req
                .extensions()
                .get::<tiercel_cluster::conn::TlsServerName>()
                .map(|n| n.0.clone());
            let conn = ConnInfo {
                peer,
                scheme,
                sni,
                fills: fills.clone(),
                trusted: believed,
                // TLS over TCP takes no early data: its handshake is complete here.
                handshake: None,
            };
            async move {
                // Boxed: the engine's future is several KiB, and hyper moves the service's
                // future into place for every request; a box moves as a pointer.
                let mut resp = Box::pin(engine.handle(req, conn)).await;
                if let Some(v) = alt_svc {
                    resp.headers_mut().insert(http::header::ALT_SVC, v);
                }
                resp
            }
        }
    };
    conn::serve(
        listener,
        tls,
        Arc::new(protocols(&opts)),
        conn,
        stats,
        shutdown,
        handler,
    )
    .await;
}
