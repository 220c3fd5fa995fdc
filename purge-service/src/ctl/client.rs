//! The API client behind `tiercelctl`: one request, tried on each configured server in turn.
//!
//! A server is skipped when it cannot be reached, times out, or answers 502/503/504 (no leader,
//! or a proxy in front of a dead node). A 4xx is the caller's mistake and the next server would
//! say the same, so it is returned at once. Purges carry an `Idempotency-Key`, so a purge that
//! timed out on one server and is retried on the next counts once.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use tiercel_cluster::purge::wire::ApiError;
use tiercel_cluster::secret::Secret;

use super::CtlError;

/// An answer from one server.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl ApiResponse {
    /// Decodes a successful JSON answer, or turns an error answer into [`CtlError::Api`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CtlError> {
        self.ok()?;
        serde_json::from_slice(&self.body).map_err(|e| CtlError::Decode(e.to_string()))
    }

    /// Succeeds on a 2xx; an error answer becomes [`CtlError::Api`] with the service's message.
    pub fn ok(&self) -> Result<(), CtlError> {
        if self.status.is_success() {
            return Ok(());
        }
        let message = match serde_json::from_slice::<ApiError>(&self.body) {
            Ok(e) => e.error,
            Err(_) => String::from_utf8_lossy(&self.body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        };
        //= https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3
        //# Servers send the "Retry-After" header field to indicate how long the user agent
        //# ought to wait before making a follow-up request.
        let retry_after = self
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Err(CtlError::Api {
            status: self.status.as_u16(),
            message,
            retry_after,
        })
    }
}

/// A client for a list of purge-service servers.
#[derive(Debug)]
pub struct ApiClient {
    servers: Vec<String>,
    token: Option<Secret>,
    timeout: Duration,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The server that answered last: tried first next time.
    preferred: AtomicUsize,
}

impl ApiClient {
    /// Validates the server URLs (`https://host:port` or `http://host:port`); `https://`
    /// servers are verified against `ca_file`, or the system's roots without one.
    pub fn new(
        servers: Vec<String>,
        token: Option<Secret>,
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, CtlError> {
        if servers.is_empty() {
            return Err(CtlError::Usage(
                "no server: give --server URL (or TIERCEL_SERVER)".into(),
            ));
        }
        let mut clean = Vec::with_capacity(servers.len());
        let mut any_tls = false;
        for s in servers {
            let s = s.trim().trim_end_matches('/').to_string();
            let (tls, host) = match (s.strip_prefix("https://"), s.strip_prefix("http://")) {
                (Some(h), _) => (true, h),
                (None, Some(h)) => (false, h),
                (None, None) => (false, ""),
            };
            if host.is_empty() || host.contains('/') {
                return Err(CtlError::Usage(format!(
                    "--server `{s}` is not an https://host:port or http://host:port URL"
                )));
            }
            any_tls |= tls;
            clean.push(s);
        }
        let tls = if any_tls || ca_file.is_some() {
            tiercel_cluster::tls::client_config(ca_file)
        } else {
            tiercel_cluster::tls::trust_nothing()
        }
        .map_err(|e| CtlError::Usage(e.to_string()))?;
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(timeout.min(Duration::from_secs(3))));
        conn.set_nodelay(true);
        let https = tiercel_cluster::tls::connector(conn, tls);
        Ok(ApiClient {
            servers: clean,
            token,
            timeout,
            http: HyperClient::builder(TokioExecutor::new()).build(https),
            preferred: AtomicUsize::new(0),
        })
    }

