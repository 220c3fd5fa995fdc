//! Tiercel's caching engine, shared by the edge and the shield.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod key;
pub mod policy;
pub mod protocol;
