//! The purge-log follower: streams the purge-service log into the local purge index.
