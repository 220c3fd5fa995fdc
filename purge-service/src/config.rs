//! Command line of `tiercel-purge`: every flag has a `TIERCEL_*` environment variable, and
//! everything is validated once into a [`NodeConfig`] whose errors name the flag.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::api::tokens::parse_token_file;
use crate::api::validate::address;
use crate::raft::RaftTuning;
use crate::types::{NodeId, TokenRecord};

/// `tiercel-purge` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tiercel-purge",
    version,
    about = "Tiercel's Raft-replicated purge and configuration service"
)]
pub struct Args {
    /// Raft node id of this member (unique in the cluster, above 0).
    #[arg(long, env = "TIERCEL_ID")]
    pub id: u64,
    /// Address the API and the Raft RPCs listen on.
    #[arg(long, env = "TIERCEL_LISTEN")]
    pub listen: SocketAddr,
    /// Address other members and proxies reach this node at (default: --listen).
    #[arg(long, env = "TIERCEL_ADVERTISE")]
    pub advertise: Option<String>,
    /// Directory for the log, vote and snapshots (created if missing).
    #[arg(long, env = "TIERCEL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Another initial member as ID=HOST:PORT; repeat per peer (env: comma-separated).
    #[arg(long = "peer", env = "TIERCEL_PEER", value_delimiter = ',', value_parser = parse_peer)]
    pub peers: Vec<(NodeId, String)>,
    /// Initialise the cluster from this node and its peers (on one node, first start only).
    #[arg(long, env = "TIERCEL_BOOTSTRAP", value_parser = BoolishValueParser::new(), num_args = 0, default_missing_value = "true", default_value = "false")]
    pub bootstrap: bool,
    /// Tokens to import: one `scope name secret` per line, `#` comments.
    #[arg(long, env = "TIERCEL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The first admin token, imported only if no admin token exists.
    #[arg(long, env = "TIERCEL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Shared secret required on /raft/* (sent by members in x-tiercel-cluster-secret).
    #[arg(long, env = "TIERCEL_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Build a snapshot every this many log entries, then compact the log.
    #[arg(long, env = "TIERCEL_SNAPSHOT_EVERY", default_value_t = 1000)]
    pub snapshot_every: u64,
    /// Entries to keep before the snapshot when compacting (0: purge up to the snapshot).
    #[arg(long, env = "TIERCEL_LOG_KEEP", default_value_t = 0)]
    pub log_keep: u64,
    /// Applied entries kept encoded in memory for `/v1/log` streams (older ones are read from
    /// the log store).
    #[arg(long, env = "TIERCEL_LOG_CACHE_ENTRIES", default_value_t = crate::store::state_machine::RECENT_ENTRIES)]
    pub log_cache_entries: usize,
    /// Default sustained requests per second per token.
    #[arg(long, env = "TIERCEL_RATE_LIMIT", default_value_t = 100.0)]
    pub rate_limit: f64,
    /// Default burst per token.
    #[arg(long, env = "TIERCEL_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,
    /// A follower counts as live when it reported within this window.
    #[arg(long, env = "TIERCEL_LIVE_WINDOW", default_value = "5s", value_parser = parse_duration)]
    pub live_window: Duration,
    /// How long a request waits for a leader before answering 503.
    #[arg(long, env = "TIERCEL_LEADER_WAIT", default_value = "3s", value_parser = parse_duration)]
    pub leader_wait: Duration,
    /// Deadline for a write to commit.
    #[arg(long, env = "TIERCEL_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Deadline for receiving a request body (slower senders get 408).
    #[arg(long, env = "TIERCEL_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Raft heartbeat interval.
    #[arg(long, env = "TIERCEL_HEARTBEAT", default_value = "100ms", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Minimum Raft election timeout (the maximum is twice this).
    #[arg(long, env = "TIERCEL_ELECTION_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub election_timeout: Duration,
    /// Log filter (tracing env-filter syntax).
    #[arg(long, env = "TIERCEL_LOG", default_value = "info,openraft=warn")]
    pub log: String,
    /// Validate the configuration and exit.
    #[arg(long, env = "TIERCEL_CHECK_CONFIG", value_parser = BoolishValueParser::new(), num_args = 0, default_missing_value = "true", default_value = "false")]
    pub check_config: bool,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node id.
    pub id: NodeId,
    /// Listen address.
    pub listen: SocketAddr,
    /// Advertised `host:port`.
    pub advertise: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Initial peers (without this node).
    pub peers: BTreeMap<NodeId, String>,
    /// Initialise the cluster.
    pub bootstrap: bool,
    /// Admin token to import.
    pub admin_token: Option<String>,
    /// Tokens from `--token-file`.
    pub file_tokens: Vec<TokenRecord>,
    /// Cluster secret.
    pub cluster_secret: Option<String>,
    /// Raft timing and compaction.
    pub tuning: RaftTuning,
    /// Entries kept encoded for streams.
    pub log_cache_entries: usize,
    /// Default rate and burst.
    pub rate: (f64, f64),
    /// Liveness window of followers.
    pub live_window: Duration,
    /// Leader wait.
    pub leader_wait: Duration,
    /// Write deadline.
    pub write_timeout: Duration,
    /// Request body deadline.
    pub body_timeout: Duration,
}

