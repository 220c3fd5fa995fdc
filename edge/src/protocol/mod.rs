//! HTTP semantics the engine applies around the cache: preconditions, ranges, Cache-Status, forwarding headers.
