//! Connection hygiene shared by every listener of every role: the edge's client listeners and
//! the purge-service's API and Raft listeners accept, time and cap connections the same way.
//!
//! ```text
//! accept ─▶ permit (node-wide cap, idle ones closed near it; per-address cap) ─▶ [TLS handshake] ─▶ hyper (h1/h2) ─▶ handler
//!   │                                   └──── one deadline from accept to the first head ────┘
//!   └─ EMFILE: back off, count            watchdog: quiet::verdict on the connection's Activity
//! ```
//!
//! The rules of when a connection is closed live in [`quiet`] (pure, tested exhaustively); the
//! wrappers in [`watch`] feed it; [`serve`] runs the accept loop and each connection's
//! watchdog; [`protocols`] serves HTTP/1.1 or HTTP/2 by the connection's first bytes; [`cork`]
//! coalesces what one poll of a connection writes into one system call.
//! What a request means is the caller's business: it passes a handler.

pub mod cork;
mod fds;
pub mod head;
pub mod limiter;
pub mod protocols;
pub mod quiet;
mod serve;
pub mod stats;
pub mod watch;

pub use fds::{FD_RESERVE, FdBudget, fd_budget, raise_fd_limit};
pub use head::AmbiguousFraming;
pub use limiter::{Admitted, ConnLimiter};
pub use protocols::Protocols;
pub use quiet::{Activity, Closing, ConnControl, InFlight, QuietLimits, Verdict, verdict};
pub use serve::{ConnOptions, TlsServerName, bind, serve, serve_connection};
pub use stats::ConnectionStats;
