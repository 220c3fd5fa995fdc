//! Accept loops: HTTP/1.1 and HTTP/2 (cleartext prior knowledge, or TLS with ALPN) on one
//! port each, all handing requests to the same engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tiercel_cluster::urlnorm::Scheme;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::quiet::{Activity, Closing, QuietLimits, Verdict, verdict};
use super::stats::ConnectionStats;
use super::watch::{TrackedBody, WatchedIo};
use crate::engine::{ConnInfo, Engine};

/// Limits and timeouts of client connections.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request head (request line + header fields) accepted; larger → 431.
    pub max_request_head: usize,
    /// Most header fields per request; more → 431.
    pub max_headers: usize,
    /// Time a client has to send an HTTP/1.1 request head once it starts (and a fresh
    /// connection its first bytes).
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Time a client has to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long in-flight requests may finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_request_head: 64 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How long a connection told to close while idle may take before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The longest the watchdog sleeps between two looks at a connection.
const LONGEST_LOOK: Duration = Duration::from_secs(24 * 3600);

fn builder(opts: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Request heads and idle keep-alive are timed by the connection's watchdog (quiet.rs):
        // hyper's header timer would also cut idle keep-alive connections at the header timeout.
        .header_read_timeout(None)
        .max_buf_size(opts.max_request_head.max(8192))
        .max_headers(opts.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_request_head).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serves `listener` until `shutdown` is cancelled, then lets connections finish for the
/// grace period. With `tls`, connections are TLS (ALPN picks h2 or http/1.1).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    engine: Arc<Engine>,
    opts: ServerOptions,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
) {
    let builder = Arc::new(builder(&opts));
    let permits = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let connections = TaskTracker::new();
    let scheme = if tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let limits = QuietLimits {
        header: opts.header_timeout,
        idle: opts.idle_timeout,
    };
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stats = stats.clone();
        let conn = Connection {
            info: ConnInfo { peer, scheme },
            engine: engine.clone(),
            builder: builder.clone(),
            limits,
            shutdown: shutdown.clone(),
        };
        let tls = tls.clone();
        let handshake_timeout = opts.handshake_timeout;
        connections.spawn(async move {
            let _permit = permit;
            let _open = stats.opened();
            let closed = match tls {
                None => conn.serve(stream).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    let handshake = tokio::select! {
                        () = conn.shutdown.cancelled() => return,
                        h = handshake => h,
                    };
                    match handshake {
                        Ok(Ok(tls_stream)) => conn.serve(tls_stream).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            None
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Some(Closing::HeadTimeout)
                        }
                    }
                }
            };
            if let Some(why) = closed {
                stats.closed(why);
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(opts.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

/// One accepted client connection and what serving it needs.
struct Connection {
    info: ConnInfo,
    engine: Arc<Engine>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: QuietLimits,
    shutdown: CancellationToken,
}

impl Connection {
    /// Serves requests until the client closes, the connection goes quiet for too long
    /// (see [`super::quiet`]), or the node shuts down (in-flight requests finish first).
    /// Returns why the node closed it, if the node did.
    async fn serve<I>(self, io: I) -> Option<Closing>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            info,
            engine,
            builder,
            limits,
            shutdown,
        } = self;
        let activity = Activity::new();
        let io = TokioIo::new(WatchedIo::new(io, activity.clone()));
        let requests = activity.clone();
        let service = service_fn(move |req| {
            let engine = engine.clone();
            let in_flight = requests.request_started();
            async move {
                let resp = engine.handle(req, info).await;
                Ok::<_, std::convert::Infallible>(resp.map(|b| TrackedBody::new(b, in_flight)))
            }
        });
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let look = tokio::time::sleep(limits.header.min(limits.idle));
        tokio::pin!(look);
        let mut closing = false;
        let mut idle_close = None;
        loop {
            tokio::select! {
                biased;
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
                    }
                    return idle_close;
                }
                () = shutdown.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = &mut look => {
                    let now = activity.now();
                    let next = match verdict(&activity.snapshot(), now, &limits) {
                        // Capped: a timeout configured as years must not overflow an Instant.
                        Verdict::LookAgainAt(at) => {
                            Duration::from_millis(at.saturating_sub(now)).min(LONGEST_LOOK)
                        }
                        // Idle: close politely first, and drop it if it lingers.
                        Verdict::Close(Closing::Idle) if !closing => {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                            idle_close = Some(Closing::Idle);
                            CLOSE_LINGER
                        }
                        Verdict::Close(why) => {
                            tracing::debug!(peer = %info.peer, ?why, "closing the connection");
                            return Some(why);
                        }
                    };
                    look.as_mut().reset(tokio::time::Instant::now() + next);
                }
            }
        }
    }
}

/// Binds a TCP listener with a large backlog.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
