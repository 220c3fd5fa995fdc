//! What every Tiercel role shares.
//!
//! Edges, shields and the purge-service agree here on the things that must not drift between
//! them: how a URL is normalised (so a purge names exactly what a cache key covers), the purge
//! wire format, the purge-rule index consulted on every request, the follower that keeps that
//! index in step with the purge-service, and the configuration schema every node loads.
//!
//! The caching engine lives in `tiercel-edge`; what is here of serving traffic is connection
//! hygiene every listener shares ([`conn`]: timeouts, caps, the watchdog) and TLS material
//! ([`tls`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cidr;
pub mod config;
pub mod conn;
pub mod follower;
pub mod purge;
pub mod secret;
pub mod service;
pub mod shield_select;
pub mod signal;
pub mod telemetry;
pub mod tls;
pub mod urlnorm;
