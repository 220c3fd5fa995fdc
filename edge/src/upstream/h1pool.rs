//! HTTP/1.1 connections to one origin, kept alive and reused.
//!
//! hyper-util's pooled client keys its idle lists by scheme and authority, clones and hashes
//! them on every request, and takes a connection out of its list for each request and back in
//! when the response is over; for an upstream that is one address, that bookkeeping was 8 % of
//! a miss's instructions. Here a connection stays in one list from its first request to its
//! end:
//!
//! ```text
//! send ─▶ least recently used connection whose last response is over (closed or long-quiet
//!     │    ones met on the way dropped), moved to the back of the list
//!     │      └─ none ─▶ a new connection (kept in the list while there is room)
//!     └─▶ request queued on it, connection left in the list (busy until its response ends)
//!           └─ it closed before taking the request ─▶ once more, on a new connection
//! ```
//!
//! The request is queued on the connection before the lock is released, so two requests never
//! pick the same idle connection.

use std::time::{Duration, Instant};

use http::{Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use tower_service::Service;

use super::error::chain_text;
use super::h2conn::{Connector, connect_error};
use super::{UpstreamBody, UpstreamError};

/// A connection not used for this long is not used again: origins commonly close keep-alive
/// connections after 60 s or more, and one closing just as a request goes out would fail it.
/// (hyper-util's pool, used here before, dropped idle connections after 50 s as well.)
pub const REUSE_WITHIN: Duration = Duration::from_secs(50);

/// Connections kept (busy or idle); beyond it, a connection serves its request and closes.
pub const MAX_KEPT: usize = 256;

/// The kept-alive HTTP/1.1 connections to one origin. See the module docs.
pub struct H1Pool {
    /// Where connections go (`scheme://authority`).
    base: Uri,
    /// `authority` for requests without a `Host` of their own.
    host: http::HeaderValue,
    connector: Connector,
    connect_timeout: Duration,
    conns: parking_lot::Mutex<Vec<Kept>>,
}

/// What a request queued on a connection comes to: its response head, or the error (with the
/// request, when it never went out).
type Sent = Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<UpstreamBody>>>;

struct Kept {
    sender: SendRequest<UpstreamBody>,
    last_used: Instant,
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
            conns: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Sends `req` (origin-form target; a `Host` is added when it has none) and waits for the
    /// response head.
    pub async fn send(
        &self,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host.clone());
        }
        let req = match self.send_on_kept(req) {
            Ok(pending) => match pending.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    // The connection closed before the request went out: nothing was sent.
                    Some(req) => req,
                    None => return Err(UpstreamError::Protocol(chain_text(e.error()))),
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
        let mut conns = self.conns.lock();
        // Least recently used first: those are the likeliest to be done with their last
        // response, so the walk is short however many connections are kept. Closed and
        // long-quiet ones met on the way are dropped.
        let mut i = 0;
        while i < conns.len() {
            let kept = &conns[i];
            if kept.sender.is_closed() || now.duration_since(kept.last_used) >= REUSE_WITHIN {
                conns.remove(i);
                continue;
            }
            if kept.sender.is_ready() {
                let mut kept = conns.remove(i);
                let pending = kept.sender.try_send_request(req);
                kept.last_used = now;
                // To the back: the list stays in order of last use.
                conns.push(kept);
                return Ok(pending);
            }
            i += 1;
        }
        Err(req)
    }

    /// Keeps a new connection for later requests, while there is room.
    fn keep(&self, sender: SendRequest<UpstreamBody>) {
        let mut conns = self.conns.lock();
        if conns.len() < MAX_KEPT {
            conns.push(Kept {
                sender,
                last_used: Instant::now(),
            });
        }
    }

    /// A new connection, its connection task spawned.
    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let mut connector = self.connector.clone();
        let stream =
            match tokio::time::timeout(self.connect_timeout, connector.call(self.base.clone()))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(connect_error(e.as_ref())),
                Err(_) => return Err(UpstreamError::ConnectTimeout),
            };
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
