//! The accept loop and one connection's life: TLS, hyper, and the watchdog that closes it when
//! [`super::quiet::verdict`] says so.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cork::{Cork, Corked, cork};
use super::head::AmbiguousFraming;
use super::limiter::ConnLimiter;
use super::protocols::Protocols;
use super::quiet::{Activity, Closing, ConnControl, QuietLimits, Verdict, verdict};
use super::stats::ConnectionStats;
use super::watch::{TrackedBody, WatchedIo};

/// Timeouts and limits of the connections of one listener.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// The client timeouts. `header` also bounds the TLS handshake: one deadline runs from
    /// accept to the first complete request head.
    pub limits: QuietLimits,
    /// The connection limit, shared by every listener given the same limiter.
    pub limiter: Arc<ConnLimiter>,
    /// How long in-flight requests may finish after shutdown starts.
    pub shutdown_grace: Duration,
}

/// How long a connection told to close while idle may take before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The longest the watchdog sleeps between two looks at a connection.
const LONGEST_LOOK: Duration = Duration::from_secs(24 * 3600);

/// Pause after a failed accept (out of file descriptors and the like), so the loop does not
/// spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `listener` until `shutdown` is cancelled, then lets connections finish for the
/// grace period. With `tls`, connections are TLS. `connection` is called once per accepted
/// connection with the client's address and returns the handler of its requests (so per-
/// connection state, such as a cap on what one connection may start, lives in it).
pub async fn serve<M, H, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    protocols: Arc<Protocols>,
    opts: ConnOptions,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
    connection: M,
) where
    M: Fn(SocketAddr) -> H + Send + Sync + 'static,
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = opts.limiter.permit() => match p {
                Some(p) => p,
                None => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                stats.accept_failed();
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let activity = Activity::new();
        let Some(admitted) = opts.limiter.admit(permit, peer.ip(), activity.clone()) else {
            stats
                .refused_per_ip
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(%peer, "over the per-address connection cap; closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (stream, cork) = cork(stream);
        let stats = stats.clone();
        let tls = tls.clone();
        let protocols = protocols.clone();
        let shutdown = shutdown.clone();
        let limits = opts.limits;
        let handler = connection(peer);
        connections.spawn(async move {
            let _admitted = admitted;
            let _open = stats.opened();
            let closed = match tls {
                None => {
                    serve_connection(
                        stream, cork, None, &protocols, activity, limits, shutdown, handler,
                    )
                    .await
                }
                Some(acceptor) => {
                    // The handshake spends the first head's time: a silent client is held for
                    // `header` in all, not twice that.
                    // Corked too: the handshake's own flights must leave at the end of each
                    // poll, as the connection's writes do.
                    let accept = Corked::new(acceptor.accept(stream), cork.clone());
                    let handshake = tokio::time::timeout(limits.header, accept);
                    let handshake = tokio::select! {
                        () = shutdown.cancelled() => return,
                        h = handshake => h,
                    };
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            let name = tls_stream.get_ref().1.server_name().map(TlsServerName::new);
                            serve_connection(
                                tls_stream, cork, name, &protocols, activity, limits, shutdown,
                                handler,
                            )
                            .await
                        }
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

/// The server name a TLS client asked for (SNI), on each of its connection's requests: a node
/// can refuse a request for a host other than the one the connection was set up for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerName(pub Arc<str>);

impl TlsServerName {
    /// From the name the client sent.
    pub fn new(name: &str) -> Self {
        TlsServerName(Arc::from(name.to_ascii_lowercase()))
    }
}

/// Serves requests on `io` until the client closes, the connection goes quiet for too long
/// (see [`super::quiet`]), or `shutdown` is cancelled (in-flight requests finish first).
/// `activity` was created when the connection was accepted. `cork` is the cork of the socket
/// under `io` (from [`super::cork::cork`]): it is pushed after each poll of the connection. A
/// corked socket served without its cork would hold its writes until the kernel's probe timer.
/// Returns why the node closed it, if the node did.
#[allow(clippy::too_many_arguments)]
pub async fn serve_connection<I, H, Fut, B>(
    io: I,
    cork: Option<Arc<Cork>>,
    server_name: Option<TlsServerName>,
    protocols: &Arc<Protocols>,
    activity: Arc<Activity>,
    limits: QuietLimits,
    shutdown: CancellationToken,
    handler: H,
) -> Option<Closing>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = WatchedIo::new(io, activity.clone());
    let requests = activity.clone();
    let handler = Arc::new(handler);
    let service = service_fn(move |mut req: Request<Incoming>| {
        let in_flight = requests.request_started();
        req.extensions_mut().insert(ConnControl(requests.clone()));
        if let Some(name) = &server_name {
            req.extensions_mut().insert(name.clone());
        }
        if requests.take_ambiguous_framing() {
            req.extensions_mut().insert(AmbiguousFraming);
        }
        let answer = handler(req);
        async move {
            let resp = answer.await;
            Ok::<_, Infallible>(resp.map(|b| TrackedBody::new(b, in_flight)))
        }
    });
    let conn = Corked::new(protocols.serve(io, service, activity.clone()), cork);
    tokio::pin!(conn);
    let first_look = limits
        .header
        .min(limits.idle)
        .saturating_sub(Duration::from_millis(activity.now()));
    let look = tokio::time::sleep(first_look);
    tokio::pin!(look);
    let mut closing = false;
    let mut idle_close = None;
    loop {
        tokio::select! {
            biased;
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return idle_close;
            }
            () = activity.drop_requested() => {
                tracing::debug!("a handler dropped the connection");
                return Some(Closing::SendTimeout);
            }
            () = shutdown.cancelled(), if !closing => {
                conn.as_mut().inner().get_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.close_asked(), if !closing => {
                // Idle while the node is at its connection limit: make room (h1 closes between
                // requests, h2 sends GOAWAY), and drop it if it lingers.
                conn.as_mut().inner().get_mut().graceful_shutdown();
                closing = true;
                idle_close = Some(Closing::MadeRoom);
                look.as_mut().reset(tokio::time::Instant::now() + CLOSE_LINGER);
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
                        conn.as_mut().inner().get_mut().graceful_shutdown();
                        closing = true;
                        idle_close = Some(Closing::Idle);
                        CLOSE_LINGER
                    }
                    Verdict::Close(why) => {
                        tracing::debug!(?why, "closing the connection");
                        return Some(why);
                    }
                };
                look.as_mut().reset(tokio::time::Instant::now() + next);
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
