//! HTTP/3 on the TLS listener's port, over UDP (quinn + h3): every request stream goes
//! through `Engine::handle`, exactly as HTTP/1.1 and HTTP/2 requests do, so cache semantics,
//! ranges, streaming, coalescing and Cache-Status are one and the same for all three.
//!
//! ```text
//! UDP ─▶ quinn Endpoint ─▶ Incoming ─(handshake within client_header)─▶ h3 Connection
//!          each request stream ─▶ http::Request<H3Body> ─▶ Engine::handle ─▶ Response<Body>
//!          response head ─▶ send_response, body frames ─▶ send_data, then finish
//! ```
//!
//! On shutdown each connection sends GOAWAY (h3) and its requests in flight finish within
//! `timeouts.shutdown_grace`. Each connection has the TCP connections' watchdog (the same
//! pure `quiet::verdict`): its first request within `timeouts.client_header`, closed after
//! `timeouts.client_idle` with nothing in flight, and dropped when a response has waited that
//! long for a client that grants no flow-control credit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use tiercel_cluster::conn::{
    Activity, Admitted, Closing, ConnLimiter, ConnectionStats, InFlight, QuietLimits, Verdict,
    verdict,
};
use tiercel_cluster::urlnorm::Scheme;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::{ConnInfo, Engine, Handshake};
use crate::upstream::BoxError;

/// Why the HTTP/3 endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// rustls refused the certificate, key or protocol set.
    #[error("QUIC TLS configuration: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Congestion controllers a node may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Congestion {
    /// CUBIC (RFC 9438), the default.
    Cubic,
    /// NewReno (RFC 6582).
    NewReno,
    /// BBR (v1, as quinn implements it).
    Bbr,
}

impl Congestion {
    /// From `quic.congestion` (validated with the configuration).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "cubic" => Some(Congestion::Cubic),
            "new_reno" => Some(Congestion::NewReno),
            "bbr" => Some(Congestion::Bbr),
            _ => None,
        }
    }
}

/// How the HTTP/3 endpoint serves.
#[derive(Debug, Clone)]
pub struct QuicOptions {
    /// The QUIC handshake must complete within this (the same deadline as a TLS handshake
    /// and first head on TCP).
    pub handshake_timeout: Duration,
    /// A connection with nothing sent or received for this long is closed.
    pub idle_timeout: Duration,
    /// Request streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Flow-control window of one stream.
    pub stream_receive_window: u64,
    /// Flow-control window of a connection.
    pub receive_window: u64,
    /// The congestion controller.
    pub congestion: Congestion,
    /// Largest UDP payload accepted.
    pub max_udp_payload: u16,
    /// Largest request field section (QPACK-decoded); larger requests are refused.
    pub max_request_head: usize,
    /// How long requests in flight may finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Ask every new client for a Retry round trip, not only under load.
    pub always_validate: bool,
    /// Accept 0-RTT early data from resuming clients: requests answered from storage at once,
    /// unsafe methods refused with 425 and upstream work held until the handshake completes
    /// ([`crate::engine::Handshake`]).
    pub early_data: bool,
}

/// Handshakes in progress above which new clients must first prove their address (a Retry
/// round trip, RFC 9000 §8.1): a flood from spoofed sources then costs the node a stateless
/// packet each, not a handshake.
pub const VALIDATE_ABOVE: usize = 64;

/// TLS sessions a node remembers for resumption (and 0-RTT): a few hundred bytes each.
const RESUMPTION_SESSIONS: usize = 16_384;

/// ALPN of HTTP/3.
pub const H3_ALPN: &[u8] = b"h3";

