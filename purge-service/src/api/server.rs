//! The listeners: HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS) on one TCP port each,
//! every request answered by [`super::handle`]. Connections are capped and timed by the
//! shared watchdog of `tiercel_cluster::conn`, as the edge's are: a silent or idle connection
//! cannot hold a file descriptor for long, and a client that stops reading is dropped.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tiercel_cluster::conn::{
    self, ConnLimiter, ConnOptions, ConnectionStats, Protocols, QuietLimits,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Listener;
use crate::app::App;
use crate::config::Limits;

/// Largest request head accepted (h1 buffer, h2 header list).
const MAX_HEAD: usize = 64 * 1024;

fn protocols() -> Protocols {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        // Heads and idle keep-alive are timed by the watchdog.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .max_header_size(MAX_HEAD)
        .max_headers(64);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD as u32)
        .max_concurrent_streams(64)
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    Protocols { http1, http2 }
}

/// Serves `listener` as `kind` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    kind: Listener,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
) {
    let opts = ConnOptions {
        limits: QuietLimits {
            header: limits.client_header_timeout,
            idle: limits.client_idle_timeout,
        },
        limiter: ConnLimiter::new(limits.max_connections, 0),
        shutdown_grace: Duration::from_secs(2),
    };
    let handler = move |_peer| {
        let app = app.clone();
        move |req| {
            let app = app.clone();
            async move { super::handle(app, kind, req).await }
        }
    };
    conn::serve(
        listener,
        tls,
        Arc::new(protocols()),
        opts,
        stats,
        shutdown,
        handler,
    )
    .await;
}
