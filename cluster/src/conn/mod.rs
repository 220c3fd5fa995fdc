//! Connection hygiene shared by every listener of every role: the edge's client listeners and
//! the purge-service's API and Raft listeners accept, time and cap connections the same way.
//!
//! ```text
//! accept ─▶ permit (node-wide cap) ─▶ [TLS handshake] ─▶ hyper (h1/h2) ─▶ handler
//!   │                                   └──── one deadline from accept to the first head ────┘
//!   └─ EMFILE: back off, count            watchdog: quiet::verdict on the connection's Activity
//! ```
//!
//! The rules of when a connection is closed live in [`quiet`] (pure, tested exhaustively); the
//! wrappers in [`watch`] feed it; [`serve`] runs the accept loop and each connection's
//! watchdog. What a request means is the caller's business: it passes a handler.

pub mod head;
pub mod quiet;
mod serve;
pub mod stats;
pub mod watch;

pub use head::AmbiguousFraming;
pub use quiet::{Closing, ConnControl, QuietLimits};
pub use serve::{ConnOptions, bind, serve, serve_connection};
pub use stats::ConnectionStats;

/// Raises the soft limit of open files to the hard limit, so the connection caps, not the
/// default 1024 descriptors, bound what a node serves. Failure is logged and harmless.
pub fn raise_fd_limit() {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => {
                if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                    tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
        }
    }
}
