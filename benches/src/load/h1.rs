//! HTTP/1.1 keep-alive workers: one connection each, one request at a time (closed loop).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::exchange::exchange;
use super::recorder::{ErrorKind, Recorder};
use super::target::Target;
use super::{CONNECT_BACKOFF, Protocol, Settings};

/// Runs one connection's closed loop until the window ends: connect, then request after
/// request on the same connection; reconnect when the server closes it or an exchange fails
/// in a way that leaves the connection unusable.
pub(crate) async fn worker(target: Rc<Target>, settings: Rc<Settings>, rec: Rc<RefCell<Recorder>>) {
    let end = rec.borrow().window().end;
    'connection: while Instant::now() < end {
        let mut sender = match connect(&target, settings.timeout).await {
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
        while Instant::now() < end {
            // A server that closed the keep-alive connection (request limit, idle timeout)
            // is not an error: open a new one.
            if sender.ready().await.is_err() {
                continue 'connection;
            }
            let started = Instant::now();
            let sent = sender.send_request(target.request(Protocol::H1));
            let result = exchange(sent, settings.timeout, settings.expected_len).await;
            let finished = Instant::now();
            match result {
                Ok(bytes) => rec.borrow_mut().success(started, finished, bytes),
                Err(kind) => {
                    rec.borrow_mut().failure(kind, finished);
                    // After a complete non-2xx answer the connection is still in sync.
                    if kind != ErrorKind::Status {
                        continue 'connection;
                    }
                }
            }
        }
    }
}

/// Opens a TCP connection (no Nagle) and does the HTTP/1.1 handshake, driving the connection
/// on a local task that ends when the sender is dropped.
async fn connect(
    target: &Target,
    timeout: Duration,
) -> Result<http1::SendRequest<Empty<Bytes>>, ErrorKind> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(target.addr))
        .await
        .map_err(|_| ErrorKind::Connect)?
        .map_err(|_| ErrorKind::Connect)?;
    stream.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ErrorKind::Connect)?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
