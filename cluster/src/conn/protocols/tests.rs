//! Real loopback connections: the protocol is chosen by the first bytes however they are
//! split, an HTTP/1.1 head past its limit is refused, and a response of many frames leaves in
//! one write.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// A socket that notes the most bytes handed to it in one write call.
struct Counting {
    inner: TcpStream,
    largest: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.largest.fetch_max(buf.len(), Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total = bufs.iter().map(|b| b.len()).sum();
        self.largest.fetch_max(total, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

const FRAME: usize = 128 * 1024;
const FRAMES: usize = 8;

/// A body of `left` frames of [`FRAME`] bytes, each ready at once (as stored segments are).
struct Frames {
    left: usize,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![7u8; FRAME])))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact((self.left * FRAME) as u64)
    }
}

fn protocols() -> Arc<Protocols> {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .max_buf_size(1024 * 1024)
        .max_header_size(4096);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new());
    Arc::new(Protocols { http1, http2 })
}

/// Serves one connection: `/big` is eight 128 KiB frames, anything else a short text naming
/// the protocol. Returns the address, the most bytes handed to the socket in one write, and
/// the connection's watchdog state.
async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<Activity>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let largest = Arc::new(AtomicUsize::new(0));
    let noted = largest.clone();
    let activity = Activity::new();
    let watched = activity.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let io = Counting {
            inner: tcp,
            largest: noted,
        };
        let service = service_fn(|req: Request<Incoming>| async move {
            let body = if req.uri().path() == "/big" {
                Frames { left: FRAMES }.boxed()
            } else {
                let text = format!("{:?}", req.version());
                http_body_util::Full::new(Bytes::from(text))
                    .map_err(|e| match e {})
                    .boxed()
            };
            Ok::<_, Infallible>(Response::new(body))
        });
        let _ = protocols().serve(io, service, watched).await;
    });
    (addr, largest, activity)
}

/// Everything the server sends until it closes; a reset after its answer (the client was
/// still sending) ends the read like a close.
async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("the connection closes in time")
        {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn http1_is_served_when_the_first_bytes_are_not_the_preface() {
    let (addr, _, activity) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    // "P" is also how the h2 preface begins: sent alone, then the rest, which must follow it
    // in order once HTTP/1.1 is chosen.
    let request = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    for piece in [&request[..1], &request[1..3], &request[3..]] {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = String::from_utf8(read_all(&mut s).await).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(!activity.snapshot().h2, "the watchdog times HTTP/1.1 heads");
    assert!(out.ends_with("HTTP/1.1"), "{out}");
}

#[tokio::test]
async fn http2_is_served_after_a_preface_split_across_reads() {
    let (addr, _, activity) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let preface = PREFACE.as_slice();
    for piece in [&preface[..1], &preface[1..10], &preface[10..]] {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An empty SETTINGS frame; an HTTP/2 server answers with its own SETTINGS (RFC 9113 §3.4),
    // where HTTP/1.1 would have answered 400.
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    // The server acknowledges our SETTINGS only after it read the whole preface intact; a
    // mangled one gets a GOAWAY instead.
    loop {
        let mut head = [0u8; 9];
        tokio::time::timeout(WAIT, s.read_exact(&mut head))
            .await
            .expect("a frame in time")
            .expect("a frame");
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.unwrap();
        assert_ne!(head[3], 7, "GOAWAY: {payload:?}");
        if head[3] == 4 && head[4] & 1 == 1 {
            break;
        }
    }
    assert!(activity.snapshot().h2, "the watchdog was told");
}

#[tokio::test]
async fn an_http1_head_past_its_limit_is_refused_with_431() {
    let (addr, _, _) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head = b"GET /x HTTP/1.1\r\nHost: a\r\n".to_vec();
    // Sent in pieces, as a slow client would: the limit holds as it arrives.
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    for _ in 0..8 {
        head.extend_from_slice(filler.as_bytes());
    }
    for piece in head.chunks(1500) {
        if s.write_all(piece).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let out = String::from_utf8_lossy(&read_all(&mut s).await).into_owned();
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
}

#[tokio::test]
async fn a_response_of_eight_frames_leaves_in_one_write() {
    let (addr, largest, _) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let out = read_all(&mut s).await;
    let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(out.len() - body_at, FRAME * FRAMES);
    // hyper handed the head and all eight frames to one write call (the kernel may take less
    // of it at once; what it is offered is hyper's queue).
    let largest = largest.load(Ordering::Relaxed);
    assert!(
        largest > FRAME * FRAMES,
        "at most {largest} bytes in one write"
    );
}
