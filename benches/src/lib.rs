//! Tiercel's benchmarks: a closed-loop HTTP load generator (`tiercel-load`), the comparison
//! table of a run against nginx and Varnish (`tiercel-bench-table`), and criterion
//! micro-benchmarks of the edge's hot pure functions (`benches/hot_path.rs`).
//!
//! ```text
//!  run-peers.sh ── builds, starts origin + Tiercel / nginx / Varnish / ATS on core 0, warms caches
//!       │
//!       ├─▶ taskset -c 1 tiercel-load --json ... (one server × protocol × size at a time)
//!       │        └─ load::run_blocking ─▶ report::LoadReport (JSON line)
//!       └─▶ tiercel-bench-table results.jsonl ─▶ table::render ─▶ results/<date>.md
//! ```
//!
//! Not here: TLS or HTTP/3 load, open-loop (fixed-rate) load, multi-machine runs. The load
//! generator is deliberately one thread so that it can be pinned to one core next to the
//! server's core, the set-up the figures are quoted for.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod duration;
pub mod external;
pub mod load;
pub mod purge_cluster;
pub mod report;
pub mod table;
