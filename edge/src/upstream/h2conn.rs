//! One multiplexed HTTP/2 connection to a shield, shared by every request of the node and made
//! again when it breaks.
//!
//! hyper-util's pooled client picks connections by the request's authority, but an edge asks a
//! shield for another site's URL: the connection goes to the shield while `:authority` names the
//! site (a `Host` that disagreed with `:authority` would be refused, RFC 9113 §8.3.1). So the
//! connection is hyper's own HTTP/2 client connection, opened to the shield's address.

use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::{UpstreamBody, UpstreamError};

/// A shield's HTTP/2 connection, opened on first use.
pub struct H2Connection {
    /// `scheme://host:port` of the shield.
    base: Uri,
    connector: tokio::sync::Mutex<HttpsConnector<HttpConnector>>,
    sender: parking_lot::Mutex<Option<SendRequest<UpstreamBody>>>,
    connect_timeout: Duration,
}

impl H2Connection {
    /// A connection to `base`, made with `connector` (which applies the connect timeout).
    pub fn new(
        base: Uri,
        connector: HttpsConnector<HttpConnector>,
        connect_timeout: Duration,
    ) -> Self {
        H2Connection {
            base,
            connector: tokio::sync::Mutex::new(connector),
            sender: parking_lot::Mutex::new(None),
            connect_timeout,
        }
    }

    /// A sender on a live connection: the current one, or a new one.
    async fn sender(&self) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        if let Some(s) = self.live() {
            return Ok(s);
        }
        // One connect at a time: requests arriving meanwhile wait for it and share it.
        let mut connector = self.connector.lock().await;
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let stream = tokio::time::timeout(self.connect_timeout, connector.call(self.base.clone()))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(|e| connect_error(e.as_ref()))?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(4 * 1024 * 1024)
            .initial_connection_window_size(32 * 1024 * 1024)
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(stream)
            .await
            .map_err(|e| UpstreamError::Connect(format!("h2 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "shield connection ended");
            }
        });
        *self.sender.lock() = Some(sender.clone());
        Ok(sender)
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

    /// Sends `req` (an absolute URI naming the site) on the connection.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = self.sender().await?;
        sender
            .ready()
            .await
            .map_err(|e| UpstreamError::Refused(format!("shield connection closed: {e}")))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))
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