/// Binds the UDP endpoint for `addr`, its certificates chosen by SNI like the TCP listener's
/// (ALPN and TLS 1.3 are set here, as QUIC requires).
pub fn endpoint(
    addr: SocketAddr,
    certs: Arc<super::SniCerts>,
    opts: &QuicOptions,
) -> Result<quinn::Endpoint, QuicError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| QuicError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    tls.alpn_protocols = vec![H3_ALPN.to_vec()];
    // QUIC takes early data whole or not at all (RFC 9001 §4.6.1). rustls resumes from a
    // node-local store whose tickets are single use, which already refuses a replay to the
    // same node; the engine's 425 and handshake wait cover a replay to another.
    tls.max_early_data_size = if opts.early_data { u32::MAX } else { 0 };
    tls.session_storage = rustls::server::ServerSessionMemoryCache::new(RESUMPTION_SESSIONS);
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport(opts)));
    quinn::Endpoint::server(server, addr).map_err(|source| QuicError::Bind { addr, source })
}

fn transport(opts: &QuicOptions) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(opts.max_concurrent_streams));
    // Control, QPACK encoder and decoder streams of the client, plus a little room.
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(8));
    let window = |n: u64| quinn::VarInt::from_u64(n).unwrap_or(quinn::VarInt::MAX);
    t.stream_receive_window(window(opts.stream_receive_window));
    t.receive_window(window(opts.receive_window));
    t.max_idle_timeout(quinn::IdleTimeout::try_from(opts.idle_timeout).ok());
    t.initial_mtu(1200);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(opts.max_udp_payload);
    t.mtu_discovery_config(Some(mtu));
    match opts.congestion {
        Congestion::Cubic => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
        }
        Congestion::NewReno => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::NewRenoConfig::default()))
        }
        Congestion::Bbr => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
        }
    };
    t
}

/// Serves HTTP/3 on `endpoint` until `shutdown` is cancelled, then sends GOAWAY on every
/// connection and lets requests in flight finish for the grace period.
pub async fn serve_h3(
    endpoint: quinn::Endpoint,
    engine: Arc<Engine>,
    opts: QuicOptions,
    limiter: Arc<ConnLimiter>,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let handshaking = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        // The node's one connection limit, shared with the TCP listeners: at it, the
        // longest-idle connections are asked to make room, and new ones wait.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = limiter.permit() => match p {
                Some(p) => p,
                None => break,
            },
        };
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        let busy = handshaking.load(std::sync::atomic::Ordering::Relaxed) >= VALIDATE_ABOVE;
        if (opts.always_validate || busy) && !incoming.remote_address_validated() {
            if incoming.may_retry() {
                // A stateless Retry; the client comes back with a token that proves its
                // address, and is accepted then.
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
            } else {
                incoming.ignore();
            }
            continue;
        }
        let activity = Activity::new();
        let Some(admitted) =
            limiter.admit(permit, incoming.remote_address().ip(), activity.clone())
        else {
            stats
                .refused_per_ip
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            incoming.refuse();
            continue;
        };
        handshaking.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        connections.spawn(connection(
            incoming,
            Place {
                activity,
                _admitted: admitted,
            },
            engine.clone(),
            opts.clone(),
            stats.clone(),
            shutdown.clone(),
            handshaking.clone(),
        ));
    }
    connections.close();
    // Each connection bounds its own wait by the grace period; this one is a backstop.
    let _ = tokio::time::timeout(opts.shutdown_grace * 2, connections.wait()).await;
    endpoint.close(quinn::VarInt::from_u32(0x100), b"shutting down");
}

/// A connection's place under the node's connection limit, and what its watchdog looks at.
struct Place {
    activity: Arc<Activity>,
    _admitted: Admitted,
}

/// How long a connection closing politely may take to write GOAWAY (a client that grants no
/// credit on our control stream would hold it forever).
const GOAWAY_WRITE: Duration = Duration::from_secs(1);

