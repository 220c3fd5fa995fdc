//! RFC 9111 shared-cache policy: pure functions, no IO, no clock.
