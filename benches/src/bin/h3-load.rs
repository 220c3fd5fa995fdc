//! Closed-loop load over TLS for HTTP/2 and HTTP/3 with the same code around both, so the two
//! protocols of one server compare fairly: N connections × M streams, each stream a loop of
//! GETs of one URL, for a warm-up and then a measured window; one JSON line out.
//!
//! ```text
//! taskset -c 1 h3-load --protocol h3 --connections 4 --streams 32 https://127.0.0.1:8443/obj
//! ```
//!
//! The server's certificate is not verified (a benchmark of a node with a self-signed one, on
//! loopback). One thread: pin it with `taskset`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use clap::Parser;
use hdrhistogram::Histogram;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug, Parser)]
#[command(name = "h3-load", about = "HTTP/2-over-TLS or HTTP/3 closed-loop load")]
struct Args {
    /// `h2` (over TLS, ALPN h2) or `h3` (QUIC).
    #[arg(long)]
    protocol: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Concurrent streams per connection.
    #[arg(long, default_value_t = 32)]
    streams: usize,
    /// Warm-up, seconds (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured window, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Every body must be this long.
    #[arg(long)]
    expect_length: Option<u64>,
    /// Instead of load: this many fetches one after another, each on a new connection, and
    /// their time to last byte (handshake included), as over a slow or lossy link.
    #[arg(long)]
    sequential: Option<usize>,
    /// `https://host:port/path?query`.
    url: String,
}

/// What the measured window saw.
struct Tally {
    start: Instant,
    end: Instant,
    latency_us: Histogram<u64>,
    ok: u64,
    errors: u64,
    bytes: u64,
}

impl Tally {
    fn record(&mut self, started: Instant, result: Result<u64, ()>) {
        let now = Instant::now();
        if started < self.start || now > self.end {
            return;
        }
        match result {
            Ok(n) => {
                self.ok += 1;
                self.bytes += n;
                let us = now.duration_since(started).as_micros() as u64;
                let _ = self.latency_us.record(us.max(1));
            }
            Err(()) => self.errors += 1,
        }
    }
}

/// Accepts any certificate: the benchmark talks to its own node on loopback.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls(alpn: &[u8]) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let uri: Uri = args.url.parse().context("the URL")?;
    if uri.scheme_str() != Some("https") {
        bail!("the URL must be https://");
    }
    let authority = uri.authority().context("the URL has no host")?.clone();
    let addr: SocketAddr = format!(
        "{}:{}",
        authority.host().trim_matches(|c| c == '[' || c == ']'),
        authority.port_u16().unwrap_or(443)
    )
    .parse()
    .context("the URL's host must be an IP address")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    if let Some(n) = args.sequential {
        return local.block_on(
            &runtime,
            sequential(&args.protocol, addr, uri, n, args.expect_length),
        );
    }
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration);
    let tally = Rc::new(RefCell::new(Tally {
        start,
        end,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        ok: 0,
        errors: 0,
        bytes: 0,
    }));
    local.block_on(&runtime, async {
        let mut workers = Vec::new();
        for _ in 0..args.connections {
            let (uri, tally) = (uri.clone(), tally.clone());
            let (streams, expect) = (args.streams, args.expect_length);
            workers.push(match args.protocol.as_str() {
                "h2" => tokio::task::spawn_local(async move {
                    h2_connection(addr, uri, streams, expect, end, tally).await
                }),
                "h3" => tokio::task::spawn_local(async move {
                    h3_connection(addr, uri, streams, expect, end, tally).await
                }),
                other => bail!("unknown protocol {other:?}: h2 or h3"),
            });
        }
        for w in workers {
            w.await??;
        }
        anyhow::Ok(())
    })?;
    let t = tally.borrow();
    let secs = args.duration;
    let q = |p: f64| t.latency_us.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "protocol": args.protocol,
            "connections": args.connections,
            "streams": args.streams,
            "requests": t.ok,
            "errors": t.errors,
            "rps": t.ok as f64 / secs,
            "mib_per_s": t.bytes as f64 / secs / (1024.0 * 1024.0),
            "p50_ms": q(0.5),
            "p99_ms": q(0.99),
            "max_ms": t.latency_us.max() as f64 / 1000.0,
        })
    );
    Ok(())
}

fn get(uri: &Uri) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = uri.clone();
    *req.version_mut() = http::Version::HTTP_2;
    req
}

type H2Send = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;
type H3Send = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// An h2 connection over TLS (ALPN h2), its driver spawned.
async fn h2_connect(addr: SocketAddr) -> anyhow::Result<H2Send> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls(b"h2")?));
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(32 * 1024 * 1024);
    let (sender, conn) = builder.handshake(TokioIo::new(tls)).await?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One GET over h2: the body length, if the answer was a 2xx of the expected length.
async fn h2_fetch(sender: &mut H2Send, uri: &Uri, expect: Option<u64>) -> Result<u64, ()> {
    sender.ready().await.map_err(|_| ())?;
    let resp = sender.send_request(get(uri)).await.map_err(|_| ())?;
    let ok = resp.status().is_success();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        n += frame
            .map_err(|_| ())?
            .data_ref()
            .map_or(0, |d| d.len() as u64);
    }
    (ok && expect.is_none_or(|e| e == n)).then_some(n).ok_or(())
}

