//! A few multiplexed HTTP/2 connections to a shield, shared by every request of the node and
//! made again when they break.
//!
//! Requests take the connections in turn ([`CONNECTIONS`] of them), so a handful of slow
//! client streams holding flow-control credit, or the shield's cap on concurrent streams, bound
//! one connection's share of the traffic rather than all of it. After a failed connect, further
//! requests fail at once for [`CONNECT_HOLD_DOWN`] instead of queueing behind connects to a dead
//! shield (the shield set moves them to the next shield).
//!
//! hyper-util's pooled client picks connections by the request's authority, but an edge asks a
//! shield for another site's URL: the connection goes to the shield while `:authority` names the
//! site (a `Host` that disagreed with `:authority` would be refused, RFC 9113 §8.3.1). So the
//! connection is hyper's own HTTP/2 client connection, opened to the shield's address.
//!
//! Over TLS the peer must pick `h2` by ALPN; one that does not (an origin speaking only
//! HTTP/1.1) *declines*, and [`H2Connection::try_send`] hands the unsent request back so the
//! caller can take it over HTTP/1.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::resolve::UpstreamResolver;
use super::{UpstreamBody, UpstreamError};

/// The connector of every upstream: TCP through our resolver, TLS for `https://`.
pub type Connector = HttpsConnector<HttpConnector<UpstreamResolver>>;

/// Connections per shield.
pub const CONNECTIONS: usize = 4;

/// How long after a failed connect requests fail at once instead of connecting again.
pub const CONNECT_HOLD_DOWN: Duration = Duration::from_millis(500);

/// Per-stream receive window: a stream whose reader is slow holds at most this much of the
/// connection's window.
const STREAM_WINDOW: u32 = 1024 * 1024;

/// Per-connection receive window.
const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;

/// A shield's (or an origin's) HTTP/2 connections, opened on first use.
pub struct H2Connection {
    slots: Vec<Slot>,
    next: AtomicUsize,
}

/// What a send came to when it did not get a response.
pub enum SendFailure {
    /// The peer did not pick `h2` by ALPN: the request, unsent, is handed back.
    Declined(Box<Request<UpstreamBody>>),
    /// Any other failure.
    Failed(UpstreamError),
}

impl From<UpstreamError> for SendFailure {
    fn from(e: UpstreamError) -> Self {
        SendFailure::Failed(e)
    }
}

struct Slot {
    /// `scheme://host:port` of the shield.
    base: Uri,
    connector: tokio::sync::Mutex<Connector>,
    sender: parking_lot::Mutex<Option<SendRequest<UpstreamBody>>>,
    /// The last failed connect, answered at once for [`CONNECT_HOLD_DOWN`].
    failed: parking_lot::Mutex<Option<(Instant, UpstreamError)>>,
    connect_timeout: Duration,
}

impl H2Connection {
    /// Connections to `base`, made with `connector` (which applies the connect timeout).
    pub fn new(base: Uri, connector: Connector, connect_timeout: Duration) -> Self {
        let slots = (0..CONNECTIONS)
            .map(|_| Slot {
                base: base.clone(),
                connector: tokio::sync::Mutex::new(connector.clone()),
                sender: parking_lot::Mutex::new(None),
                failed: parking_lot::Mutex::new(None),
                connect_timeout,
            })
            .collect();
        H2Connection {
            slots,
            next: AtomicUsize::new(0),
        }
    }

    /// Sends `req` (an absolute URI naming the site) on the next connection in turn. A
    /// connection found closed (GOAWAY, reset) is forgotten, and the request tries once more on
    /// a fresh one if it was not sent.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.try_send(req).await.map_err(|f| match f {
            SendFailure::Declined(_) => {
                UpstreamError::Connect("the upstream did not pick h2 by ALPN".into())
            }
            SendFailure::Failed(e) => e,
        })
    }

    /// As [`H2Connection::send`], but a peer that declines h2 gives the request back.
    pub async fn try_send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendFailure> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].send(req).await
    }
}

/// A connection attempt's outcome short of an error.
enum Opened {
    Sender(SendRequest<UpstreamBody>),
    Declined,
}

impl Slot {
    /// A sender on a live connection: the current one, or a new one.
    async fn sender(&self) -> Result<Opened, UpstreamError> {
        if let Some(s) = self.live() {
            return Ok(Opened::Sender(s));
        }
        self.recently_failed()?;
        // One connect at a time: requests arriving meanwhile wait for it and share it.
        let mut connector = self.connector.lock().await;
        if let Some(s) = self.live() {
            return Ok(Opened::Sender(s));
        }
        self.recently_failed()?;
        let stream = open(&mut connector, &self.base, self.connect_timeout)
            .await
            .map_err(|e| self.connect_failed(e))?;
        if self.base.scheme() == Some(&http::uri::Scheme::HTTPS)
            && !stream.connected().is_negotiated_h2()
        {
            return Ok(Opened::Declined);
        }
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(stream)
            .await
            .map_err(|e| {
                self.connect_failed(UpstreamError::Connect(format!("h2 handshake: {e}")))
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "shield connection ended");
            }
        });
        *self.sender.lock() = Some(sender.clone());
        Ok(Opened::Sender(sender))
    }

    fn live(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut held = self.sender.lock();
        match held.as_ref() {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                *held = None;
                None
            }
            None => None,
        }
    }

    fn recently_failed(&self) -> Result<(), UpstreamError> {
        match &*self.failed.lock() {
            Some((at, e)) if at.elapsed() < CONNECT_HOLD_DOWN => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn connect_failed(&self, e: UpstreamError) -> UpstreamError {
        *self.failed.lock() = Some((Instant::now(), e.clone()));
        e
    }

    fn forget(&self) {
        *self.sender.lock() = None;
    }

    async fn send(&self, req: Request<UpstreamBody>) -> Result<Response<Incoming>, SendFailure> {
        let Opened::Sender(mut sender) = self.sender().await? else {
            return Err(SendFailure::Declined(Box::new(req)));
        };
        if sender.ready().await.is_err() {
            // Closed since it was cached (GOAWAY): nothing was sent; once more, fresh.
            self.forget();
            let Opened::Sender(fresh) = self.sender().await? else {
                return Err(SendFailure::Declined(Box::new(req)));
            };
            sender = fresh;
            sender.ready().await.map_err(|e| {
                UpstreamError::Refused(format!("upstream h2 connection closed: {e}"))
            })?;
        }
        sender.send_request(req).await.map_err(|e| {
            self.forget();
            SendFailure::Failed(UpstreamError::Protocol(e.to_string()))
        })
    }
}

/// The transport `connector` makes to `base` (TCP, and TLS for `https`) within `timeout`.
pub(super) async fn open(
    connector: &mut Connector,
    base: &Uri,
    timeout: Duration,
) -> Result<<Connector as Service<Uri>>::Response, UpstreamError> {
    match tokio::time::timeout(timeout, connector.call(base.clone())).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(connect_error(e.as_ref())),
        Err(_) => Err(UpstreamError::ConnectTimeout),
    }
}

fn connect_error(e: &(dyn std::error::Error + Send + Sync + 'static)) -> UpstreamError {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::TimedOut => UpstreamError::ConnectTimeout,
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                    UpstreamError::Refused(io.to_string())
                }
                _ => UpstreamError::Connect(io.to_string()),
            };
        }
        next = err.source();
    }
    UpstreamError::Connect(e.to_string())
}
