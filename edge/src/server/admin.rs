//! The admin listener: `/healthz`, `/readyz` and `/metrics` (Prometheus text).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineStats};
use tiercel_cluster::conn::ConnectionStats;

/// Whether the node is ready for traffic (set once every listener is bound).
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Marks the node ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the node is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Admin connections served at once (health checkers and scrapers need few).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Pause after a failed accept on the admin listener.
const ADMIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the admin endpoints until `shutdown`. `header_timeout` (the clients'
/// `timeouts.client_header`) bounds both a request head and the idle time before it.
pub async fn serve_admin(
    listener: TcpListener,
    engine: Arc<Engine>,
    conns: Arc<ConnectionStats>,
    ready: Arc<Readiness>,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    loop {
        // Over the cap, scrapers wait in the backlog; clients' connections never count here.
        let slot = tokio::select! {
            () = shutdown.cancelled() => return,
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, mostly: wait for some to free up instead of spinning.
                conns.admin_accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(ADMIN_ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let engine = engine.clone();
        let conns = conns.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = answer(req.uri().path(), &engine, &conns, &ready);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            // HTTP/1.1 only (health checkers and scrapers speak it), with hyper's header timer:
            // it runs from the moment a connection is accepted or a response is sent, so a
            // silent or idle admin connection is closed after `header_timeout`.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(
    path: &str,
    engine: &Engine,
    conns: &ConnectionStats,
    ready: &Readiness,
) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" if ready.get() => (StatusCode::OK, "ready\n".to_string()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string()),
        "/metrics" => (StatusCode::OK, metrics_text(engine, conns)),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if path == "/metrics" {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
    }
    resp
}

/// Appends one metric with its HELP and TYPE lines.
fn metric(out: &mut String, kind: &str, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// The node's counters in the Prometheus text exposition format.
pub fn metrics_text(engine: &Engine, conns: &ConnectionStats) -> String {
    let s = engine.stats();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tiercel_requests_total Requests received, by the protocol of their connection.\n# TYPE tiercel_requests_total counter"
    );
    for (name, n) in EngineStats::PROTOCOLS.iter().zip(&s.requests_by_protocol) {
        let _ = writeln!(
            out,
            "tiercel_requests_total{{protocol=\"{name}\"}} {}",
            n.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    let counters: [(&str, &str, &AtomicU64); 19] = [
        (
            "tiercel_encoders_busy_total",
            "Responses left in identity (or 503 when decoding) because every encoder was busy.",
            &s.encoders_busy,
        ),
        (
            "tiercel_encoded_hits_total",
            "Responses served from a stored encoded form (br, zstd, gzip).",
            &s.encoded_hits,
        ),
        (
            "tiercel_encodings_made_total",
            "Responses encoded on the way out (the result stored for the next client when it fits one chunk).",
            &s.encodings_made,
        ),
        (
            "tiercel_cache_hits_total",
            "Requests served from storage.",
            &s.hits,
        ),
        (
            "tiercel_cache_misses_total",
            "Requests that needed the upstream.",
            &s.misses,
        ),
        (
            "tiercel_collapsed_requests_total",
            "Requests that joined another request's fill.",
            &s.collapsed,
        ),
        (
            "tiercel_upstream_requests_total",
            "Requests sent upstream.",
            &s.upstream_requests,
        ),
        (
            "tiercel_fills_refused_total",
            "Requests answered 503: no fill or pass slot (limits.max_fills, limits.max_fills_per_connection) within timeouts.fill_queue.",
            &s.fills_refused,
        ),
        (
            "tiercel_early_data_requests_total",
            "Requests that arrived in TLS early data (HTTP/3 0-RTT), before their handshake completed.",
            &s.early_data,
        ),
        (
            "tiercel_too_early_total",
            "Early-data requests answered 425 Too Early (unsafe methods, or a handshake that did not complete).",
            &s.too_early,
        ),
        (
            "tiercel_fills_abandoned_total",
            "Fills stopped: every reader left and the body outgrew cache.abandoned_fill_max.",
            &s.fills_abandoned,
        ),
        (
            "tiercel_client_connections_total",
            "Client connections accepted.",
            &conns.accepted,
        ),
        (
            "tiercel_accept_errors_total",
            "Accepts that failed (out of file descriptors, mostly); each backs off 50 ms.",
            &conns.accept_errors,
        ),
        (
            "tiercel_admin_accept_errors_total",
            "Accepts on the admin listener that failed; each backs off 50 ms.",
            &conns.admin_accept_errors,
        ),
        (
            "tiercel_client_made_room_closes_total",
            "Idle client connections closed to make room at limits.max_connections.",
            &conns.closed_made_room,
        ),
        (
            "tiercel_client_per_ip_refusals_total",
            "Client connections closed on accept: the address held limits.max_connections_per_ip.",
            &conns.refused_per_ip,
        ),
        (
            "tiercel_client_idle_closes_total",
            "Client connections closed after timeouts.client_idle with nothing in flight.",
            &conns.closed_idle,
        ),
        (
            "tiercel_client_header_timeouts_total",
            "Client connections dropped: no request head (or TLS handshake) within timeouts.client_header.",
            &conns.closed_header_timeout,
        ),
        (
            "tiercel_client_send_timeouts_total",
            "Client connections dropped: the client took none of our bytes for timeouts.client_idle.",
            &conns.closed_send_timeout,
        ),
    ];
    for (name, help, value) in counters {
        metric(
            &mut out,
            "counter",
            name,
            help,
            value.load(Ordering::Relaxed),
        );
    }
    let mut gauge = |name: &str, help: &str, v: &dyn std::fmt::Display| {
        metric(&mut out, "gauge", name, help, v);
    };
    gauge(
        "tiercel_client_connections_open",
        "Client connections open now.",
        &conns.open.load(Ordering::Relaxed),
    );
    gauge(
        "tiercel_storage_memory_bytes",
        "Bytes held by the memory tier.",
        &engine.storage().memory_usage(),
    );
    gauge(
        "tiercel_fills_in_flight",
        "Upstream fills in progress.",
        &engine.fills_in_flight(),
    );
    if let Some(p) = engine.purge_progress() {
        gauge(
            "tiercel_purge_applied_index",
            "Purge-log index applied: every purge up to it is in force.",
            &p.applied_index,
        );
        gauge(
            "tiercel_purge_durable_index",
            "Applied purge-log index known to be on disk.",
            &p.durable_index,
        );
        gauge(
            "tiercel_purge_rules",
            "Distinct purge patterns held (bounded by cache.max_purge_rules).",
            &p.rules,
        );
        if let Some(d) = p.since_heard {
            gauge(
                "tiercel_purge_log_silence_seconds",
                "Seconds since the purge-service was last heard.",
                &format_args!("{:.3}", d.as_secs_f64()),
            );
        }
        gauge(
            "tiercel_purge_lagging",
            "1 while hits are revalidated because the purge log went quiet (max_purge_lag).",
            &u8::from(p.lagging),
        );
    }
    let members = engine.upstream_members();
    let default_site = engine.sites().default.as_ref().map(|s| s.name.clone());
    let shields: Vec<_> = members
        .iter()
        .filter(|(site, _, _)| Some(site) == default_site.as_ref())
        .collect();
    if !shields.is_empty() {
        let _ = writeln!(
            out,
            "# HELP tiercel_shield_up 1 while the shield is tried, 0 while it is marked down.\n\
             # TYPE tiercel_shield_up gauge"
        );
        for (_, name, up) in shields {
            let _ = writeln!(
                out,
                "tiercel_shield_up{{shield=\"{name}\"}} {}",
                u8::from(*up)
            );
        }
    }
    if !members.is_empty() {
        let _ = writeln!(
            out,
            "# HELP tiercel_upstream_up 1 while the upstream member (shield or pool origin) is tried, 0 while it is marked down.\n\
             # TYPE tiercel_upstream_up gauge"
        );
        for (site, name, up) in &members {
            let _ = writeln!(
                out,
                "tiercel_upstream_up{{site=\"{site}\",member=\"{name}\"}} {}",
                u8::from(*up)
            );
        }
    }
    site_metrics(&mut out, engine);
    out
}

/// Per-site counters: requests routed, and refusals by access rule and rate limit.
fn site_metrics(out: &mut String, engine: &Engine) {
    let sites = engine.sites();
    let all: Vec<_> = sites.default.iter().chain(sites.services.iter()).collect();
    type Field = fn(&crate::engine::SiteCounters) -> &AtomicU64;
    let families: [(&str, &str, Field); 4] = [
        (
            "tiercel_site_requests_total",
            "Requests routed to the site (service, or the node's default origin).",
            |c| &c.requests,
        ),
        (
            "tiercel_site_denied_total",
            "Requests refused with 403 by the site's access.allow / access.deny.",
            |c| &c.denied,
        ),
        (
            "tiercel_site_method_refused_total",
            "Requests refused with 405 by the site's access.methods.",
            |c| &c.method_refused,
        ),
        (
            "tiercel_site_rate_limited_total",
            "Requests refused with 429 by the site's rate_limit.",
            |c| &c.rate_limited,
        ),
    ];
    for (name, help, field) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for site in &all {
            let _ = writeln!(
                out,
                "{name}{{site=\"{}\"}} {}",
                site.name,
                field(&site.counters).load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
}
