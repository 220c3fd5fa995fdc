//! The origin (or one shield) as an upstream: pooled HTTP/1.1, multiplexed HTTP/2, or whichever
//! the origin picks by ALPN; TLS when the URL is https.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;

use super::h1pool::H1Pool;
use super::h2conn::{H2Connection, SendFailure};
use super::request_clock::RequestClock;
use super::resolve::UpstreamResolver;
use super::{
    ResponseBody, Upstream, UpstreamBody, UpstreamCtx, UpstreamError, UpstreamResponse,
    UpstreamTimeouts,
};

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
pub(super) fn client_tls(
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
    /// HTTP/2 (prior knowledge on cleartext, ALPN on TLS): a few multiplexed connections carry
    /// every concurrent request, as edges speak to their shields.
    Http2,
    /// Over TLS, HTTP/2 when the upstream picks `h2` by ALPN and HTTP/1.1 when it does not;
    /// HTTP/1.1 over cleartext (there is nothing to negotiate with).
    Negotiated,
}

/// How often a declined ALPN offer is made again, in case the origin has learnt h2.
const RENEGOTIATE_EVERY: Duration = Duration::from_secs(600);

/// How to reach an upstream beyond its URL.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// The HTTP version(s) to speak.
    pub protocol: WireProtocol,
    /// CA certificates for TLS (`origin_ca_file`); Mozilla's roots when `None`.
    pub roots: Option<&'a [CertificateDer<'static>]>,
    /// Addresses to connect to instead of resolving the URL's host (`origin_addresses`).
    pub addresses: &'a [SocketAddr],
}

impl Reach<'_> {
    /// HTTP/1.1, Mozilla's roots, the system resolver.
    pub const DEFAULT: Reach<'static> = Reach {
        protocol: WireProtocol::Http1,
        roots: None,
        addresses: &[],
    };
}

/// A pooled client for one origin (or one shield).
pub struct OriginUpstream {
    scheme: Scheme,
    authority: Authority,
    transport: Transport,
    timeouts: UpstreamTimeouts,
}

type H1Client = Arc<H1Pool>;

enum Transport {
    /// HTTP/1.1 keep-alive connections to the upstream's address (`h1pool`).
    Http1(H1Client),
    /// HTTP/2 connections; requests name the site in `:authority`.
    Http2(Arc<H2Connection>),
    /// HTTP/2 while the upstream picks it by ALPN, else the HTTP/1.1 pool.
    Negotiated {
        h2: Arc<H2Connection>,
        h1: H1Client,
        /// When the upstream last declined h2: HTTP/1.1 until [`RENEGOTIATE_EVERY`] passes.
        declined_at: Arc<parking_lot::Mutex<Option<Instant>>>,
    },
}

impl OriginUpstream {
    /// Builds a pooled HTTP/1.1 client for `origin` (e.g. `http://127.0.0.1:9000`), TLS verified
    /// against Mozilla's roots.
    pub fn new(origin: &str, timeouts: UpstreamTimeouts) -> Result<Arc<Self>, OriginUrlError> {
        Self::connect(origin, timeouts, Reach::DEFAULT)
    }

