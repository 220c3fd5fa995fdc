//! HTTP/1.1 connections to one origin, kept alive and reused.
//!
//! hyper-util's pooled client keys its idle lists by scheme and authority, clones and hashes
//! them on every request, and takes a connection out of its list for each request and back in
//! when the response is over; for an upstream that is one address, that bookkeeping was 8 % of
//! a miss's instructions. Here a connection stays in one list from its first request to its
//! end:
//!
//! ```text
//! send ─▶ most recently used connection whose last response is over, moved to the back
//!     │    of the list (closed ones met on the way dropped)
//!     │      └─ none ─▶ a new connection, kept at the back
//!     └─▶ request queued on it, connection left in the list (busy until its response ends)
//!           ├─ it closed before taking the request ─▶ once more, on a new connection
//!           └─ it broke before a response head ─▶ once more, on a new connection, when the
//!                request has no body and an idempotent method (`retry::may_retry`)
//!
//! reaper, every 10 s ─▶ drops connections quiet for 50 s, and idle ones beyond 256
//! ```
//!
//! The request is queued on the connection before the lock is released, so two requests never
//! pick the same idle connection.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};

use super::error::chain_text;
use super::h2conn::{Connector, open};
use super::retry::{AttemptFacts, Replay, may_retry};
use super::{UpstreamBody, UpstreamError};

/// A connection not used for this long is not used again: origins commonly close keep-alive
/// connections after 60 s or more, and one closing just as a request goes out would fail it.
/// (hyper-util's pool, used here before, dropped idle connections after 50 s as well.)
pub const REUSE_WITHIN: Duration = Duration::from_secs(50);

/// Idle connections kept; the reaper closes the least recently used beyond it. (Busy ones
/// are never closed for it: requests in flight are bounded by the node's fill slots.)
pub const MAX_IDLE: usize = 256;

/// Connections kept at most, busy or idle; beyond it, a connection serves its request and
/// closes. Far above what the fill slots let be in flight: a backstop, not a limit in use.
pub const MAX_KEPT: usize = 4096;

/// How often connections past [`REUSE_WITHIN`] are closed while no request walks the list.
const REAP_EVERY: Duration = Duration::from_secs(10);

/// The kept-alive HTTP/1.1 connections to one origin. See the module docs.
pub struct H1Pool {
    /// Where connections go (`scheme://authority`).
    base: Uri,
    /// `authority` for requests without a `Host` of their own.
    host: http::HeaderValue,
    connector: Connector,
    connect_timeout: Duration,
    /// Kept connections, least recently used first.
    conns: parking_lot::Mutex<Kept>,
    /// [`REUSE_WITHIN`], shorter in tests.
    reuse_within: Duration,
}

/// The kept connections and whether a reaper task watches them.
#[derive(Default)]
struct Kept {
    list: Vec<Conn>,
    reaping: bool,
}

/// What a request queued on a connection comes to: its response head, or the error (with the
/// request, when it never went out).
type Sent = Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<UpstreamBody>>>;

struct Conn {
    sender: SendRequest<UpstreamBody>,
    last_used: Instant,
}

impl Conn {
    /// Whether this connection may still take a request at `now`.
    fn usable(&self, now: Instant, reuse_within: Duration) -> bool {
        !self.sender.is_closed() && now.duration_since(self.last_used) < reuse_within
    }
}

impl H1Pool {
    /// A pool of connections to `base` (`scheme://authority`) made through `connector`.
    pub fn new(base: Uri, connector: Connector, connect_timeout: Duration) -> Self {
        let host = base
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
            .unwrap_or_else(|| http::HeaderValue::from_static("localhost"));
        H1Pool {
            base,
            host,
            connector,
            connect_timeout,
            conns: parking_lot::Mutex::new(Kept::default()),
            reuse_within: REUSE_WITHIN,
        }
    }

