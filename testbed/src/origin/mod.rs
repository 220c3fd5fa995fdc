//! The demo origin: a real HTTP/1.1 + h2c server whose behaviour is chosen per request by query
//! parameters, so integration tests, benchmarks and the README demo need no set-up.
//!
//! ```text
//!  test ──▶ edge ──▶ shield ──▶ Origin (this)      counters: hits(target), conditional_hits,
//!                                  │                total_hits, requests()
//!                                  └─ body = expected_body(path?version, size)
//! ```
//!
//! | parameter | effect |
//! |---|---|
//! | `size=N` | body bytes (default 1024) |
//! | `version=V` | other body bytes for the same path ([`expected_body`] takes it from the target) |
//! | `cc=`, `cdncc=`, `sc=` | `Cache-Control`, `CDN-Cache-Control`, `Surrogate-Control` (URL-encoded) |
//! | `expires=SECS` | `Expires` = now + SECS (negative ok) |
//! | `etag=V` | `ETag: "V"` (`W/V` → `W/"V"`); 304 to a matching `If-None-Match` (weak comparison) |
//! | `lm=SECS_AGO` | `Last-Modified` = origin start − SECS (stable while the origin runs); 304 to `If-Modified-Since` when not modified |
//! | `vary=H` | `Vary: H`; the body is [`expected_variant_body`] of the request's `H` value(s) |
//! | `status=N` | status 200..=599 (204 and 304 have no body) |
//! | `delay_ms=N` | wait before the headers |
//! | `chunk=BYTES`, `chunk_ms=N` | body frames of BYTES (default 65536), N ms apart |
//! | `set_cookie=1`, `age=N`, `date_offset=SECS` | `Set-Cookie`, `Age: N`, `Date` = now + SECS |
//! | `h=Name:Value` | extra header, repeatable; replaces the origin's own header of that name |
//! | `tags=a,b` | `Surrogate-Key: a b` |
//! | `fail=close` / `fail=hang` / `fail=midbody` | close the connection unanswered / never answer / send headers and half the body, then close (h1) or reset the stream (h2) |
//! | `nolen=1` | no `Content-Length` (chunked in HTTP/1.1) |
//! | `ranges=1` | a single `Range: bytes=` answered 206 (416 when unsatisfiable); `If-Range` honoured |
//! | `echo=NAME` | the request's `NAME` field copied into `x-echo` (`-` when absent), without `Vary`: a careless origin for poisoning tests |
//!
//! Unknown parameters are ignored; a malformed one is answered 400 naming it. Every response
//! carries `x-origin-hits` ([`HITS_HEADER`]). A plain `GET /` returns an HTML index of the above.
//! [`Origin::set`] overrides parameters of a path at run time (see [`Spec`]).

mod body;
mod conditional;
mod index;
mod range;
mod recorder;
mod respond;
mod spec;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use body::{expected_body, expected_range, expected_variant_body};
pub use recorder::{COUNTED_TARGETS, MAX_RECORDED, RecordedRequest};
pub use respond::{ECHO_HEADER, HITS_HEADER};
pub use spec::Spec;

use body::DemoBody;
use recorder::Recorder;
use respond::{Action, BodyPlan, RequestView};
use spec::{Params, parse_query};

/// Listen backlog: bursts of thousands of connections from load tests are queued, not refused.
const BACKLOG: u32 = 8192;

/// Largest request body the origin reads (and records); larger ones get 413.
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// A running demo origin. Dropping it stops the server too; [`Origin::shutdown`] also waits
/// for the accept loop to end.
pub struct Origin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// State shared by the accept loop, every connection and the [`Origin`] handle.
struct Shared {
    recorder: Recorder,
    overrides: RwLock<HashMap<String, Spec>>,
    /// Start time in whole seconds: the anchor of `lm=` so `Last-Modified` is stable.
    epoch: SystemTime,
    builder: auto::Builder<TokioExecutor>,
    /// TCP connections accepted.
    connections: AtomicU64,
}

