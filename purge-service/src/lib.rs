//! Tiercel's purge-service: purges and configuration in a Raft-replicated log.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod ctl;
