//! The listeners: HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS) on one TCP port each,
//! every request answered by [`super::handle`]. Connections are capped and timed by the
//! shared watchdog of `tiercel_cluster::conn`, as the edge's are: a silent or idle connection
//! cannot hold a file descriptor for long, and a client that stops reading is dropped.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tiercel_cluster::conn::{self, ConnLimiter, ConnOptions, ConnectionStats, QuietLimits};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Listener;
use crate::app::App;
use crate::config::Limits;

/// Largest request head accepted (h1 buffer, h2 header list).
const MAX_HEAD: usize = 64 * 1024;

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Heads and idle keep-alive are timed by the watchdog.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .max_headers(64);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD as u32)
        .max_concurrent_streams(64)
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    b
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
        Arc::new(builder()),
        opts,
        stats,
        shutdown,
        handler,
    )
    .await;
}
