//! Tiercel's caching engine, shared by the edge and the shield.
//!
//! ```text
//!  front ends (server: h1, h2c, TLS h1/h2)          policy   (RFC 9111, pure)
//!        │ http::Request                              protocol (RFC 9110 semantics, pure)
//!        ▼                                                 ▲
//!   engine::Engine::handle ── decisions ───────────────────┘
//!        │            │
//!        ▼            ▼
//!    storage       upstream (origin today; shield later)
//!   (foyer RAM+disk, chunked)
//! ```
//!
//! The engine does not know which protocol a request came in on, nor whether its upstream is an
//! origin or another Tiercel tier: edge and shield differ only in configuration.
//! HTTP/3, the shield tier, routing by service and media range-fills are separate issues.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
pub mod engine;
pub mod key;
pub mod node;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod sites;
pub mod storage;
pub mod upstream;
