//! `tiercelctl`: the purge-service client for CI and operators.
//!
//! ```text
//! TIERCEL_TOKEN=T tiercelctl --server URL [--server URL2] purge --url U [--tag T] [--wait]
//!    │ POST /v1/purges (Idempotency-Key: fresh per invocation)
//!    ├──▶ server 1 ──(unreachable, timeout, 502/503/504)──▶ server 2 ──▶ …
//!    └── --wait: GET /v1/purges/{id} every 100 ms until complete (or exit 1 on timeout)
//! ```
//!
//! Exit status: 0 on success, 1 when the service refused or could not be reached (or a wait
//! timed out), 2 for usage errors; the reason is one line on stderr. Output is human lines, or
//! the API's JSON with `--json`.

mod args;
mod client;
mod commands;

pub use args::{
    Cli, ClusterCommand, Command, PurgeArgs, PurgesCommand, ScopeArg, ServicesCommand,
    TokensCommand, parse_duration,
};
pub use client::{ApiClient, ApiResponse};
pub use commands::{new_idempotency_key, purge_request, run};

use std::time::Duration;

/// Why a `tiercelctl` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The command line is wrong (exit 2); retrying the same thing cannot help.
    #[error("{0}")]
    Usage(String),
    /// The service answered with an error (exit 1). A 429 or 503 may succeed later.
    #[error("{status}: {message}{}", retry_after.as_ref().map(|r| format!(" (retry after {r} s)")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The service's one-line reason.
        message: String,
        /// `Retry-After`, when the service sent one.
        retry_after: Option<String>,
    },
    /// No configured server could be reached (exit 1); the last problem is shown.
    #[error("no server reachable; last: {0}")]
    Unreachable(String),
    /// `--wait` ran out of time (exit 1): the purge is committed but not applied everywhere.
    #[error(
        "purge {id} not applied by every live node after {after:?} ({applied}/{live} live nodes)"
    )]
    WaitTimeout {
        /// Purge id.
        id: String,
        /// The wait timeout.
        after: Duration,
        /// Live nodes that had applied it at the last poll.
        applied: u32,
        /// Live nodes at the last poll.
        live: u32,
    },
    /// An answer could not be decoded (exit 1): client and service disagree on the API.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl CtlError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Percent-encodes one path segment (ids and service names typed by users).
pub(crate) fn percent_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_messages() {
        let cases: Vec<(CtlError, i32, &str)> = vec![
            (CtlError::Usage("bad".into()), 2, "bad"),
            (
                CtlError::Api {
                    status: 429,
                    message: "slow down".into(),
                    retry_after: Some("2".into()),
                },
                1,
                "429: slow down (retry after 2 s)",
            ),
            (
                CtlError::Api {
                    status: 400,
                    message: "urls[0]: bad".into(),
                    retry_after: None,
                },
                1,
                "400: urls[0]: bad",
            ),
            (
                CtlError::Unreachable("x".into()),
                1,
                "no server reachable; last: x",
            ),
            (
                CtlError::WaitTimeout {
                    id: "9".into(),
                    after: Duration::from_secs(1),
                    applied: 1,
                    live: 3,
                },
                1,
                "purge 9 not applied by every live node after 1s (1/3 live nodes)",
            ),
        ];
        for (e, code, msg) in cases {
            assert_eq!(e.exit_code(), code);
            assert_eq!(e.to_string(), msg);
        }
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(percent_path("shop-1.a_b~"), "shop-1.a_b~");
        assert_eq!(percent_path("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(percent_path("é"), "%C3%A9");
    }
}
