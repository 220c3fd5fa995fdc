//! A multi-region Tiercel cluster on one machine.
//!
//! The testbed (topology file, namespaces, latency relay, fault injection) is tracked as its own
//! issue; this crate holds its place in the workspace until then.
