//! Test harness: a real edge node on loopback in front of the real demo origin, and real
//! clients for HTTP/1.1, h2c (prior knowledge) and TLS (ALPN h2 or http/1.1).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tiercel_cluster::config::{NodeArgs, NodeConfig, Role};
use tiercel_edge::node::{self, RunningNode};
use tiercel_testbed::origin::Origin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every network wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Our own member of Cache-Status (the last one).
    pub fn cache_status(&self) -> String {
        let v = self.header("cache-status");
        v.rsplit(", ").next().unwrap_or("").to_string()
    }

    pub fn is_hit(&self) -> bool {
        self.cache_status().split(';').any(|p| p.trim() == "hit")
    }
}

/// An origin and an edge in front of it.
pub struct Edge {
    pub origin: Origin,
    pub node: RunningNode,
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub dir: Option<tempfile::TempDir>,
}

pub fn init_logs() {
    tiercel_cluster::telemetry::init("warn");
}

/// Node configuration from real command-line flags, as the binary would load it.
pub fn config_from_flags(flags: &[&str]) -> NodeConfig {
    let mut argv = vec!["tiercel-edge"];
    argv.extend_from_slice(flags);
    let args = Args::try_parse_from(argv).expect("flags parse");
    NodeConfig::load(Role::Edge, &args.node, std::iter::empty()).expect("config loads")
}

/// An edge in front of `origin` with a 64 MiB disk tier in `dir` (and `extra` flags): start it
/// twice on the same directory for a restart.
pub fn disk_config(origin: &str, dir: &std::path::Path, extra: &[&str]) -> NodeConfig {
    let disk = dir.to_str().expect("a UTF-8 temp dir");
    let mut flags = vec![
        "--listen",
        "127.0.0.1:0",
        "--origin",
        origin,
        "--disk-cache",
        disk,
        "--disk-cache-size",
        "64MiB",
    ];
    flags.extend_from_slice(extra);
    config_from_flags(&flags)
}

impl Edge {
    /// Origin + edge with `--listen` and `--tls-listen` on ephemeral ports and extra flags.
    pub async fn start(extra: &[&str]) -> Edge {
        Edge::start_cfg(extra, |_| {}).await
    }

    /// Like [`Edge::start`], with a last word on the loaded configuration.
    pub async fn start_cfg(extra: &[&str], tweak: impl FnOnce(&mut NodeConfig)) -> Edge {
        init_logs();
        let origin = Origin::start("127.0.0.1:0".parse().unwrap())
            .await
            .expect("origin starts");
        let url = origin.url();
        let mut flags = vec![
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--origin",
            url.as_str(),
        ];
        flags.extend_from_slice(extra);
        let mut cfg = config_from_flags(&flags);
        tweak(&mut cfg);
        let node = node::start(Role::Edge, &cfg).await.expect("edge starts");
        Edge {
            origin,
            node,
            client: h1_client(),
            dir: None,
        }
    }

    /// Like [`Edge::start`], with a disk tier in a fresh temp dir.
    pub async fn start_with_disk(extra: &[&str]) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        let mut flags = vec!["--disk-cache", path.as_str(), "--disk-cache-size", "64MiB"];
        flags.extend_from_slice(extra);
        let mut e = Edge::start(&flags).await;
        e.dir = Some(dir);
        e
    }

    pub fn addr(&self) -> SocketAddr {
        self.node.listen.unwrap()
    }

    pub fn tls_addr(&self) -> SocketAddr {
        self.node.tls_listen.unwrap()
    }

    pub fn url(&self, pq: &str) -> String {
        format!("http://{}{}", self.addr(), pq)
    }

    /// GET over HTTP/1.1.
    pub async fn get(&self, pq: &str) -> Resp {
        self.send(Request::get(self.url(pq)).body(Full::default()).unwrap())
            .await
    }

    /// GET with extra request headers.
    pub async fn get_with(&self, pq: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = Request::get(self.url(pq));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::default()).unwrap()).await
    }

    /// Any method with headers and a body.
    pub async fn request(
        &self,
        method: Method,
        pq: &str,
        headers: &[(&str, &str)],
        body: &'static [u8],
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(self.url(pq));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::from_static(body))).unwrap())
            .await
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        send(&self.client, req).await
    }

    /// Waits (up to [`WAIT`]) until the admin listener's `/metrics` shows `name` at `want`;
    /// the node needs `--admin-listen`.
    pub async fn wait_for_metric(&self, name: &str, want: &str) {
        let admin = self.node.admin_listen.expect("started with --admin-listen");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let req = Request::get(format!("http://{admin}/metrics"))
                .body(Full::default())
                .unwrap();
            let text = String::from_utf8_lossy(&send(&self.client, req).await.body).into_owned();
            let got = metric(&text, name);
            if got.as_deref() == Some(want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} is {got:?}, expected {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(self) {
        self.node.shutdown().await;
        self.origin.shutdown().await;
    }
}

/// Sends a request and reads the whole response, all within [`WAIT`].
pub async fn send<C>(client: &Client<C, Full<Bytes>>, req: Request<Full<Bytes>>) -> Resp
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    tokio::time::timeout(WAIT, async {
        let resp = client.request(req).await.expect("request succeeds");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body reads").to_bytes();
        Resp {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    })
    .await
    .expect("response within the deadline")
}

pub fn h1_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A TLS client trusting exactly `cert_der`, offering `alpn`.
pub fn tls_config(cert_der: &[u8], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der.to_vec()))
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

