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

/// A socket that counts the writes made to it.
struct Counting {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
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
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
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
/// the protocol. Returns the address and the count of writes to the socket.
async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = writes.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let io = Counting {
            inner: tcp,
            writes: counted,
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
        let _ = protocols().serve(io, service).await;
    });
    (addr, writes)
}

async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the connection closes in time")
        .expect("read");
    out
}

#[tokio::test]
async fn http1_is_served_when_the_first_bytes_are_not_the_preface() {
    let (addr, _) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // "P" is also how the h2 preface begins.
    s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let out = String::from_utf8(read_all(&mut s).await).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("HTTP/1.1"), "{out}");
}

#[tokio::test]
async fn http2_is_served_after_a_preface_split_across_reads() {
    let (addr, _) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let preface = PREFACE.as_slice();
    for piece in [&preface[..1], &preface[1..10], &preface[10..]] {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An empty SETTINGS frame; an HTTP/2 server answers with its own SETTINGS (RFC 9113 §3.4),
    // where HTTP/1.1 would have answered 400.
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("a frame in time")
        .expect("a frame");
    assert_eq!(head[3], 4, "the first frame is SETTINGS: {head:?}");
    assert_eq!(&head[5..9], &[0, 0, 0, 0], "on stream 0");
}

#[tokio::test]
async fn an_http1_head_past_its_limit_is_refused_with_431() {
    let (addr, _) = server().await;
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
    let (addr, writes) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let out = read_all(&mut s).await;
    let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(out.len() - body_at, FRAME * FRAMES);
    // The head and all eight frames in one write; a kernel that takes less at once may split
    // it, never into a write per frame.
    let n = writes.load(Ordering::Relaxed);
    assert!(n < FRAMES, "{n} writes for {FRAMES} frames");
}