    /// Sends one request, failing over as described in the module docs.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(HeaderName, String)],
    ) -> Result<ApiResponse, CtlError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_problem = String::new();
        let mut last_unavailable = None;
        for i in 0..self.servers.len() {
            let idx = (first + i) % self.servers.len();
            let base = &self.servers[idx];
            let req = self.build(&method, base, path, body.clone(), headers)?;
            match tokio::time::timeout(self.timeout, self.exchange(req)).await {
                Ok(Ok(resp)) => {
                    //= https://www.rfc-editor.org/rfc/rfc9110#section-15.6.4
                    //# The 503 (Service Unavailable) status code indicates that the server is
                    //# currently unable to handle the request due to a temporary overload or
                    //# scheduled maintenance, which will likely be alleviated after some delay.
                    //= https://www.rfc-editor.org/rfc/rfc9110#section-15.6.3
                    //# The 502 (Bad Gateway) status code indicates that the server, while acting
                    //# as a gateway or proxy, received an invalid response from an inbound server
                    //= https://www.rfc-editor.org/rfc/rfc9110#section-15.5
                    //# The 4xx (Client Error) class of status code indicates that the client
                    //# seems to have erred.
                    // So 502/503/504 try the next server and a 4xx is final.
                    if matches!(resp.status.as_u16(), 502..=504) {
                        last_problem = format!("{base} answered {}", resp.status);
                        last_unavailable = Some(resp);
                        continue;
                    }
                    self.preferred.store(idx, Ordering::Relaxed);
                    return Ok(resp);
                }
                Ok(Err(e)) => last_problem = format!("{base}: {e}"),
                Err(_) => last_problem = format!("{base}: no answer within {:?}", self.timeout),
            }
        }
        match last_unavailable {
            Some(resp) => resp.ok().map(|_| resp),
            None => Err(CtlError::Unreachable(last_problem)),
        }
    }

    fn build(
        &self,
        method: &Method,
        base: &str,
        path: &str,
        body: Option<Bytes>,
        headers: &[(HeaderName, String)],
    ) -> Result<Request<Full<Bytes>>, CtlError> {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(format!("{base}{path}"));
        //= https://www.rfc-editor.org/rfc/rfc6750#section-2.1
        //# credentials = "Bearer" 1*SP b64token
        if let Some(t) = &self.token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                .map_err(|_| CtlError::Usage("the token contains invalid characters".into()))?;
            v.set_sensitive(true);
            b = b.header(header::AUTHORIZATION, v);
        }
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            b = b.header(name, value);
        }
        b.body(Full::new(body.unwrap_or_default()))
            .map_err(|e| CtlError::Usage(format!("invalid request {path}: {e}")))
    }

    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<ApiResponse, String> {
        let resp = self.http.request(req).await.map_err(|e| error_chain(&e))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| error_chain(&e))?
            .to_bytes();
        Ok(ApiResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// An error with its causes on one line (hyper's top-level messages alone say little).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_servers_and_tokens_as_usage_errors() {
        let t = Duration::from_secs(1);
        for bad in [
            vec![],
            vec!["https://".into()],
            vec!["http://".into()],
            vec!["x:1".into()],
            vec!["ftp://x:1".into()],
        ] {
            assert!(
                matches!(
                    ApiClient::new(bad.clone(), None, t, None),
                    Err(CtlError::Usage(_))
                ),
                "{bad:?}"
            );
        }
        let missing = Path::new("/nonexistent/ca.pem");
        let e = ApiClient::new(vec!["https://a:1".into()], None, t, Some(missing)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let token = Secret::new("0123456789abcdef0123", "--token").unwrap();
        let c = ApiClient::new(
            vec!["http://a:1/".into(), "https://b:2".into()],
            Some(token),
            t,
            None,
        )
        .unwrap();
        assert_eq!(c.servers, vec!["http://a:1", "https://b:2"]);
    }

    #[test]
    fn error_answers_carry_the_service_message_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        let r = ApiResponse {
            status: StatusCode::TOO_MANY_REQUESTS,
            headers,
            body: Bytes::from_static(br#"{"error":"rate limit exceeded"}"#),
        };
        match r.ok() {
            Err(CtlError::Api {
                status: 429,
                message,
                retry_after: Some(ra),
            }) => {
                assert_eq!(message, "rate limit exceeded");
                assert_eq!(ra, "3");
            }
            other => panic!("{other:?}"),
        }
        let r = ApiResponse {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"not json\n"),
        };
        assert!(
            matches!(r.ok(), Err(CtlError::Api { status: 404, message, .. }) if message == "not json")
        );
    }
}
