//! Front ends: TCP listeners for HTTP/1.1 and HTTP/2 (cleartext and TLS), a UDP endpoint for
//! HTTP/3 on the TLS port, and the admin listener. Each turns connections into requests for the one engine handler.

mod admin;
mod listener;
mod quic;
mod tls;

pub use admin::{Readiness, metrics_text, serve_admin};
pub use listener::{ServerOptions, serve};
pub use quic::{Congestion, H3_ALPN, QuicError, QuicOptions, endpoint as quic_endpoint, serve_h3};
pub use tiercel_cluster::conn::{ConnectionStats, bind};
pub use tls::{SniCerts, TCP_ALPN, TlsError, certified_key, server_config};
