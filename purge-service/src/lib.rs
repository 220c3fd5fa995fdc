//! Tiercel's purge-service: purges and configuration in a Raft-replicated log.
//!
//! ```text
//!  CI / tiercelctl ──POST /v1/purges──▶ any node ──(proxy if follower)──▶ leader
//!                                                                          │ batch
//!                                                                          ▼
//!                                    openraft: append (redb, fsync) ──▶ quorum ──▶ commit
//!                                                                          │ apply
//!  edges / shields ◀──GET /v1/log (NDJSON)── any node ◀── applied index watch
//! ```
//!
//! The crate runs one Raft member: the log and vote in redb ([`store`]), a deterministic state
//! machine ([`state`]) holding services, token hashes, purge ids and idempotency keys, Raft RPCs
//! over HTTP ([`raft`]) and the JSON API of `tiercel_cluster::purge::wire` ([`api`]).
//! It does not evaluate purges against caches (edges and shields do, from the log), and keeps
//! follower progress and rate limits in memory only: both are soft state that rebuilds within
//! seconds.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod app;
pub mod batcher;
pub mod client;
pub mod config;
pub mod ctl;
pub mod member_auth;
pub mod node;
pub mod raft;
pub mod ratelimit;
pub mod reports;
pub mod state;
pub mod store;
pub mod streams;
pub mod types;
pub mod usage;
