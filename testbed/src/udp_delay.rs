//! A UDP relay that holds every datagram for a fixed time each way: a long round trip on
//! loopback, for tests where what arrives before a QUIC handshake completes matters (0-RTT).
//! Kernel netem is not available here, so the delay is made in user space. Datagrams keep
//! their order (a QUIC server drops 0-RTT packets that overtake the Initial).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A running relay to one target; stops when dropped.
#[derive(Debug)]
pub struct UdpDelay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// The largest datagram relayed.
const MAX_DATAGRAM: usize = 65_536;

/// Datagrams on their way, with when each is due.
type Line = mpsc::UnboundedSender<(Instant, Bytes)>;

impl UdpDelay {
    /// Relays datagrams sent to [`addr`](Self::addr) on to `target` and the answers back, each
    /// held `one_way` in either direction. Each client address gets its own socket toward the
    /// target, so the target sees one peer per client.
    pub async fn start(target: SocketAddr, one_way: Duration) -> io::Result<UdpDelay> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let task = tokio::spawn(async move {
            let mut flows: HashMap<SocketAddr, Line> = HashMap::new();
            // Dropped with this task (the relay dropped), which stops every flow's tasks.
            let mut tasks = JoinSet::new();
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while let Ok((n, client)) = front.recv_from(&mut buf).await {
                let line = match flows.entry(client) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let Ok(back) = open_back(target).await else {
                            continue;
                        };
                        let (to_target, due) = mpsc::unbounded_channel();
                        let (to_client, due_back) = mpsc::unbounded_channel();
                        tasks.spawn(deliver(due, back.clone(), None));
                        tasks.spawn(deliver(due_back, front.clone(), Some(client)));
                        tasks.spawn(answers(back, to_client, one_way));
                        e.insert(to_target)
                    }
                };
                let _ = line.send((Instant::now() + one_way, Bytes::copy_from_slice(&buf[..n])));
            }
        });
        Ok(UdpDelay { addr, task })
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UdpDelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn open_back(target: SocketAddr) -> io::Result<Arc<UdpSocket>> {
    let back = UdpSocket::bind("127.0.0.1:0").await?;
    back.connect(target).await?;
    Ok(Arc::new(back))
}

/// Reads the target's datagrams for one client onto the line back to it.
async fn answers(back: Arc<UdpSocket>, line: Line, one_way: Duration) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while let Ok(n) = back.recv(&mut buf).await {
        if line
            .send((Instant::now() + one_way, Bytes::copy_from_slice(&buf[..n])))
            .is_err()
        {
            return;
        }
    }
}

/// Sends each datagram on `line` when it is due, in order: to `to`, or on the connected
/// `socket` when `to` is `None`.
async fn deliver(
    mut line: mpsc::UnboundedReceiver<(Instant, Bytes)>,
    socket: Arc<UdpSocket>,
    to: Option<SocketAddr>,
) {
    while let Some((due, datagram)) = line.recv().await {
        tokio::time::sleep_until(due).await;
        let _ = match to {
            Some(to) => socket.send_to(&datagram, to).await,
            None => socket.send(&datagram).await,
        };
    }
}
