//! A multi-region Tiercel cluster on one machine, and the demo origin it runs.
//!
//! The full testbed (topology file, namespaces, latency relay, fault injection) is tracked as its
//! own issue. Today this crate holds the demo origin that `tiercel-testbed up`, the integration
//! tests and the benchmarks put behind Tiercel.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod origin;
pub mod udp_delay;
pub mod up;