/// An h3 connection (the same 4 MiB stream and 32 MiB connection windows as h2), its driver
/// spawned; the endpoint is returned so the caller can close it.
async fn h3_connect(addr: SocketAddr) -> anyhow::Result<(H3Send, quinn::Endpoint)> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls(b"h3")?)?;
    let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window(quinn::VarInt::from_u32(4 * 1024 * 1024))
        .receive_window(quinn::VarInt::from_u32(32 * 1024 * 1024));
    config.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(config);
    let conn = endpoint.connect(addr, "localhost")?.await?;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
    tokio::task::spawn_local(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok((sender, endpoint))
}

/// One GET over h3, judged as [`h2_fetch`] judges one.
async fn h3_fetch(sender: &mut H3Send, uri: &Uri, expect: Option<u64>) -> Result<u64, ()> {
    let req = Request::get(uri.clone()).body(()).map_err(|_| ())?;
    let mut stream = sender.send_request(req).await.map_err(|_| ())?;
    stream.finish().await.map_err(|_| ())?;
    let resp = stream.recv_response().await.map_err(|_| ())?;
    let ok = resp.status().is_success();
    let mut n = 0u64;
    while let Some(chunk) = stream.recv_data().await.map_err(|_| ())? {
        n += chunk.remaining() as u64;
    }
    (ok && expect.is_none_or(|e| e == n)).then_some(n).ok_or(())
}

/// `streams` closed loops of fetches over one connection's `sender` until `end`; `fetch`
/// takes the sender and hands it back with the outcome.
async fn stream_loops<S, F, Fut>(
    sender: S,
    streams: usize,
    end: Instant,
    tally: Rc<RefCell<Tally>>,
    fetch: F,
) where
    S: Clone + 'static,
    F: Fn(S) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = (S, Result<u64, ()>)>,
{
    let mut loops = Vec::new();
    for _ in 0..streams {
        let (mut sender, tally, fetch) = (sender.clone(), tally.clone(), fetch.clone());
        loops.push(tokio::task::spawn_local(async move {
            while Instant::now() < end {
                let started = Instant::now();
                let (back, result) = fetch(sender).await;
                sender = back;
                tally.borrow_mut().record(started, result);
            }
        }));
    }
    for l in loops {
        let _ = l.await;
    }
}

async fn h2_connection(
    addr: SocketAddr,
    uri: Uri,
    streams: usize,
    expect: Option<u64>,
    end: Instant,
    tally: Rc<RefCell<Tally>>,
) -> anyhow::Result<()> {
    let sender = h2_connect(addr).await?;
    stream_loops(sender, streams, end, tally, move |mut s: H2Send| {
        let uri = uri.clone();
        async move {
            let r = h2_fetch(&mut s, &uri, expect).await;
            (s, r)
        }
    })
    .await;
    Ok(())
}

async fn h3_connection(
    addr: SocketAddr,
    uri: Uri,
    streams: usize,
    expect: Option<u64>,
    end: Instant,
    tally: Rc<RefCell<Tally>>,
) -> anyhow::Result<()> {
    let (sender, endpoint) = h3_connect(addr).await?;
    stream_loops(sender, streams, end, tally, move |mut s: H3Send| {
        let uri = uri.clone();
        async move {
            let r = h3_fetch(&mut s, &uri, expect).await;
            (s, r)
        }
    })
    .await;
    endpoint.close(quinn::VarInt::from_u32(0x100), b"done");
    Ok(())
}

/// `n` fetches, each on a new connection: time to last byte, handshake included.
async fn sequential(
    protocol: &str,
    addr: SocketAddr,
    uri: Uri,
    n: usize,
    expect: Option<u64>,
) -> anyhow::Result<()> {
    let mut times_ms = Vec::new();
    let mut errors = 0u64;
    for _ in 0..n {
        let started = Instant::now();
        let one = async {
            match protocol {
                "h2" => one_fetch_h2(addr, &uri, expect).await,
                "h3" => one_fetch_h3(addr, &uri, expect).await,
                other => bail!("unknown protocol {other:?}: h2 or h3"),
            }
        };
        match tokio::time::timeout(Duration::from_secs(120), one).await {
            Ok(Ok(())) => times_ms.push(started.elapsed().as_secs_f64() * 1000.0),
            _ => errors += 1,
        }
    }
    times_ms.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if times_ms.is_empty() {
            f64::NAN
        } else {
            times_ms[((times_ms.len() - 1) as f64 * p).round() as usize]
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "protocol": protocol,
            "fetches": times_ms.len(),
            "errors": errors,
            "ttlb_p50_ms": q(0.5),
            "ttlb_p90_ms": q(0.9),
            "ttlb_max_ms": q(1.0),
        })
    );
    Ok(())
}

async fn one_fetch_h2(addr: SocketAddr, uri: &Uri, expect: Option<u64>) -> anyhow::Result<()> {
    let mut sender = h2_connect(addr).await?;
    h2_fetch(&mut sender, uri, expect)
        .await
        .map_err(|()| anyhow::anyhow!("the h2 fetch failed"))?;
    Ok(())
}

async fn one_fetch_h3(addr: SocketAddr, uri: &Uri, expect: Option<u64>) -> anyhow::Result<()> {
    let (mut sender, endpoint) = h3_connect(addr).await?;
    let fetched = h3_fetch(&mut sender, uri, expect).await;
    endpoint.close(quinn::VarInt::from_u32(0x100), b"done");
    fetched.map_err(|()| anyhow::anyhow!("the h3 fetch failed"))?;
    Ok(())
}
