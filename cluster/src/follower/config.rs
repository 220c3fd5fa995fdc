//! Follower configuration and errors.

use std::path::PathBuf;
use std::time::Duration;

use super::backoff::Backoff;
use super::machine::Timing;

/// The default for [`FollowerConfig::max_purge_rules`]: each pattern costs its own length plus
/// about 60 bytes, so some 40 MB of 100-byte URLs, and a state file of about 30 MB.
pub const DEFAULT_MAX_PURGE_RULES: usize = 250_000;

/// How a node follows the purge log.
///
/// Built from the node configuration (`--purge-service`, `purge_token`, `--name`, `state_dir`,
/// `max_purge_lag`); the timeouts have production defaults and exist as fields so tests can
/// shorten them.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Purge-service base URLs (`http://10.0.0.1:7070`), tried in order, next one on failure.
    pub servers: Vec<String>,
    /// Bearer token with at least `follow` scope.
    pub token: Option<String>,
    /// CA certificates verifying `https://` servers; the system's roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// This node's name, unique in the cluster (reported to the service).
    pub node: String,
    /// `edge` or `shield`.
    pub role: String,
    /// Where the applied index, the rule index and the services are persisted. Without one the
    /// follower keeps everything in memory and replays the whole log after a restart.
    pub state_dir: Option<PathBuf>,
    /// Hearing nothing for longer than this makes the node lagging (revalidate before serving).
    pub max_purge_lag: Duration,
    /// Most distinct purge patterns (URLs, prefixes, tags, hosts) held in memory and in the
    /// state file; beyond it the oldest quarter is folded into one "everything older" rule.
    pub max_purge_rules: usize,
    /// TCP connect timeout per server.
    pub connect_timeout: Duration,
    /// No bytes on the log stream for this long means the server is gone: reconnect. The
    /// service sends a heartbeat every second.
    pub idle_timeout: Duration,
    /// Timeout for a whole report request and for the log stream's response headers.
    pub request_timeout: Duration,
    /// Least time between two writes of the state file.
    pub persist_interval: Duration,
    /// A report is sent at least this often.
    pub report_interval: Duration,
    /// Least time between two reports: a changed index waits this long after the last one.
    pub report_min_interval: Duration,
    /// First reconnect delay (doubling per consecutive failure).
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            servers: Vec::new(),
            token: None,
            ca_file: None,
            node: String::new(),
            role: "edge".into(),
            state_dir: None,
            max_purge_lag: Duration::from_secs(10),
            max_purge_rules: DEFAULT_MAX_PURGE_RULES,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            persist_interval: Duration::from_millis(200),
            report_interval: Duration::from_secs(1),
            report_min_interval: Duration::from_millis(100),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl FollowerConfig {
    /// Defaults for everything but the servers, the node name and its role.
    pub fn new(servers: Vec<String>, node: impl Into<String>, role: impl Into<String>) -> Self {
        FollowerConfig {
            servers,
            node: node.into(),
            role: role.into(),
            ..Default::default()
        }
    }

    /// Checks the configuration once, naming the offending key.
    pub fn validate(&self) -> Result<(), FollowerError> {
        let bad = |key: &'static str, reason: String| Err(FollowerError::Config { key, reason });
        if self.servers.is_empty() {
            return bad("purge_services", "at least one server is required".into());
        }
        for s in &self.servers {
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"))
                .unwrap_or("");
            if rest.is_empty() || rest.starts_with('/') {
                return bad(
                    "purge_services",
                    format!("`{s}` is not an https://host:port or http://host:port URL"),
                );
            }
        }
        if self.node.is_empty() {
            return bad("name", "a node name is required to report progress".into());
        }
        if self.role.is_empty() {
            return bad("role", "must not be empty".into());
        }
        if let Some(t) = &self.token
            && (t.is_empty() || t.bytes().any(|b| b <= b' ' || b == 0x7f))
        {
            return bad(
                "purge_token",
                "must be non-empty without whitespace or control characters".into(),
            );
        }
        let durations = [
            ("max_purge_lag", self.max_purge_lag),
            ("connect_timeout", self.connect_timeout),
            ("idle_timeout", self.idle_timeout),
            ("request_timeout", self.request_timeout),
            ("report_interval", self.report_interval),
            ("backoff_min", self.backoff_min),
        ];
        for (key, d) in durations {
            if d.is_zero() {
                return bad(key, "must be greater than zero".into());
            }
        }
        if self.max_purge_rules == 0 {
            return bad("max_purge_rules", "must be at least 1".into());
        }
        if self.backoff_max < self.backoff_min {
            return bad("backoff_max", "must not be below backoff_min".into());
        }
        Ok(())
    }

    pub(crate) fn timing(&self) -> Timing {
        Timing {
            persist_interval: self.persist_interval,
            report_interval: self.report_interval,
            report_min_gap: self.report_min_interval.min(self.report_interval),
            report_retry: self.report_interval.min(Duration::from_millis(250)),
            backoff: Backoff {
                min: self.backoff_min,
                max: self.backoff_max,
            },
            max_purge_lag: self.max_purge_lag,
            max_rules: self.max_purge_rules,
        }
    }
}

/// Why the follower could not start, or a wait on it failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    /// A configuration value is invalid; fix the named key.
    #[error("invalid follower configuration `{key}`: {reason}")]
    Config {
        /// The configuration key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file (or the system's trust store) is unusable.
    #[error("purge_ca_file: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The state file exists but cannot be read.
    #[error("cannot read follower state {path}: {source}")]
    StateRead {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The state file is not valid. The node cannot know which purges it applied; delete the
    /// file AND the disk cache to start afresh.
    #[error(
        "corrupt follower state {path}: {source} (remove it and the disk cache to start afresh)"
    )]
    StateCorrupt {
        /// The file.
        path: PathBuf,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// The state directory cannot be created or written.
    #[error("cannot write follower state in {path}: {source}")]
    StateWrite {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// `wait_applied` ran out of time (retrying may help).
    #[error("timed out waiting for applied index {want} (at {applied})")]
    WaitTimeout {
        /// The index waited for.
        want: u64,
        /// The applied index when the wait gave up.
        applied: u64,
    },
    /// The follower task has stopped.
    #[error("the follower has stopped")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let ok = FollowerConfig::new(vec!["http://127.0.0.1:7070".into()], "e1", "edge");
        assert!(ok.validate().is_ok());
        let cases: Vec<(FollowerConfig, &str)> = vec![
            (FollowerConfig::new(vec![], "e1", "edge"), "purge_services"),
            (
                FollowerConfig::new(vec!["ftp://x".into()], "e1", "edge"),
                "purge_services",
            ),
            (
                FollowerConfig::new(vec!["http://".into()], "e1", "edge"),
                "purge_services",
            ),
            (FollowerConfig::new(ok.servers.clone(), "", "edge"), "name"),
            (FollowerConfig::new(ok.servers.clone(), "e", ""), "role"),
            (
                FollowerConfig {
                    token: Some("a b".into()),
                    ..ok.clone()
                },
                "purge_token",
            ),
            (
                FollowerConfig {
                    idle_timeout: Duration::ZERO,
                    ..ok.clone()
                },
                "idle_timeout",
            ),
            (
                FollowerConfig {
                    backoff_max: Duration::from_millis(1),
                    ..ok.clone()
                },
                "backoff_max",
            ),
        ];
        for (cfg, key) in cases {
            match cfg.validate() {
                Err(FollowerError::Config { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
