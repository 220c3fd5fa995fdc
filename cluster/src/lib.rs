//! What every Tiercel role shares.
//!
//! Edges, shields and the purge-service agree here on the things that must not drift between
//! them: how a URL is normalised (so a purge names exactly what a cache key covers), the purge
//! wire format, the purge-rule index consulted on every request, the follower that keeps that
//! index in step with the purge-service, and the configuration schema every node loads.
//!
//! Nothing here serves traffic; the caching engine lives in `tiercel-edge`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod follower;
pub mod purge;
pub mod signal;
pub mod telemetry;
pub mod urlnorm;