    /// Sends `req` (origin-form target; a `Host` is added when it has none) and waits for the
    /// response head.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host.clone());
        }
        let idempotent = req.method().is_idempotent();
        // Kept to send again should the kept connection break under it (below).
        let replay = Replay::of(&req);
        let req = match self.send_on_kept(req) {
            Ok(pending) => match pending.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    // The connection closed before the request went out: nothing was sent.
                    Some(req) => req,
                    // It went out, and the connection broke before a response head: most
                    // likely the origin closing it at its keep-alive timeout as the request
                    // crossed. Once more on a new connection, if the retry rule allows it.
                    None => {
                        let error = UpstreamError::Protocol(chain_text(e.error()));
                        let facts = AttemptFacts {
                            idempotent,
                            replayable: replay.is_some(),
                            sent_to_client: false,
                        };
                        match replay {
                            Some(replay) if may_retry(facts, &error) => replay.request(),
                            _ => return Err(error),
                        }
                    }
                },
            },
            Err(req) => req,
        };
        let mut sender = self.connect().await?;
        let pending = sender.try_send_request(req);
        self.keep(sender);
        pending
            .await
            .map_err(|e| UpstreamError::Protocol(chain_text(e.error())))
    }

    /// Queues `req` on a kept connection that is ready for it, or hands it back when none is.
    #[allow(clippy::result_large_err)]
    fn send_on_kept(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<impl Future<Output = Sent> + use<>, Request<UpstreamBody>> {
        let now = Instant::now();
        let mut kept = self.conns.lock();
        let conns = &mut kept.list;
        // Most recently used first: traffic stays on the warmest connections, so the spare
        // ones age out (and the one taken is the least likely to be closing at the origin's
        // keep-alive timeout). A busy connection costs the walk two atomic loads; closed ones
        // met on the way are dropped.
        let mut i = conns.len();
        while i > 0 {
            i -= 1;
            let sender = &conns[i].sender;
            if sender.is_ready() {
                if !conns[i].usable(now, self.reuse_within) {
                    conns.remove(i);
                    continue;
                }
                let mut conn = conns.remove(i);
                let pending = conn.sender.try_send_request(req);
                conn.last_used = now;
                // To the back: the list stays in order of last use.
                conns.push(conn);
                return Ok(pending);
            }
            if sender.is_closed() {
                conns.remove(i);
            }
        }
        Err(req)
    }

    /// Keeps a new connection for later requests, while there is room.
    fn keep(self: &Arc<Self>, sender: SendRequest<UpstreamBody>) {
        let mut kept = self.conns.lock();
        if kept.list.len() >= MAX_KEPT {
            return;
        }
        kept.list.push(Conn {
            sender,
            last_used: Instant::now(),
        });
        if !kept.reaping {
            kept.reaping = true;
            tokio::spawn(reap(
                Arc::downgrade(self),
                REAP_EVERY.min(self.reuse_within),
            ));
        }
    }

    /// A new connection, its connection task spawned.
    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let mut connector = self.connector.clone();
        let stream = open(&mut connector, &self.base, self.connect_timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(stream)
            .await
            .map_err(|e| UpstreamError::Connect(format!("h1 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "origin connection ended");
            }
        });
        Ok(sender)
    }
}

/// Closes kept connections unused for [`REUSE_WITHIN`] and idle ones beyond [`MAX_IDLE`]
/// (dropping a connection's sender closes it), every `every`, until none is kept or the
/// pool is gone: without it, connections of an origin nobody asks any more would stay open for
/// as long as the origin allowed.
async fn reap(pool: Weak<H1Pool>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut kept = pool.conns.lock();
        kept.list.retain(|c| c.usable(now, pool.reuse_within));
        // Idle ones beyond the cap go, least recently used first (the list's front).
        let idle = kept.list.iter().filter(|c| c.sender.is_ready()).count();
        let mut surplus = idle.saturating_sub(MAX_IDLE);
        kept.list.retain(|c| {
            let drop = surplus > 0 && c.sender.is_ready();
            surplus -= usize::from(drop);
            !drop
        });
        if kept.list.is_empty() {
            kept.reaping = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::connect::HttpConnector;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An origin answering `ok` to every request; counts connections accepted and closed.
    async fn origin() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, c) = (accepted.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if tcp.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (addr, accepted, closed)
    }

    fn pool(addr: std::net::SocketAddr, reuse_within: Duration) -> Arc<H1Pool> {
        let http =
            HttpConnector::new_with_resolver(super::super::resolve::UpstreamResolver::new(&[]));
        let tls = super::super::origin::client_tls(None).unwrap();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let base: Uri = format!("http://{addr}/").parse().unwrap();
        let mut pool = H1Pool::new(base, connector, Duration::from_secs(2));
        pool.reuse_within = reuse_within;
        Arc::new(pool)
    }

    async fn get(pool: &Arc<H1Pool>) -> Bytes {
        let req = Request::get("/")
            .body(UpstreamBody::new(
                Empty::<Bytes>::new().map_err(|never| match never {}),
            ))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), pool.send(req))
            .await
            .unwrap()
            .unwrap();
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn quiet_connections_are_reused_within_the_window_and_closed_after_it() {
        let (addr, accepted, closed) = origin().await;
        let pool = pool(addr, Duration::from_millis(300));
        assert_eq!(get(&pool).await, "ok");
        assert_eq!(get(&pool).await, "ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the second request reused"
        );
        // Nobody asks any more: the reaper closes the connection once the window is over.
        let deadline = Instant::now() + Duration::from_secs(5);
        while closed.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the quiet connection stayed open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(pool.conns.lock().list.is_empty());
        // A later request opens a new connection and starts a new reaper.
        assert_eq!(get(&pool).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert!(pool.conns.lock().reaping);
    }
}