    /// Builds a client for `origin` reached as `reach` says.
    pub fn connect(
        origin: &str,
        timeouts: UpstreamTimeouts,
        reach: Reach<'_>,
    ) -> Result<Arc<Self>, OriginUrlError> {
        let invalid = || OriginUrlError::Invalid(origin.to_string());
        let uri: Uri = origin.parse().map_err(|_| invalid())?;
        let scheme = uri.scheme().cloned().ok_or_else(invalid)?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(invalid());
        }
        let authority = uri.authority().cloned().ok_or_else(invalid)?;
        if uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str() != "/" && !pq.as_str().is_empty())
        {
            return Err(OriginUrlError::HasPath(origin.to_string()));
        }
        let mut http = HttpConnector::new_with_resolver(UpstreamResolver::new(reach.addresses));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = client_tls(reach.roots).map_err(|e| OriginUrlError::Tls(e.to_string()))?;
        let builder = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
        };
        let base = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| invalid())?;
        let h1 = || -> H1Client {
            Arc::new(H1Pool::new(
                base.clone(),
                builder().enable_http1().wrap_connector(http.clone()),
                timeouts.connect,
            ))
        };
        let transport = match reach.protocol {
            WireProtocol::Http1 => Transport::Http1(h1()),
            WireProtocol::Negotiated if scheme == Scheme::HTTP => Transport::Http1(h1()),
            WireProtocol::Http2 => Transport::Http2(Arc::new(H2Connection::new(
                base,
                builder().enable_http2().wrap_connector(http.clone()),
                timeouts.connect,
            ))),
            WireProtocol::Negotiated => Transport::Negotiated {
                h2: Arc::new(H2Connection::new(
                    base.clone(),
                    builder().enable_all_versions().wrap_connector(http.clone()),
                    timeouts.connect,
                )),
                h1: h1(),
                declined_at: Arc::default(),
            },
        };
        Ok(Arc::new(OriginUpstream {
            scheme,
            authority,
            transport,
            timeouts,
        }))
    }

    /// The HTTP/1.1 request target for `pq`: origin-form (the connection already goes to the
    /// origin), while `Host` names the site.
    fn h1_uri(&self, pq: String) -> Result<Uri, UpstreamError> {
        Uri::try_from(pq).map_err(|e| UpstreamError::Request(e.to_string()))
    }

    /// `req` made ready for HTTP/1.1.
    fn for_h1(&self, req: &mut Request<UpstreamBody>) -> Result<(), UpstreamError> {
        // A target already in origin form (what the engine builds from its canonical target)
        // is kept as it is: parsing it again would check every byte a second time.
        let uri = req.uri();
        if uri.scheme().is_some() || uri.authority().is_some() || uri.path_and_query().is_none() {
            *req.uri_mut() = self.h1_uri(path_and_query(req))?;
        }
        *req.version_mut() = http::Version::HTTP_11;
        Ok(())
    }

    /// `req` made ready for HTTP/2: `:authority` is the site the request is for (its `Host`,
    /// which is removed), not the upstream.
    fn for_h2(&self, req: &mut Request<UpstreamBody>) -> Result<(), UpstreamError> {
        let pq = path_and_query(req);
        let site = req
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|h| h.to_str().ok().map(str::to_owned))
            .unwrap_or_else(|| self.authority.to_string());
        *req.uri_mut() = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(site)
            .path_and_query(pq)
            .build()
            .map_err(|e| UpstreamError::Request(e.to_string()))?;
        *req.version_mut() = http::Version::HTTP_2;
        Ok(())
    }
}

fn path_and_query(req: &Request<UpstreamBody>) -> String {
    req.uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string()
}

impl Upstream for OriginUpstream {
    fn send(
        &self,
        mut req: Request<UpstreamBody>,
        _ctx: &UpstreamCtx,
    ) -> BoxFuture<'static, Result<UpstreamResponse, UpstreamError>> {
        let UpstreamTimeouts {
            first_byte, idle, ..
        } = self.timeouts;
        match &self.transport {
            Transport::Http1(client) => {
                let prepared = self.for_h1(&mut req);
                let client = H1Client::clone(client);
                Box::pin(async move {
                    prepared?;
                    let (req, clock) = RequestClock::attach(req);
                    let resp = clock.run(first_byte, idle, client.send(req)).await?;
                    Ok(resp.map(ResponseBody::H1))
                })
            }
            Transport::Http2(conn) => {
                let prepared = self.for_h2(&mut req);
                let conn = conn.clone();
                Box::pin(async move {
                    prepared?;
                    let (req, clock) = RequestClock::attach(req);
                    let resp = clock.run(first_byte, idle, conn.send(req)).await?;
                    Ok(resp.map(ResponseBody::H2))
                })
            }
            Transport::Negotiated {
                h2,
                h1,
                declined_at,
            } => {
                let client = H1Client::clone(h1);
                let speaks_h1 = declined_at
                    .lock()
                    .is_some_and(|at| at.elapsed() < RENEGOTIATE_EVERY);
                if speaks_h1 {
                    let prepared = self.for_h1(&mut req);
                    return Box::pin(async move {
                        prepared?;
                        let (req, clock) = RequestClock::attach(req);
                        let resp = clock.run(first_byte, idle, client.send(req)).await?;
                        Ok(resp.map(ResponseBody::H1))
                    });
                }
                let site = req.headers().get(http::header::HOST).cloned();
                let h1_uri = self.h1_uri(path_and_query(&req));
                let prepared = self.for_h2(&mut req);
                let (h2, declined_at) = (h2.clone(), declined_at.clone());
                Box::pin(async move {
                    prepared?;
                    let (req, clock) = RequestClock::attach(req);
                    let exchange = async {
                        match h2.try_send(req).await {
                            Ok(resp) => Ok(resp.map(ResponseBody::H2)),
                            Err(SendFailure::Failed(e)) => Err(e),
                            Err(SendFailure::Declined(req)) => {
                                let mut req = *req;
                                // Nothing was sent: the same request over HTTP/1.1.
                                *declined_at.lock() = Some(Instant::now());
                                *req.uri_mut() = h1_uri?;
                                *req.version_mut() = http::Version::HTTP_11;
                                if let Some(site) = site {
                                    req.headers_mut().insert(http::header::HOST, site);
                                }
                                Ok(client.send(req).await?.map(ResponseBody::H1))
                            }
                        }
                    };
                    clock.run(first_byte, idle, exchange).await
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
