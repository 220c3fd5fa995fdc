//! How request bodies go out to an origin, against origins on loopback whose
//! every byte is the test's: an answer that comes while the body is still going out (a
//! refusal ends the sending, an early 2xx does not, RFC 9112 §9.5), and the timers of an
//! upload (the first-byte timeout counts from the request's end; an origin that stops taking
//! the body is a 504 after the idle timeout), over HTTP/1.1 and HTTP/2.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::{config_from_flags, fill, h1_client, send};
use tiercel_cluster::config::Role;
use tiercel_edge::node;
use tokio::io::AsyncWriteExt;

/// An edge in front of `origin`, with `flags` besides.
async fn edge(origin: SocketAddr, flags: &[&str]) -> node::RunningNode {
    edge_with(origin, flags, |_| {}).await
}

/// An edge in front of `origin` speaking `protocol` to it, with `flags` besides.
async fn edge_speaking(origin: SocketAddr, protocol: &str, flags: &[&str]) -> node::RunningNode {
    edge_with(origin, flags, |c| c.origin_protocol = protocol.into()).await
}

/// An edge in front of `origin`, with `flags` besides and `tweak` applied.
async fn edge_with(
    origin: SocketAddr,
    flags: &[&str],
    tweak: impl FnOnce(&mut tiercel_cluster::config::NodeConfig),
) -> node::RunningNode {
    support::init_logs();
    let url = format!("http://{origin}");
    let mut all = vec!["--listen", "127.0.0.1:0", "--origin", url.as_str()];
    all.extend_from_slice(flags);
    let mut cfg = config_from_flags(&all);
    tweak(&mut cfg);
    node::start(Role::Edge, &cfg).await.expect("edge starts")
}

/// Reads up to the end of a request head; the head's length, or `None` at the end of the
/// stream.
async fn read_head(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if !fill(tcp, buf).await {
            return None;
        }
    }
}

/// The `content-length` of a request head.
fn declared_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// An origin that reads a request's head only, answers with `answer`, and then neither reads
/// nor closes for a minute (the connection is kept to the end of the test).
async fn refusing_origin(answer: &'static [u8]) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut tcp, &mut buf).await.is_none() {
                    return;
                }
                let _ = tcp.write_all(answer).await;
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            });
        }
    });
    addr
}

/// A client that declares a 64 MiB upload, writes it while it can (the writes go on in the
/// background), and reads the edge's response.
async fn upload_64_mib(edge: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let s = tokio::net::TcpStream::connect(edge).await.unwrap();
    let writer = s.into_std().unwrap();
    let mut reader = tokio::net::TcpStream::from_std(writer.try_clone().unwrap()).unwrap();
    let mut writer = tokio::net::TcpStream::from_std(writer).unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 67108864\r\n\r\n");
    writer.write_all(head.as_bytes()).await.unwrap();
    let pump = tokio::spawn(async move {
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..1024 {
            if writer.write_all(&piece).await.is_err() {
                return;
            }
        }
    });
    let (status, _, body) = support::read_h1_response(&mut reader, false).await;
    pump.abort();
    (status, body)
}

//= https://www.rfc-editor.org/rfc/rfc9112#section-9.5
//# A client sending a message body SHOULD monitor the network connection for an error
//# response while it is transmitting the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_origin_refuses_early_gets_its_answer_not_a_timeout() {
    // It answers without closing, and stops reading: only watching the socket while the body
    // goes out finds the answer (the first-byte timeout would turn it into a 504).
    let refusing =
        refusing_origin(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
            .await;
    let node = edge(refusing, &["--first-byte-timeout", "5s"]).await;
    let (status, body) = upload_64_mib(node.listen.unwrap(), "/upload").await;
    assert_eq!((status, &body[..]), (413, &b"too large"[..]));
    // A redirect refuses the body too.
    node.shutdown().await;
    let redirecting = refusing_origin(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let node = edge(redirecting, &["--first-byte-timeout", "5s"]).await;
    let (status, body) = upload_64_mib(node.listen.unwrap(), "/upload").await;
    assert_eq!((status, body.len()), (307, 0));
    node.shutdown().await;
}

/// An origin that, once it has a request's head, writes `early`, waits `pause`, reads the
/// whole body, then writes `tail(bytes of body read)` and closes.
async fn scripted_origin(
    early: &'static [u8],
    pause: Duration,
    tail: fn(usize) -> String,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        let Some(head_end) = read_head(&mut tcp, &mut buf).await else {
            return;
        };
        let declared = declared_length(&buf[..head_end]);
        if tcp.write_all(early).await.is_err() {
            return;
        }
        tokio::time::sleep(pause).await;
        while buf.len() - head_end < declared {
            if !fill(&mut tcp, &mut buf).await {
                return;
            }
        }
        let _ = tcp.write_all(tail(buf.len() - head_end).as_bytes()).await;
        let _ = tcp.shutdown().await;
    });
    addr
}