async fn connection(
    incoming: quinn::Incoming,
    place: Place,
    engine: Arc<Engine>,
    opts: QuicOptions,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
    handshaking: Arc<std::sync::atomic::AtomicUsize>,
) {
    let Some((conn, handshake)) = accept(incoming, &opts, handshaking).await else {
        return;
    };
    let peer = conn.remote_address();
    let sni: Option<Arc<str>> = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name)
        .map(|n| Arc::from(n.to_ascii_lowercase()));
    let quic = conn.clone();
    let _open = stats.opened();
    let activity = place.activity.clone();
    let limits = QuietLimits {
        header: opts.handshake_timeout,
        idle: opts.idle_timeout,
    };
    let fills = engine.connection_fill_slots();
    // Setting up opens our control and QPACK streams and writes SETTINGS: a client that
    // grants no credit for them gets the header timeout, not forever.
    let mut builder = h3::server::builder();
    builder.max_field_section_size(u64::try_from(opts.max_request_head).unwrap_or(u64::MAX));
    let setup = builder.build::<_, Bytes>(h3_quinn::Connection::new(conn));
    let mut h3 = match tokio::time::timeout(opts.handshake_timeout, setup).await {
        Ok(Ok(h3)) => h3,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %peer, "HTTP/3 connection setup failed");
            return;
        }
        Err(_) => {
            stats.closed(Closing::HeadTimeout);
            quic.close(quinn::VarInt::from_u32(0x100), b"setup timeout");
            return;
        }
    };
    let requests = TaskTracker::new();
    let mut draining = false;
    loop {
        let resolver = tokio::select! {
            _ = shutdown.cancelled() => {
                draining = true;
                // GOAWAY naming the stream after the last one accepted (RFC 9114 §5.2): no
                // new requests, and those already accepted finish.
                let _ = tokio::time::timeout(GOAWAY_WRITE, h3.shutdown(1)).await;
                break;
            }
            why = watch(&activity, &limits) => {
                stats.closed(why);
                close(&mut h3, &quic, why, peer).await;
                return;
            }
            () = activity.close_asked() => {
                // Idle while the node is at its connection limit: make room.
                if activity.idle_since().is_some() {
                    stats.closed(Closing::MadeRoom);
                    close(&mut h3, &quic, Closing::MadeRoom, peer).await;
                    return;
                }
                continue;
            }
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => resolver,
                Ok(None) => break,
                Err(e) => {
                    if !e.is_h3_no_error() {
                        tracing::debug!(error = %e, %peer, "HTTP/3 connection ended");
                    }
                    break;
                }
            },
        };
        let conn = ConnInfo {
            peer,
            scheme: Scheme::Https,
            fills: fills.clone(),
            trusted: false,
            sni: sni.clone(),
            handshake: handshake.clone(),
        };
        requests.spawn(request(resolver, engine.clone(), conn, activity.clone()));
    }
    let deadline = tokio::time::Instant::now() + opts.shutdown_grace;
    requests.close();
    let _ = tokio::time::timeout_at(deadline, requests.wait()).await;
    if draining {
        // Dropping the connection closes it at once, and a close discards stream data still
        // in flight: the last responses would never arrive. The client closes once it has
        // them (it got GOAWAY); a client that does not is given DRAIN, within the grace.
        let drain = (tokio::time::Instant::now() + DRAIN).min(deadline);
        let _ = tokio::time::timeout_at(drain, quic.closed()).await;
    }
}

/// Completes the QUIC handshake within the handshake deadline, or, with early data on, opens
/// the connection at once and watches the handshake (the [`Handshake`] its requests carry;
/// a handshake not complete by the deadline closes the connection). `handshaking` counts
/// handshakes in progress, for address validation under load.
async fn accept(
    incoming: quinn::Incoming,
    opts: &QuicOptions,
    handshaking: Arc<std::sync::atomic::AtomicUsize>,
) -> Option<(quinn::Connection, Option<Handshake>)> {
    let done = |handshaking: &std::sync::atomic::AtomicUsize| {
        handshaking.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    };
    let mut connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            done(&handshaking);
            tracing::debug!(error = %e, "QUIC connection refused");
            return None;
        }
    };
    if opts.early_data {
        match connecting.into_0rtt() {
            Ok((conn, established)) => {
                let watched = conn.clone();
                let deadline = opts.handshake_timeout;
                let handshake = Handshake::new(async move {
                    let ended = tokio::time::timeout(deadline, established).await;
                    done(&handshaking);
                    // `established` also resolves when the connection fails first.
                    let completed = ended.is_ok() && watched.close_reason().is_none();
                    if !completed {
                        tracing::debug!("QUIC handshake timed out or failed (0-RTT)");
                        watched.close(quinn::VarInt::from_u32(0x100), b"handshake timeout");
                    }
                    completed
                });
                // Driven here so the deadline holds when no request asks.
                let driven = handshake.clone();
                tokio::spawn(async move { driven.completed().await });
                return Some((conn, Some(handshake)));
            }
            Err(c) => connecting = c,
        }
    }
    let handshake = tokio::time::timeout(opts.handshake_timeout, connecting).await;
    done(&handshaking);
    match handshake {
        Ok(Ok(conn)) => Some((conn, None)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "QUIC handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("QUIC handshake timed out");
            None
        }
    }
}

