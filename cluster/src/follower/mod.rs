//! The purge-log follower: streams the purge-service log into the local purge index.
//!
//! ```text
//!  purge-service nodes ──GET /v1/log?from=applied+1 (NDJSON)──▶ stream task
//!        ▲                                                          │ LogEvent
//!        └──POST /v1/followers/report {applied_index}──┐            ▼
//!                                                      driver ── FollowerMachine (pure)
//!  request path ──check / applied_index / lagging──▶ PurgeState (RwLock + atomics)
//!  state_dir/purge-follower.json ◀── atomic write (debounced) ──┘
//! ```
//!
//! [`FollowerMachine`] decides everything (what to apply, when to persist, report and
//! reconnect) from events and `now`; [`start_follower`] runs it on tokio. An index is applied
//! exactly once; a node persists what it applied and reports only what is on disk, so a
//! restarted node still knows every purge it acknowledged. A node that hears nothing for
//! `max_purge_lag` says it is [`lagging`](PurgeState::lagging).
//!
//! The server is not trusted blindly: `https://` servers are verified (the system's roots or a
//! CA file), an index beyond [`MAX_PLAUSIBLE_INDEX`] drops the stream and moves to the next
//! server, and every line is bounded in size.
//!
//! Deliberately not here: deleting cache entries (the engine does that in
//! [`PurgeListener::url_purged`]).

mod backoff;
mod client;
mod config;
mod machine;
mod persist;
mod runtime;
mod state;

pub use backoff::Backoff;
pub use client::StreamError;
pub use config::{DEFAULT_MAX_PURGE_RULES, FollowerConfig, FollowerError};
pub use machine::{
    Action, FollowerMachine, FollowerState, Input, MAX_PLAUSIBLE_INDEX, Timing, implausible_index,
};
pub use persist::STATE_FILE;
pub use runtime::{FollowerHandle, start_follower};
pub use state::{NoopListener, PurgeListener, PurgeState};
