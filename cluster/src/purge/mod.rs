//! Purges: the wire format shared with the purge-service, and (on nodes) the rule index.

pub mod wire;
