//! The HTTP client members use to talk to each other: Raft RPCs, writes forwarded to the
//! leader, token imports and usage queries.
//!
//! One pooled hyper client per node, plain HTTP or TLS like the node's own listeners, and every
//! request carries the cluster secret. Every call has a deadline, and errors say whether the
//! peer could not be reached at all (Raft backs off) or failed mid-way.

use std::time::Duration;

use crate::member_auth::{MEMBER_HEADER, MemberKey, now_secs};
use crate::types::NodeId;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use tiercel_cluster::tls::TlsError;

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

/// A pooled HTTP/1.1 client with deadlines, speaking to other members as a member.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    scheme: &'static str,
    key: Option<MemberKey>,
    me: NodeId,
}

impl HttpClient {
    /// A client with a short connect timeout (peers are on the same network), dialing over TLS
    /// verified by `tls` when given, and proving with `key` that member `me` sends each
    /// request.
    pub fn new(
        tls: Option<ClientConfig>,
        key: Option<MemberKey>,
        me: NodeId,
    ) -> Result<Self, TlsError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(1)));
        http.set_nodelay(true);
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Without TLS the config is never used: `https_or_http` passes http:// URLs through.
        let tls = match tls {
            Some(t) => t,
            None => tiercel_cluster::tls::trust_nothing()?,
        };
        let inner = Client::builder(TokioExecutor::new())
            // Below the server's idle timeout, so a pooled connection is never reused just as
            // the peer closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build(tiercel_cluster::tls::connector(http, tls));
        Ok(Self {
            inner,
            scheme,
            key,
            me,
        })
    }

    /// Builds a request to member `to` at `{scheme}://{addr}{path}`, carrying a member proof.
    pub fn builder(
        &self,
        addr: &str,
        to: NodeId,
        method: http::Method,
        path_and_query: &str,
    ) -> Result<http::request::Builder, ClientError> {
        let uri: http::Uri = format!("{}://{addr}{path_and_query}", self.scheme)
            .parse()
            .map_err(|e: http::uri::InvalidUri| ClientError::Build {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        let mut b = Request::builder().method(method.clone()).uri(uri);
        if let Some(key) = &self.key {
            let proof = key.sign(method.as_str(), path_and_query, self.me, to, now_secs());
            if let Ok(mut v) = HeaderValue::from_str(&proof) {
                v.set_sensitive(true);
                b = b.header(MEMBER_HEADER, v);
            }
        }
        Ok(b)
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