pub fn tls_client(
    cert_der: &[u8],
    h2: bool,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>> {
    // hyper-rustls sets ALPN itself from the enabled protocols.
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(cert_der, &[]))
        .https_only();
    let conn = if h2 {
        b.enable_http2().build()
    } else {
        b.enable_http1().build()
    };
    let mut cb = Client::builder(TokioExecutor::new());
    if h2 {
        cb.http2_only(true);
    }
    cb.build(conn)
}

/// Writes raw bytes on a fresh connection and returns everything read until the server
/// closes or 2 s of silence (enough for one response).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads more of a request (or anything) into `buf`; false at the end of the stream.
pub async fn fill(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match tcp.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Reads one HTTP/1.1 response with a Content-Length (no body when it answers a HEAD) from a
/// raw connection, bytes beyond it left unread; returns its status, head and body.
pub async fn read_h1_response(
    s: &mut tokio::net::TcpStream,
    head_request: bool,
) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the blank line, so nothing of the next response is consumed.
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .expect("response head in time")
            .expect("read works");
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = if head_request {
        0
    } else {
        head.to_ascii_lowercase()
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .expect("a content-length")
    };
    let mut body = vec![0u8; len];
    tokio::time::timeout(WAIT, s.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("the whole body");
    (raw_status(&head), head, body)
}

/// The real `tiercel-edge` binary, with no `TIERCEL_*` or `RUST_LOG` from the test's
/// environment leaking into its configuration.
pub fn edge_binary() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tiercel-edge"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TIERCEL_") {
            c.env_remove(k);
        }
    }
    c
}

/// A raw h2c (prior knowledge) client connection to `addr`, for tests that need frame-level
/// control (streams opened and left, headers only, resets).
pub async fn h2_connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (client, connection) = h2::client::Builder::new()
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2c handshake");
    tokio::spawn(connection);
    client.ready().await.expect("h2 ready")
}

/// HPACK "literal header field without indexing, new name" (RFC 7541 §6.2.2), no Huffman; every
/// name and value here is shorter than 127 bytes.
pub fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        out.push(u8::try_from(name.len()).unwrap());
        out.extend_from_slice(name.as_bytes());
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// One h2 frame: the 9-byte head (RFC 9113 §4.1) and `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

// h2 frame types and flags for raw frame tests (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// Reads one h2 frame from `s`: (type, flags, stream, payload).
pub async fn read_frame(s: &mut tokio::net::TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    tokio::time::timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("an h2 frame in time")
        .expect("an h2 frame");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    tokio::time::timeout(WAIT, s.read_exact(&mut payload))
        .await
        .expect("an h2 frame's payload in time")
        .expect("an h2 frame's payload");
    (head[3], head[4], stream, payload)
}

/// A free TCP port on loopback (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `tiercel-edge` binary as a child process (its memory and descriptors are its own,
/// not the test's), killed when dropped.
pub struct EdgeProcess {
    pub child: std::process::Child,
    pub listen: String,
    pub admin: String,
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EdgeProcess {
    /// Runs the edge with `--listen` and `--admin-listen` on free ports and `args`, under
    /// `wrapper` when given (e.g. `prlimit --nofile=N:N`), and waits until it listens.
    pub async fn spawn(wrapper: &[String], args: &[&str]) -> EdgeProcess {
        Self::spawn_logged(wrapper, args, None).await
    }

    /// Like [`EdgeProcess::spawn`], its log (stderr) going to `log`.
    pub async fn spawn_logged(
        wrapper: &[String],
        args: &[&str],
        log: Option<&std::fs::File>,
    ) -> EdgeProcess {
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let mut cmd = edge_binary();
        if let Some((program, rest)) = wrapper.split_first() {
            let edge = cmd.get_program().to_owned();
            cmd = std::process::Command::new(program);
            cmd.args(rest).arg(edge).env_remove("RUST_LOG");
        }
        let child = cmd
            .args(["--listen", &listen, "--admin-listen", &admin])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(log.map_or_else(std::process::Stdio::null, |f| {
                std::process::Stdio::from(f.try_clone().expect("log file"))
            }))
            .spawn()
            .expect("the edge binary starts");
        let e = EdgeProcess {
            child,
            listen,
            admin,
        };
        let deadline = std::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(&e.listen).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "the edge listens");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        e
    }
}

/// The value of a metric line `name value` in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
}

/// The status code of the first response in raw HTTP/1.1 output.
pub fn raw_status(out: &str) -> u16 {
    out.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