/// Uploads `len` bytes through the edge at `edge` with hyper's client.
async fn upload(edge: SocketAddr, len: usize) -> support::Resp {
    send(
        &h1_client(),
        Request::post(format!("http://{edge}/upload"))
            .body(Full::new(Bytes::from(vec![b'x'; len])))
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_2xx_still_gets_the_whole_body() {
    // The origin says 100 Continue and 200 as soon as it has the head, then reads the whole
    // body and ends its response with the count: the edge must go on sending after the 200.
    let origin = scripted_origin(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        Duration::ZERO,
        |got| {
            let got = got.to_string();
            format!("{:x}\r\n{got}\r\n0\r\n\r\n", got.len())
        },
    )
    .await;
    let node = edge(origin, &[]).await;
    let resp = upload(node.listen.unwrap(), 4 << 20).await;
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], (4 << 20).to_string().as_bytes());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_2xx_that_closes_after_still_gets_the_whole_body() {
    // A 200 delimited by the close, sent at once: the origin closing after it does not mean
    // it refuses the body, which it reads before it writes the rest of its answer.
    let origin = scripted_origin(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        Duration::ZERO,
        |got| got.to_string(),
    )
    .await;
    let node = edge(origin, &[]).await;
    let resp = upload(node.listen.unwrap(), 4 << 20).await;
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], (4 << 20).to_string().as_bytes());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_early_answer_is_a_502_and_nothing_after_it_is_read_as_a_response() {
    // Two lengths (RFC 9112 §6.3: a 502), and bytes after the head that look like a response.
    let origin = refusing_origin(
        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
    )
    .await;
    let node = edge(origin, &["--first-byte-timeout", "5s"]).await;
    let (status, body) = upload_64_mib(node.listen.unwrap(), "/upload").await;
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("forged"), "{body}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_first_byte_timeout_is_answered() {
    // The origin reads nothing for 3 s, then all 32 MiB (more than the sockets' buffers hold,
    // so the body cannot have gone out before), and answers at once; the first-byte timeout
    // of 2 s counts from the request's end, not its start.
    let origin = scripted_origin(b"", Duration::from_secs(3), |got| {
        let got = got.to_string();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{got}",
            got.len()
        )
    })
    .await;
    let node = edge(origin, &["--first-byte-timeout", "2s"]).await;
    let resp = upload(node.listen.unwrap(), 32 << 20).await;
    assert_eq!(
        (resp.status.as_u16(), &resp.body[..]),
        (200, (32 << 20).to_string().as_bytes())
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_stops_taking_an_upload_is_a_504_after_the_idle_timeout() {
    // It reads the head, then neither reads nor answers: once the sockets' buffers are full
    // nothing moves, and the idle timeout (1 s) ends the exchange long before the first-byte
    // timeout would (30 s, beyond the test client's own wait).
    let silent = refusing_origin(b"").await;
    let node = edge(silent, &["--idle-timeout", "1s"]).await;
    let (status, body) = upload_64_mib(node.listen.unwrap(), "/upload").await;
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("upstream stopped taking the request"),
        "{body}"
    );
    node.shutdown().await;
}

/// An h2c origin (prior knowledge) with 64 KiB windows that waits `pause` before it reads a
/// request body, then reads it all and answers 200 with the count of bytes read; with
/// `pause` `None` it reads nothing and never answers.
async fn h2c_origin(pause: Option<Duration>) -> SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| async move {
                        let Some(pause) = pause else {
                            std::future::pending::<()>().await;
                            unreachable!()
                        };
                        tokio::time::sleep(pause).await;
                        let got = req
                            .into_body()
                            .collect()
                            .await
                            .map_or(0, |b| b.to_bytes().len());
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(got.to_string()),
                        )))
                    },
                );
                // Small windows: the edge can send little ahead of what the origin has read.
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .initial_stream_window_size(64 * 1024)
                        .initial_connection_window_size(64 * 1024)
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_h2_an_upload_longer_than_the_first_byte_timeout_is_answered() {
    // The origin reads nothing for 1.5 s (the windows hold 64 KiB of the 1 MiB), then all of
    // it, and answers at once; the first-byte timeout is 1 s.
    let origin = h2c_origin(Some(Duration::from_millis(1500))).await;
    let node = edge_speaking(origin, "h2", &["--first-byte-timeout", "1s"]).await;
    let resp = upload(node.listen.unwrap(), 1 << 20).await;
    assert_eq!(
        (resp.status.as_u16(), &resp.body[..]),
        (200, (1 << 20).to_string().as_bytes())
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_h2_an_origin_that_stops_taking_an_upload_is_a_504_after_the_idle_timeout() {
    let origin = h2c_origin(None).await;
    let node = edge_speaking(origin, "h2", &["--idle-timeout", "1s"]).await;
    let (status, body) = upload_64_mib(node.listen.unwrap(), "/upload").await;
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("upstream stopped taking the request"),
        "{body}"
    );
    node.shutdown().await;
}

/// Sends a request head declaring a 1 MiB body and 1 KiB of it, then nothing more, and reads
/// the edge's response.
async fn upload_then_pause(edge: SocketAddr) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(edge).await.unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1048576\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[b'x'; 1024]).await.unwrap();
    let (status, _, body) = support::read_h1_response(&mut s, false).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_while_the_client_pauses_is_passed_on_at_once() {
    // The edge waits on the client's next piece, not on a write: the answer must still wake
    // it (else it would come only once the client-body timeout of 60 s broke the body off).
    let refusing =
        refusing_origin(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
            .await;
    let node = edge_with(refusing, &[], |c| {
        c.timeouts.client_body = Duration::from_secs(60);
    })
    .await;
    let (status, body) = upload_then_pause(node.listen.unwrap()).await;
    assert_eq!((status, &body[..]), (413, &b"too large"[..]));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_2xx_to_a_body_that_breaks_off_is_a_408() {
    // The origin says 200 at once and would read on; the client's body stops for longer than
    // the client-body timeout: the client hears why, not an answer to half an upload.
    let origin = scripted_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::ZERO,
        |_| String::new(),
    )
    .await;
    let node = edge_with(origin, &[], |c| {
        c.timeouts.client_body = Duration::from_secs(1);
    })
    .await;
    let (status, _) = upload_then_pause(node.listen.unwrap()).await;
    assert_eq!(status, 408);
    node.shutdown().await;
}
