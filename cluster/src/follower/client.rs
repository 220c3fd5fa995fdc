//! The follower's HTTP side: open `GET /v1/log?from=N` and read it line by line, and post
//! progress reports. Every wait here is bounded by a timeout.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::FollowerConfig;
use super::machine::implausible_index;
use crate::purge::wire::{FollowerReport, LogEvent};
use crate::tls::TlsError;

/// The longest NDJSON line accepted (a `Reset` carries every service).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Why a log stream or a report failed. Every variant is retried (on the next server, after a
/// backoff); they differ in what an operator should look at.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The URL built from the configured server is invalid.
    #[error("invalid URL {0}")]
    Url(String),
    /// Connecting or sending failed (server down, refused, reset).
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    /// No answer (or, on the stream, no bytes) within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered with an error status (401/403: check `purge_token`).
    #[error("server answered {0}")]
    Status(StatusCode),
    /// Reading the body failed.
    #[error("reading the stream failed: {0}")]
    Body(#[from] hyper::Error),
    /// A line longer than the limit arrived.
    #[error("log line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A line is not a log event this node understands (never skipped: skipping an entry could
    /// skip a purge).
    #[error("undecodable log line: {0}")]
    Decode(#[from] serde_json::Error),
    /// The server claimed a log index no real log reaches: it is faulty or hostile.
    #[error("server claims log index {0}, beyond anything plausible; dropping it")]
    Implausible(u64),
}

/// A pooled HTTP/1.1 client bound to the follower's timeouts and token; `https://` servers
/// are verified against the configured CA file or the system's roots.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    token: Option<String>,
    request_timeout: Duration,
    idle_timeout: Duration,
}

impl Client {
    pub fn new(cfg: &FollowerConfig) -> Result<Self, TlsError> {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(cfg.connect_timeout));
        conn.set_nodelay(true);
        let any_tls = cfg.servers.iter().any(|s| s.starts_with("https://"));
        let tls = if any_tls {
            crate::tls::client_config(cfg.ca_file.as_deref())?
        } else {
            crate::tls::trust_nothing()?
        };
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(crate::tls::connector(conn, tls));
        Ok(Client {
            http,
            token: cfg.token.clone(),
            request_timeout: cfg.request_timeout,
            idle_timeout: cfg.idle_timeout,
        })
    }

    fn request(
        &self,
        method: Method,
        url: String,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, StreamError> {
        let mut b = Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if !body.is_empty() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(body)).map_err(|_| StreamError::Url(url))
    }

    /// Opens the log stream of `base` from index `from` (headers within the request timeout).
    pub async fn open_log(&self, base: &str, from: u64) -> Result<LogStream, StreamError> {
        let url = format!("{}/v1/log?from={from}", base.trim_end_matches('/'));
        let mut req = self.request(Method::GET, url, Bytes::new())?;
        req.headers_mut().insert(
            header::ACCEPT,
            header::HeaderValue::from_static("application/x-ndjson"),
        );
        let resp = tokio::time::timeout(self.request_timeout, self.http.request(req))
            .await
            .map_err(|_| StreamError::Timeout(self.request_timeout))??;
        if resp.status() != StatusCode::OK {
            return Err(StreamError::Status(resp.status()));
        }
        Ok(LogStream {
            body: resp.into_body(),
            buf: BytesMut::new(),
            scanned: 0,
            idle: self.idle_timeout,
        })
    }

    /// Posts a progress report to `base`.
    pub async fn report(&self, base: &str, report: &FollowerReport) -> Result<(), StreamError> {
        let url = format!("{}/v1/followers/report", base.trim_end_matches('/'));
        let body = Bytes::from(serde_json::to_vec(report)?);
        let req = self.request(Method::POST, url, body)?;
        let send = async {
            let resp = self.http.request(req).await?;
            let status = resp.status();
            // Drain the (small) answer so the connection goes back to the pool.
            let _ = resp.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(StreamError::Status(status))
            }
        };
        tokio::time::timeout(self.request_timeout, send)
            .await
            .map_err(|_| StreamError::Timeout(self.request_timeout))?
    }
}

/// An open NDJSON log stream.
#[derive(Debug)]
pub(crate) struct LogStream {
    body: Incoming,
    buf: BytesMut,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    idle: Duration,
}

impl LogStream {
    /// The next event; `None` when the server ended the stream cleanly. Fails when no bytes
    /// arrive within the idle timeout.
    pub async fn next_event(&mut self) -> Result<Option<LogEvent>, StreamError> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(self.scanned + pos + 1);
                self.scanned = 0;
                let line = trim(&line);
                if line.is_empty() {
                    continue;
                }
                return checked(serde_json::from_slice(line)?).map(Some);
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_LINE {
                return Err(StreamError::LineTooLong);
            }
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| StreamError::Timeout(self.idle))?;
            match frame {
                None => {
                    // A last line without a newline still counts.
                    let rest = self.buf.split();
                    let line = trim(&rest);
                    if line.is_empty() {
                        return Ok(None);
                    }
                    return checked(serde_json::from_slice(line)?).map(Some);
                }
                Some(f) => {
                    if let Ok(data) = f?.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Refuses an event claiming an implausible index (see [`implausible_index`]).
fn checked(event: LogEvent) -> Result<LogEvent, StreamError> {
    match implausible_index(&event) {
        Some(index) => Err(StreamError::Implausible(index)),
        None => Ok(event),
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}