impl Origin {
    /// Binds `addr` (port 0 picks a free port) and serves HTTP/1.1 and h2c on it.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Origin> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(1000);
        let shared = Arc::new(Shared {
            recorder: Recorder::default(),
            overrides: RwLock::new(HashMap::new()),
            epoch: UNIX_EPOCH + Duration::from_secs(now),
            builder,
            connections: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop_rx));
        tracing::info!(%addr, "demo origin listening");
        Ok(Origin {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The bound address (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the value to give an edge's or shield's `--origin`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received for exactly this path and query (e.g. `/a?size=10`), failed ones
    /// included. Counted per target in two generations of [`COUNTED_TARGETS`]: exact unless
    /// more distinct targets than that were asked for since this one's last request.
    pub fn hits(&self, path_and_query: &str) -> u64 {
        self.shared.recorder.hits(path_and_query)
    }

    /// Requests received whose path and query start with `path_prefix`, among the targets
    /// still counted (see [`hits`](Self::hits)).
    pub fn hits_prefix(&self, path_prefix: &str) -> u64 {
        self.shared.recorder.hits_prefix(path_prefix)
    }

    /// TCP connections accepted since start (a cache's upstream connections).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// All requests received since start (or the last [`reset_counters`](Self::reset_counters)).
    pub fn total_hits(&self) -> u64 {
        self.shared.recorder.total()
    }

    /// Requests for exactly this target that carried `If-None-Match` or `If-Modified-Since`
    /// (revalidations), whatever the answer was; bounded like [`hits`](Self::hits).
    pub fn conditional_hits(&self, path_and_query: &str) -> u64 {
        self.shared.recorder.conditional_hits(path_and_query)
    }

    /// The most recent requests (up to [`MAX_RECORDED`]), oldest first, for asserting what a
    /// cache forwarded (headers such as `CDN-Loop`, `Via`, `traceparent`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.requests()
    }

    /// The `Range` field of each recorded request for `path` (`-` for none), oldest first:
    /// what a cache asked for, chunk by chunk.
    pub fn ranges_asked(&self, path: &str) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.uri.path() == path)
            .map(|r| {
                r.headers
                    .get("range")
                    .map_or("-", |v| v.to_str().unwrap_or("?"))
                    .to_string()
            })
            .collect()
    }

    /// Forgets every counter and recorded request (overrides set with [`set`](Self::set) stay).
    pub fn reset_counters(&self) {
        self.shared.recorder.reset();
    }

    /// Overrides the behaviour of `path` (no query) from now on; see [`Spec`] for how it merges
    /// with the request's query. Replaces an earlier spec for the same path.
    pub fn set(&self, path: &str, spec: Spec) {
        self.shared.overrides.write().insert(path.to_owned(), spec);
    }

    /// Removes the override of `path`, if any.
    pub fn clear(&self, path: &str) {
        self.shared.overrides.write().remove(path);
    }

    /// Stops accepting, closes every connection (hanging ones included) and waits for the
    /// accept loop to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A listening socket with a deep backlog.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts until told to stop; connection tasks live in a `JoinSet` so stopping (or dropping
/// the loop) ends them all.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&shared)));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "demo origin: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = stop.changed() => break,
        }
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// Serves one connection until it ends, or until a `fail=close` request asks to drop it.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let service = {
        let shared = Arc::clone(&shared);
        let kill = Arc::clone(&kill);
        service_fn(move |req| handle(req, peer, Arc::clone(&shared), Arc::clone(&kill)))
    };
    let conn = shared
        .builder
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = conn => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "demo origin: connection ended with an error");
            }
        }
        () = kill.notified() => {
            tracing::debug!(%peer, "demo origin: closing the connection (fail=close)");
        }
    }
}

/// One request: record it, work out the plan, carry it out.
async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    kill: Arc<Notify>,
) -> Result<Response<DemoBody>, Infallible> {
    let received_at = SystemTime::now();
    let (parts, incoming) = req.into_parts();
    let body = match Limited::new(incoming, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(error),
    };
    let hits = shared.recorder.record(RecordedRequest {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: body.as_ref().map(Bytes::clone).unwrap_or_default(),
        peer,
        received_at,
    });
    if let Err(error) = body {
        tracing::debug!(%peer, %error, "demo origin: request body not read");
        return Ok(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or broken\n",
        ));
    }

    let path = parts.uri.path();
    let query = parts.uri.query();
    if path == "/" && query.is_none() {
        let mut resp = text(StatusCode::OK, index::INDEX_HTML);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return Ok(resp);
    }

    let mut pairs = parse_query(query.unwrap_or(""));
    if let Some(spec) = shared.overrides.read().get(path) {
        pairs = spec.apply(pairs);
    }
    let params = match Params::from_pairs(&pairs) {
        Ok(params) => params,
        Err(error) => return Ok(text(StatusCode::BAD_REQUEST, &format!("{error}\n"))),
    };
    let view = RequestView {
        method: &parts.method,
        path,
        headers: &parts.headers,
    };
    let plan = respond::plan(view, &params, SystemTime::now(), shared.epoch, hits);
    if let Some(delay) = plan.delay {
        tokio::time::sleep(delay).await;
    }
    match plan.action {
        Action::Close => {
            kill.notify_one();
            std::future::pending().await
        }
        Action::Hang => std::future::pending().await,
        Action::Respond(answer) => {
            let body = match answer.body {
                BodyPlan::Empty => DemoBody::empty(),
                BodyPlan::Stream {
                    pattern,
                    start,
                    end,
                    frame,
                    pause,
                    end_mode,
                    announce_len,
                } => DemoBody::new(pattern, start, end, frame, pause, end_mode, announce_len),
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = answer.status;
            *resp.headers_mut() = answer.headers;
            Ok(resp)
        }
    }
}

/// A small fixed response (index page, 400 and 413 texts).
fn text(status: StatusCode, body: &str) -> Response<DemoBody> {
    let bytes = Bytes::copy_from_slice(body.as_bytes());
    let len = bytes.len() as u64;
    let mut resp = Response::new(DemoBody::fixed(bytes));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("tiercel-demo-origin"),
    );
    resp
}

#[cfg(test)]
mod tests;
