//! h2 (cleartext, prior knowledge) workers: N connections, each carrying M streams that each
//! run a closed loop, so N × M requests are in flight at any time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::exchange::exchange;
use super::recorder::{ErrorKind, Recorder};
use super::target::Target;
use super::{CONNECT_BACKOFF, Protocol, Settings};

/// Runs one h2 connection until the window ends: connect, start `settings.streams` stream
/// loops on it, and reconnect if the connection dies under them.
pub(crate) async fn connection(
    target: Rc<Target>,
    settings: Rc<Settings>,
    rec: Rc<RefCell<Recorder>>,
) {
    let end = rec.borrow().window().end;
    while Instant::now() < end {
        let sender = match connect(&target, &settings).await {
            Ok(sender) => {
                rec.borrow_mut().connected(Instant::now());
                sender
            }
            Err(kind) => {
                rec.borrow_mut().failure(kind, Instant::now());
                tokio::time::sleep(CONNECT_BACKOFF).await;
                continue;
            }
        };
        let streams: Vec<_> = (0..settings.streams)
            .map(|_| {
                tokio::task::spawn_local(stream(
                    sender.clone(),
                    Rc::clone(&target),
                    Rc::clone(&settings),
                    Rc::clone(&rec),
                ))
            })
            .collect();
        drop(sender);
        for handle in streams {
            let _ = handle.await;
        }
    }
}

/// One stream slot's closed loop; returns when the window ends or the connection closes.
async fn stream(
    mut sender: http2::SendRequest<Empty<Bytes>>,
    target: Rc<Target>,
    settings: Rc<Settings>,
    rec: Rc<RefCell<Recorder>>,
) {
    let end = rec.borrow().window().end;
    while Instant::now() < end {
        if sender.ready().await.is_err() {
            return;
        }
        let started = Instant::now();
        let sent = sender.send_request(target.request(Protocol::H2));
        let result = exchange(sent, settings.timeout, settings.expected_len).await;
        let finished = Instant::now();
        match result {
            Ok(bytes) => rec.borrow_mut().success(started, finished, bytes),
            Err(kind) => {
                rec.borrow_mut().failure(kind, finished);
                if sender.is_closed() {
                    return;
                }
            }
        }
    }
}

/// Opens a TCP connection and does the h2 handshake with the configured flow-control windows.
async fn connect(
    target: &Target,
    settings: &Settings,
) -> Result<http2::SendRequest<Empty<Bytes>>, ErrorKind> {
    let stream = tokio::time::timeout(settings.timeout, TcpStream::connect(target.addr))
        .await
        .map_err(|_| ErrorKind::Connect)?
        .map_err(|_| ErrorKind::Connect)?;
    stream.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(settings.h2_stream_window)
        .initial_connection_window_size(settings.h2_connection_window)
        .max_frame_size(settings.h2_max_frame);
    let (sender, connection) =
        tokio::time::timeout(settings.timeout, builder.handshake(TokioIo::new(stream)))
            .await
            .map_err(|_| ErrorKind::Connect)?
            .map_err(|_| ErrorKind::Connect)?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
