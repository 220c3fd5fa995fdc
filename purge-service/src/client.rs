//! The HTTP client nodes use to talk to each other: Raft RPCs and proxied API requests.
//!
//! One pooled hyper client per node; every call has a deadline, and errors say whether the
//! peer could not be reached at all (Raft backs off) or failed mid-way.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Header carrying `TIERCEL_CLUSTER_SECRET` on `/raft/*` calls.
pub const CLUSTER_SECRET_HEADER: &str = "x-tiercel-cluster-secret";
/// Header marking a request proxied from a follower, so it is never proxied twice.
pub const FORWARDED_HEADER: &str = "x-tiercel-forwarded-by";

/// Why a call to another node failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made (peer down, refused, unresolvable).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// `host:port` of the peer.
        addr: String,
        /// What the connector said.
        reason: String,
    },
    /// The peer did not answer within the deadline.
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout {
        /// `host:port` of the peer.
        addr: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The exchange failed after connecting (reset, malformed response).
    #[error("request to {addr} failed: {reason}")]
    Http {
        /// `host:port` of the peer.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The request could not be built (bad address or header).
    #[error("bad request to {addr}: {reason}")]
    Build {
        /// `host:port` of the peer.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

/// A pooled HTTP/1.1 client with deadlines.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with a short connect timeout (peers are on the same network).
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        connector.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            // Below the server's 10 s header-read timeout, so a pooled connection is never
            // reused just as the peer closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector);
        Self { inner }
    }

    /// Builds a request to `http://{addr}{path}`.
    pub fn builder(
        addr: &str,
        method: http::Method,
        path_and_query: &str,
    ) -> Result<http::request::Builder, ClientError> {
        let uri: http::Uri = format!("http://{addr}{path_and_query}").parse().map_err(
            |e: http::uri::InvalidUri| ClientError::Build {
                addr: addr.to_string(),
                reason: e.to_string(),
            },
        )?;
        Ok(Request::builder().method(method).uri(uri))
    }

    /// Sends `req` to `addr` and reads the whole answer within `timeout`.
    pub async fn send(
        &self,
        addr: &str,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Bytes>, ClientError> {
        let call = async {
            let resp = self.inner.request(req).await.map_err(|e| {
                if e.is_connect() {
                    ClientError::Connect {
                        addr: addr.to_string(),
                        reason: error_chain(&e),
                    }
                } else {
                    ClientError::Http {
                        addr: addr.to_string(),
                        reason: error_chain(&e),
                    }
                }
            })?;
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| ClientError::Http {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, bytes))
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                addr: addr.to_string(),
                timeout,
            }),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
