//! The origin as an upstream: a pooled HTTP/1.1 client (TLS when the origin URL is https).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;

use super::h2conn::H2Connection;
use super::{Upstream, UpstreamBody, UpstreamCtx, UpstreamError, UpstreamTimeouts};

/// An origin URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OriginUrlError {
    /// Not an absolute http(s) URL.
    #[error("origin must be http://host[:port] or https://host[:port], got {0:?}")]
    Invalid(String),
    /// Carries a path or query: requests keep their own.
    #[error("origin must not carry a path or query, got {0:?}")]
    HasPath(String),
    /// The TLS client could not be set up (bad CA certificates).
    #[error("origin TLS: {0}")]
    Tls(String),
}

/// The TLS client configuration for upstreams: `roots` when given, else Mozilla's.
fn client_tls(
    roots: Option<&[CertificateDer<'static>]>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(certs) => {
            for cert in certs {
                store.add(cert.clone())?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// How to speak to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireProtocol {
    /// HTTP/1.1, a pool of keep-alive connections (one request each at a time).
    Http1,
    /// HTTP/2 (prior knowledge on cleartext, ALPN on TLS): one multiplexed connection carries
    /// every concurrent request, as edges speak to their shields.
    Http2,
}

/// A pooled client for one origin (or one shield).
pub struct OriginUpstream {
    scheme: Scheme,
    authority: Authority,
    transport: Transport,
    timeouts: UpstreamTimeouts,
}

enum Transport {
    /// HTTP/1.1 keep-alive pool, keyed by the upstream's own authority.
    Http1(Box<Client<HttpsConnector<HttpConnector>, UpstreamBody>>),
    /// One HTTP/2 connection; requests name the site in `:authority`.
    Http2(Arc<H2Connection>),
}

impl OriginUpstream {
    /// Builds a pooled HTTP/1.1 client for `origin` (e.g. `http://127.0.0.1:9000`), TLS verified
    /// against Mozilla's roots.
    pub fn new(origin: &str, timeouts: UpstreamTimeouts) -> Result<Arc<Self>, OriginUrlError> {
        Self::with_protocol(origin, timeouts, WireProtocol::Http1, None)
    }

    /// Builds a client for `origin` speaking `protocol`, verifying TLS against `roots` (the
    /// certificates of `origin_ca_file`) or, when `None`, Mozilla's roots.
    pub fn with_protocol(
        origin: &str,
        timeouts: UpstreamTimeouts,
        protocol: WireProtocol,
        roots: Option<&[CertificateDer<'static>]>,
    ) -> Result<Arc<Self>, OriginUrlError> {
        let uri: Uri = origin
            .parse()
            .map_err(|_| OriginUrlError::Invalid(origin.to_string()))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| OriginUrlError::Invalid(origin.to_string()))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(OriginUrlError::Invalid(origin.to_string()));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| OriginUrlError::Invalid(origin.to_string()))?;
        if uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str() != "/" && !pq.as_str().is_empty())
        {
            return Err(OriginUrlError::HasPath(origin.to_string()));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_tls(roots).map_err(|e| OriginUrlError::Tls(e.to_string()))?)
            .https_or_http();
        let transport = match protocol {
            WireProtocol::Http1 => Transport::Http1(Box::new(
                Client::builder(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(50))
                    .pool_max_idle_per_host(256)
                    // HTTP/1.1 even over TLS: with h2, `:authority` would have to be the
                    // origin's name (the pool keys on it) while `Host` carries the site's, and
                    // RFC 9113 §8.3.1 lets a server refuse that disagreement.
                    .build(connector.enable_http1().wrap_connector(http)),
            )),
            WireProtocol::Http2 => {
                let base = Uri::builder()
                    .scheme(scheme.clone())
                    .authority(authority.clone())
                    .path_and_query("/")
                    .build()
                    .map_err(|_| OriginUrlError::Invalid(origin.to_string()))?;
                Transport::Http2(Arc::new(H2Connection::new(
                    base,
                    connector.enable_http2().wrap_connector(http),
                    timeouts.connect,
                )))
            }
        };
        Ok(Arc::new(OriginUpstream {
            scheme,
            authority,
            transport,
            timeouts,
        }))
    }
}

impl Upstream for OriginUpstream {
    fn send(
        &self,
        mut req: Request<UpstreamBody>,
        _ctx: &UpstreamCtx,
    ) -> BoxFuture<'static, Result<Response<Incoming>, UpstreamError>> {
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let first_byte = self.timeouts.first_byte;
        match &self.transport {
            Transport::Http1(client) => {
                let uri = Uri::builder()
                    .scheme(self.scheme.clone())
                    .authority(self.authority.clone())
                    .path_and_query(pq)
                    .build();
                let client = Client::clone(client);
                Box::pin(async move {
                    *req.uri_mut() = uri.map_err(|e| UpstreamError::Request(e.to_string()))?;
                    *req.version_mut() = http::Version::HTTP_11;
                    match tokio::time::timeout(first_byte, client.request(req)).await {
                        Err(_) => Err(UpstreamError::FirstByteTimeout),
                        Ok(Err(e)) => Err(UpstreamError::from_client(&e)),
                        Ok(Ok(resp)) => Ok(resp),
                    }
                })
            }
            Transport::Http2(conn) => {
                // `:authority` is the site the request is for (its Host), not the upstream.
                let site = req
                    .headers_mut()
                    .remove(http::header::HOST)
                    .and_then(|h| h.to_str().ok().map(str::to_owned))
                    .unwrap_or_else(|| self.authority.to_string());
                let uri = Uri::builder()
                    .scheme(self.scheme.clone())
                    .authority(site)
                    .path_and_query(pq)
                    .build();
                let conn = conn.clone();
                Box::pin(async move {
                    *req.uri_mut() = uri.map_err(|e| UpstreamError::Request(e.to_string()))?;
                    *req.version_mut() = http::Version::HTTP_2;
                    match tokio::time::timeout(first_byte, conn.send(req)).await {
                        Err(_) => Err(UpstreamError::FirstByteTimeout),
                        Ok(r) => r,
                    }
                })
            }
        }
    }

    fn idle_timeout(&self) -> Duration {
        self.timeouts.idle
    }

    fn describe(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}
