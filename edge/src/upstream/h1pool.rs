//! HTTP/1.1 connections to one origin, kept alive and reused.
//!
//! A connection is either idle in the pool's list or owned by the one exchange using it
//! (`h1conn`): the asking task writes the request and reads the response itself, and the
//! response body hands the connection back when its last byte is in.
//!
//! ```text
//! send ─▶ most recently idle connection, if the origin has not closed it (checked without
//!     │    a system call unless the socket turned readable) and it is not past REUSE_WITHIN
//!     │      └─ none ─▶ a new connection
//!     ├─▶ exchange on it: request written, response head read
//!     │      └─ the kept connection broke before a byte of response ─▶ once more, on a new
//!     │           connection, when the request has no body and an idempotent method
//!     │           (`retry::may_retry`)
//!     └─▶ body read to its end ─▶ back to the list (the least recently idle one closed when
//!          MAX_IDLE are there), unless the origin or the framing said otherwise
//!
//! reaper, every 10 s ─▶ closes connections idle for REUSE_WITHIN
//! ```
//!
//! hyper-util's pooled client, and then hyper's own connections, were used here before: both
//! ran a task per connection and passed every request and response through channels to it,
//! which for a 1 KiB miss was a fifth of the node's instructions.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri, header};
use hyper_util::rt::TokioIo;

use super::h1conn::{Conn, H1Body, encode};
use super::h2conn::{Connector, open};
use super::retry::{AttemptFacts, may_retry};
use super::{UpstreamBody, UpstreamError};

/// A connection idle for this long is not used again: origins commonly close keep-alive
/// connections after 60 s or more, and one closing just as a request goes out would fail it.
/// (hyper-util's pool, used here before, dropped idle connections after 50 s as well.)
pub const REUSE_WITHIN: Duration = Duration::from_secs(50);

/// Idle connections kept; the least recently idle one is closed to keep another beyond it.
/// (Busy ones are bounded by the node's fill slots and client connections.)
pub const MAX_IDLE: usize = 256;

/// How often connections past [`REUSE_WITHIN`] are closed while no request takes them.
const REAP_EVERY: Duration = Duration::from_secs(10);

/// The kept-alive HTTP/1.1 connections to one origin. See the module docs.
pub struct H1Pool {
    /// Where connections go (`scheme://authority`).
    base: Uri,
    /// `authority` for requests without a `Host` of their own.
    host: http::HeaderValue,
    connector: Connector,
    connect_timeout: Duration,
    /// Idle connections, least recently idle first.
    idle: parking_lot::Mutex<Idle>,
    /// [`REUSE_WITHIN`], shorter in tests.
    reuse_within: Duration,
}

/// The idle connections and whether a reaper task watches them.
#[derive(Default)]
struct Idle {
    #[expect(
        clippy::vec_box,
        reason = "a connection moves between this list, its exchange and its body: a pointer, \
                  not its TLS state, is what moves"
    )]
    list: Vec<Box<Conn>>,
    reaping: bool,
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
            idle: parking_lot::Mutex::new(Idle::default()),
            reuse_within: REUSE_WITHIN,
        }
    }

    /// Sends `req` (origin-form target; a `Host` is added when it has none) and waits for the
    /// response head.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<H1Body>, UpstreamError> {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host.clone());
        }
        let idempotent = req.method().is_idempotent();
        let head_request = req.method() == http::Method::HEAD;
        let (head, mut body) = encode(req);
        // Without a body, the head's bytes are the whole request: sent again as they are.
        let facts = AttemptFacts {
            idempotent,
            replayable: body.is_none(),
            sent_to_client: false,
        };
        if let Some(conn) = self.checkout() {
            match conn.exchange(&head, body.take(), head_request, self).await {
                Ok(resp) => return Ok(resp),
                // Most likely the origin closing the connection at its keep-alive timeout as
                // the request crossed: once more on a new connection, if the rule allows it.
                Err(failed) if failed.unanswered && may_retry(facts, &failed.error) => {}
                Err(failed) => return Err(failed.error),
            }
        }
        let conn = self.connect().await?;
        conn.exchange(&head, body, head_request, self)
            .await
            .map_err(|failed| failed.error)
    }

    /// The most recently idle connection still open, if any.
    fn checkout(&self) -> Option<Box<Conn>> {
        let now = Instant::now();
        loop {
            let mut conn = self.idle.lock().list.pop()?;
            // Most recently idle first: traffic stays on the warmest connections, so spare
            // ones age out, and the one taken is the least likely to be closing at the
            // origin's keep-alive timeout. Stale and closed ones are dropped on the way.
            if now.duration_since(conn.last_used) < self.reuse_within && conn.is_open() {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn`, whose last exchange ended cleanly, for later requests.
    pub(super) fn put_back(self: &Arc<Self>, mut conn: Box<Conn>) {
        conn.last_used = Instant::now();
        let mut idle = self.idle.lock();
        let evicted = (idle.list.len() >= MAX_IDLE).then(|| idle.list.remove(0));
        idle.list.push(conn);
        if !idle.reaping {
            idle.reaping = true;
            tokio::spawn(reap(
                Arc::downgrade(self),
                REAP_EVERY.min(self.reuse_within),
            ));
        }
        drop(idle);
        drop(evicted);
    }

    /// A new connection.
    async fn connect(&self) -> Result<Box<Conn>, UpstreamError> {
        let mut connector = self.connector.clone();
        let stream = open(&mut connector, &self.base, self.connect_timeout).await?;
        Ok(Conn::new(TokioIo::new(stream)))
    }
}

/// Closes connections idle for [`REUSE_WITHIN`], every `every`, until none is kept or the pool
/// is gone: without it, connections of an origin nobody asks any more would stay open for as
/// long as the origin allowed.
async fn reap(pool: Weak<H1Pool>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut idle = pool.idle.lock();
        idle.list
            .retain(|c| now.duration_since(c.last_used) < pool.reuse_within);
        if idle.list.is_empty() {
            idle.reaping = false;
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
        assert!(pool.idle.lock().list.is_empty());
        // A later request opens a new connection and starts a new reaper.
        assert_eq!(get(&pool).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert!(pool.idle.lock().reaping);
    }
}
