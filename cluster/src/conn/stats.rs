//! What the front ends count about client connections, for `/metrics`: how many are open and
//! why the node closed the ones it closed (the client closing is the normal case, not counted).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::quiet::Closing;

/// Client-connection counters shared by every listener of a node.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections accepted (TCP; TLS ones before their handshake).
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Closed after `timeouts.client_idle` with nothing in flight.
    pub closed_idle: AtomicU64,
    /// Dropped because a request head (or TLS handshake) did not arrive within
    /// `timeouts.client_header`.
    pub closed_header_timeout: AtomicU64,
    /// Dropped because the client took none of our bytes for `timeouts.client_idle`.
    pub closed_send_timeout: AtomicU64,
    /// Closed while idle to make room at the connection limit.
    pub closed_made_room: AtomicU64,
    /// Closed at once: the client's address already held `limits.max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// Accepts that failed (out of file descriptors, mostly); each costs a short back-off.
    pub accept_errors: AtomicU64,
    /// Accepts that failed on the admin listener.
    pub admin_accept_errors: AtomicU64,
}

impl ConnectionStats {
    /// Counts an accepted connection as open until the guard is dropped.
    pub fn opened(&self) -> OpenConnection<'_> {
        self.accepted.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
        OpenConnection(self)
    }

    /// Counts a failed accept.
    pub fn accept_failed(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
    }

    /// Counts a connection the node closed.
    pub fn closed(&self, why: Closing) {
        let counter = match why {
            Closing::Idle => &self.closed_idle,
            Closing::HeadTimeout => &self.closed_header_timeout,
            Closing::SendTimeout => &self.closed_send_timeout,
            Closing::MadeRoom => &self.closed_made_room,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// One open connection, as counted in [`ConnectionStats::open`].
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a ConnectionStats);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}