/// A flag with an invalid value; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn parse_peer(s: &str) -> Result<(NodeId, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ID=HOST:PORT"))?;
    let id: NodeId = id
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: peer id must be a number"))?;
    if id == 0 {
        return Err(format!("{s:?}: peer id must be above 0"));
    }
    let addr = addr.trim();
    address(addr).map_err(|e| format!("{s:?}: {e}"))?;
    Ok((id, addr.to_string()))
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 5s)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl NodeConfig {
    /// Validates the flags.
    pub fn from_args(a: Args) -> Result<Self, ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if a.id == 0 {
            return err("--id: must be above 0".into());
        }
        let advertise = a.advertise.clone().unwrap_or_else(|| a.listen.to_string());
        if let Err(e) = address(&advertise) {
            return err(format!("--advertise: {e}"));
        }
        if a.advertise.is_none() && a.listen.ip().is_unspecified() {
            return err(format!(
                "--advertise: required when --listen is {} (peers cannot reach it)",
                a.listen.ip()
            ));
        }
        if a.listen.port() == 0 {
            return err("--listen: needs a fixed port (peers must know it)".into());
        }
        let mut peers = BTreeMap::new();
        for (id, addr) in &a.peers {
            if *id == a.id {
                if *addr != advertise {
                    return err(format!(
                        "--peer {id}={addr}: that is this node's id with another address"
                    ));
                }
                continue;
            }
            if peers.insert(*id, addr.clone()).is_some() {
                return err(format!("--peer: id {id} given twice"));
            }
        }
        if a.snapshot_every == 0 {
            return err("--snapshot-every: must be at least 1".into());
        }
        if !(a.rate_limit.is_finite() && a.rate_limit > 0.0) {
            return err("--rate-limit: must be a number above 0".into());
        }
        if !(a.rate_burst.is_finite() && a.rate_burst >= 1.0) {
            return err("--rate-burst: must be at least 1".into());
        }
        let heartbeat_ms = u64::try_from(a.heartbeat.as_millis()).unwrap_or(u64::MAX);
        let election_ms = u64::try_from(a.election_timeout.as_millis()).unwrap_or(u64::MAX);
        if heartbeat_ms == 0 || election_ms <= heartbeat_ms {
            return err(
                "--election-timeout: must be longer than --heartbeat (and --heartbeat above 0)"
                    .into(),
            );
        }
        if a.live_window.is_zero() {
            return err("--live-window: must be above 0".into());
        }
        if a.body_timeout.is_zero() {
            return err("--body-timeout: must be above 0".into());
        }
        if a.admin_token.as_deref().is_some_and(str::is_empty) {
            return err("TIERCEL_ADMIN_TOKEN: is empty".into());
        }
        if a.cluster_secret.as_deref().is_some_and(str::is_empty) {
            return err("TIERCEL_CLUSTER_SECRET: is empty".into());
        }
        let file_tokens = match &a.token_file {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("--token-file {}: {e}", path.display())))?;
                parse_token_file(&text)
                    .map_err(|e| ConfigError(format!("--token-file {}: {e}", path.display())))?
            }
        };
        Ok(NodeConfig {
            id: a.id,
            listen: a.listen,
            advertise,
            data_dir: a.data_dir,
            peers,
            bootstrap: a.bootstrap,
            admin_token: a.admin_token,
            file_tokens,
            cluster_secret: a.cluster_secret,
            tuning: RaftTuning {
                heartbeat_ms,
                election_timeout_ms: election_ms,
                snapshot_every: a.snapshot_every,
                log_keep: a.log_keep,
            },
            log_cache_entries: a.log_cache_entries.max(1),
            rate: (a.rate_limit, a.rate_burst),
            live_window: a.live_window,
            leader_wait: a.leader_wait,
            write_timeout: a.write_timeout,
            body_timeout: a.body_timeout,
        })
    }
}

#[cfg(test)]
mod tests;