/// After GOAWAY and the last response, how long a connection waits for its client to close.
const DRAIN: Duration = Duration::from_secs(2);

type Resolver = h3::server::RequestResolver<h3_quinn::Connection, Bytes>;

/// Closes a connection for `why`: politely (GOAWAY, H3_NO_ERROR) when it is idle or has not
/// started, at once (H3_EXCESSIVE_LOAD) when its client holds a response without reading it.
async fn close(h3: &mut H3Conn, quic: &quinn::Connection, why: Closing, peer: SocketAddr) {
    match why {
        Closing::Idle | Closing::MadeRoom | Closing::HeadTimeout => {
            let _ = tokio::time::timeout(GOAWAY_WRITE, h3.shutdown(0)).await;
            quic.close(quinn::VarInt::from_u32(0x100), b"closing");
        }
        Closing::SendTimeout => {
            tracing::debug!(%peer, "dropping an HTTP/3 client that does not read");
            quic.close(quinn::VarInt::from_u32(0x107), b"client timeout");
        }
    }
}

type H3Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;

/// What the watchdog decides for the connection, once it decides to close it.
async fn watch(activity: &Activity, limits: &QuietLimits) -> Closing {
    loop {
        let now = activity.now();
        match verdict(&activity.snapshot(), now, limits) {
            Verdict::LookAgainAt(at) => {
                let wait = Duration::from_millis(at.saturating_sub(now)).min(LONGEST_LOOK);
                tokio::time::sleep(wait).await;
            }
            Verdict::Close(why) => return why,
        }
    }
}

/// The longest the watchdog sleeps between two looks (a timeout configured as years must not
/// overflow an `Instant`).
const LONGEST_LOOK: Duration = Duration::from_secs(24 * 3600);

async fn request(resolver: Resolver, engine: Arc<Engine>, conn: ConnInfo, activity: Arc<Activity>) {
    let (req, stream) = match resolver.resolve_request().await {
        Ok(r) => r,
        Err(e) => {
            // A malformed request: h3 has reset the stream (or closed the connection) with
            // the error code RFC 9114 names.
            tracing::debug!(error = %e, peer = %conn.peer, "HTTP/3 request refused");
            return;
        }
    };
    if let Some(why) = malformed(&req) {
        //= https://www.rfc-editor.org/rfc/rfc9114#section-4.1.2
        //# Malformed requests or responses that are detected MUST be treated as a stream error
        //# of type H3_MESSAGE_ERROR.
        tracing::debug!(why, peer = %conn.peer, "malformed HTTP/3 request");
        let mut stream = stream;
        stream.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
        stream.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
        return;
    }
    // In flight until the response is handed over whole (or the stream fails).
    let _in_flight: InFlight = activity.request_started();
    let declared = content_length(req.headers());
    let (mut send, recv) = stream.split();
    let (parts, ()) = req.into_parts();
    let lied = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let req = Request::from_parts(parts, request_body(recv, declared, lied.clone()));
    let resp = engine.handle(req, conn).await;
    if lied.load(std::sync::atomic::Ordering::Relaxed) {
        //= https://www.rfc-editor.org/rfc/rfc9114#section-4.1.2
        //# A request or response that is defined as having content when it contains a
        //# Content-Length header field is malformed if the value of the Content-Length header
        //# field does not equal the sum of the DATA frame lengths received.
        send.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
        return;
    }
    let (mut head, body) = resp.into_parts();
    strip_connection_fields(&mut head.headers);
    // Every write waits on the client's flow-control credit: the watchdog times it.
    activity.body_frame_produced();
    let sent = send.send_response(Response::from_parts(head, ())).await;
    activity.body_asked_again();
    if let Err(e) = sent {
        tracing::debug!(error = %e, "HTTP/3 response head not sent");
        send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
        return;
    }
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    // Waiting on the client (its flow-control credit) until the frame is taken.
                    activity.body_frame_produced();
                    let sent = send.send_data(data).await;
                    activity.body_asked_again();
                    if sent.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                // The body failed mid-way (an upstream cut): the client must not take a
                // truncated body for a whole one.
                tracing::debug!(error = %e, "HTTP/3 response body failed");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            }
        }
    }
    activity.body_frame_produced();
    let _ = send.finish().await;
    activity.body_asked_again();
}

