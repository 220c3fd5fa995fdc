//! Purges: the wire format shared with the purge-service, and (on nodes) the rule index.
//!
//! ```text
//!  log entry (wire::PurgeRequest, index)
//!        │ rules_from_request: normalise once
//!        ▼
//!  PurgeRule { target, soft, index } ──apply──▶ PurgeIndex ◀──check(ObjectRef)── request path
//!                                                  (hash maps + prefix radix tree)
//! ```
//!
//! The index answers "is this stored object purged?" without scanning anything; deleting URL
//! entries at once is the caching engine's job (the follower tells it which).

mod index;
mod rule;
mod trie;
pub mod wire;

pub use index::PurgeIndex;
pub use rule::{ObjectRef, PurgeRule, PurgeTarget, PurgeVerdict, rules_from_request};
