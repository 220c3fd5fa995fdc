//! The shield role: the same engine as the edge, configured to face the origin.
//!
//! The shield tier (rendezvous selection by edges, health checks, failover) is tracked as its own
//! issue; until then this crate only fixes the role's name and defaults.

/// Name the shield reports in `Cache-Status` and `Via` unless `--name` says otherwise.
pub const DEFAULT_NAME: &str = "tiercel-shield";