/// A request stream's DATA frames as an `http_body::Body`, held to the `content-length` the
/// request declared: more or fewer bytes end the body with an error and set `lied`, and the
/// stream is then reset with H3_MESSAGE_ERROR (the engine never forwards a body that fails).
fn request_body(
    recv: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
    declared: Option<u64>,
    lied: Arc<std::sync::atomic::AtomicBool>,
) -> http_body_util::StreamBody<
    impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, BoxError>> + Send + 'static,
> {
    let state = Some((recv, 0u64, lied));
    let frames = futures_util::stream::unfold(state, move |state| async move {
        let (mut recv, got, lied) = state?;
        let mismatch = |lied: &std::sync::atomic::AtomicBool| {
            lied.store(true, std::sync::atomic::Ordering::Relaxed);
            let err: BoxError = "request body does not match its content-length".into();
            err
        };
        match recv.recv_data().await {
            Ok(Some(mut buf)) => {
                let data = buf.copy_to_bytes(buf.remaining());
                let got = got + data.len() as u64;
                if declared.is_some_and(|n| got > n) {
                    recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
                    return Some((Err(mismatch(&lied)), None));
                }
                Some((Ok(http_body::Frame::data(data)), Some((recv, got, lied))))
            }
            Ok(None) if declared.is_some_and(|n| got != n) => Some((Err(mismatch(&lied)), None)),
            Ok(None) => None,
            Err(e) => Some((Err(BoxError::from(e.to_string())), None)),
        }
    });
    http_body_util::StreamBody::new(frames)
}

/// The request's `content-length`, when it has exactly one that is a number (the engine
/// refuses any other with 400).
fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut values = h.get_all(http::header::CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// What makes a request malformed (RFC 9114 §4.2, §4.3.1) that h3 itself lets through. h3
/// already refuses a missing or empty `:method`, `:scheme`, `:path` or authority, and an
/// `:authority` that contradicts Host.
fn malformed<B>(req: &Request<B>) -> Option<&'static str> {
    let h = req.headers();
    //= https://www.rfc-editor.org/rfc/rfc9114#section-4.2
    //# An endpoint MUST NOT generate an HTTP/3 field section containing connection-specific
    //# fields; any message containing connection-specific fields MUST be treated as
    //# malformed.
    for name in CONNECTION_SPECIFIC {
        if h.contains_key(name) {
            return Some("connection-specific field");
        }
    }
    //# The only exception to this is the TE header field, which MAY be present in an HTTP/3
    //# request header; when it is, it MUST NOT contain any value other than "trailers".
    if h.get_all(http::header::TE)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        return Some("te other than trailers");
    }
    None
}

/// Connection-specific fields are not allowed in HTTP/3 (RFC 9114 §4.2).
fn strip_connection_fields(h: &mut HeaderMap) {
    for name in CONNECTION_SPECIFIC {
        h.remove(name);
    }
    h.remove(http::header::TE);
}

/// The connection-specific fields of RFC 9114 §4.2 (`te` aside: a request may carry
/// `te: trailers`).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];
