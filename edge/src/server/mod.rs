//! Front ends: TCP listeners for HTTP/1.1 and HTTP/2 (cleartext and TLS), and the admin
//! listener. Each turns connections into requests for the one engine handler.

mod admin;
mod listener;
mod quiet;
mod stats;
mod tls;
mod watch;

pub use admin::{Readiness, metrics_text, serve_admin};
pub use listener::{ServerOptions, bind, serve};
pub use stats::ConnectionStats;
pub use tls::{TCP_ALPN, TlsError, certified_key, server_config};
