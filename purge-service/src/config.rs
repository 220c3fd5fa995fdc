//! Command line of `tiercel-purge`: every flag has a `TIERCEL_*` environment variable, and
//! everything is validated once into a [`NodeConfig`] whose errors name the flag.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::BoolishValueParser;

use tiercel_cluster::secret::Secret;

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
    /// Address the API listens on (and the Raft RPCs, without --raft-listen).
    #[arg(long, env = "TIERCEL_LISTEN")]
    pub listen: SocketAddr,
    /// A separate listener for member traffic (Raft RPCs, writes forwarded to the leader), so
    /// the API can face CI while the cluster stays on a private network.
    #[arg(long, env = "TIERCEL_RAFT_LISTEN")]
    pub raft_listen: Option<SocketAddr>,
    /// Address other members reach this node's member listener at (default: --raft-listen,
    /// else --listen).
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
    /// File holding the first admin token, imported only if no admin token exists (or set
    /// TIERCEL_ADMIN_TOKEN).
    #[arg(long, env = "TIERCEL_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the secret every member shares and sends on member traffic (or set
    /// TIERCEL_CLUSTER_SECRET). Required when the cluster has other members.
    #[arg(long, env = "TIERCEL_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// `TIERCEL_ADMIN_TOKEN`, read from the environment only (never a flag: `ps` shows flags).
    #[arg(skip)]
    pub admin_token_env: Option<String>,
    /// `TIERCEL_CLUSTER_SECRET`, read from the environment only.
    #[arg(skip)]
    pub cluster_secret_env: Option<String>,
    /// PEM certificate chain: the API and member listeners speak TLS, and members dial each
    /// other over TLS (reloaded on SIGHUP).
    #[arg(long, env = "TIERCEL_CERT")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, env = "TIERCEL_KEY")]
    pub key: Option<PathBuf>,
    /// CA certificates that verify other members' certificates (default: the system's roots).
    #[arg(long, env = "TIERCEL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Connections served at once per listener; further ones wait in the backlog.
    #[arg(long, env = "TIERCEL_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// A fresh connection must complete its TLS handshake and first request head within this,
    /// and any later request head once it starts.
    #[arg(long, env = "TIERCEL_CLIENT_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub client_header_timeout: Duration,
    /// A connection with no request in flight is closed after this (h2 with GOAWAY); so is one
    /// whose client has not read for this long.
    #[arg(long, env = "TIERCEL_CLIENT_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub client_idle_timeout: Duration,
    /// Open `/v1/log` streams this member serves at once (more: 503, the follower tries
    /// another member).
    #[arg(long, env = "TIERCEL_MAX_LOG_STREAMS", default_value_t = 1024)]
    pub max_log_streams: usize,
    /// Open `/v1/log` streams one token may hold on this member.
    #[arg(long, env = "TIERCEL_MAX_LOG_STREAMS_PER_TOKEN", default_value_t = 512)]
    pub max_log_streams_per_token: usize,
    /// A `/v1/log` reader that takes no bytes for this long is dropped.
    #[arg(long, env = "TIERCEL_LOG_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub log_write_timeout: Duration,
    /// Distinct follower names one token may report progress for.
    #[arg(
        long,
        env = "TIERCEL_MAX_FOLLOWERS_PER_TOKEN",
        default_value_t = 10_000
    )]
    pub max_followers_per_token: usize,
    /// Requests per second one token may make on the follower protocol (log streams opened,
    /// progress reports), shared by every node holding it; bursts of twice that.
    #[arg(long, env = "TIERCEL_FOLLOW_RATE_LIMIT", default_value_t = 2000.0)]
    pub follow_rate_limit: f64,
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

impl Args {
    /// Reads the secrets that are taken from the environment only.
    pub fn read_secret_env(&mut self) {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        self.admin_token_env = var("TIERCEL_ADMIN_TOKEN");
        self.cluster_secret_env = var("TIERCEL_CLUSTER_SECRET");
    }
}

/// Certificate and key files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Limits on connections and follower traffic.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections per listener.
    pub max_connections: usize,
    /// First head (with the TLS handshake) and later heads once started.
    pub client_header_timeout: Duration,
    /// Idle and not-reading connections.
    pub client_idle_timeout: Duration,
    /// `/v1/log` streams per member.
    pub max_log_streams: usize,
    /// `/v1/log` streams per token on this member.
    pub max_log_streams_per_token: usize,
    /// A stream whose reader takes nothing for this long is dropped.
    pub log_write_timeout: Duration,
    /// Follower names per token.
    pub max_followers_per_token: usize,
    /// Follower-protocol requests per second per token.
    pub follow_rate: f64,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node id.
    pub id: NodeId,
    /// API listen address.
    pub listen: SocketAddr,
    /// Member listen address, when separate from the API's.
    pub raft_listen: Option<SocketAddr>,
    /// Advertised `host:port` of the member listener.
    pub advertise: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Initial peers (without this node).
    pub peers: BTreeMap<NodeId, String>,
    /// Initialise the cluster.
    pub bootstrap: bool,
    /// Admin token to import.
    pub admin_token: Option<Secret>,
    /// Tokens from `--token-file`.
    pub file_tokens: Vec<TokenRecord>,
    /// Cluster secret.
    pub cluster_secret: Option<Secret>,
    /// TLS on both listeners (and towards other members).
    pub tls: Option<TlsFiles>,
    /// CA file verifying other members.
    pub ca_file: Option<PathBuf>,
    /// Connection and follower limits.
    pub limits: Limits,
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
        let (member_flag, member_addr) = match a.raft_listen {
            Some(r) => ("--raft-listen", r),
            None => ("--listen", a.listen),
        };
        let advertise = a
            .advertise
            .clone()
            .unwrap_or_else(|| member_addr.to_string());
        if let Err(e) = address(&advertise) {
            return err(format!("--advertise: {e}"));
        }
        if a.advertise.is_none() && member_addr.ip().is_unspecified() {
            return err(format!(
                "--advertise: required when {member_flag} is {} (peers cannot reach it)",
                member_addr.ip()
            ));
        }
        if member_addr.port() == 0 {
            return err(format!(
                "{member_flag}: needs a fixed port (peers must know it)"
            ));
        }
        if a.raft_listen == Some(a.listen) {
            return err("--raft-listen: must differ from --listen".into());
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
        let secret_err = |e: tiercel_cluster::secret::SecretError| ConfigError(e.to_string());
        let admin_token = Secret::one_of(
            a.admin_token_env.as_deref(),
            "TIERCEL_ADMIN_TOKEN",
            a.admin_token_file.as_deref(),
            "--admin-token-file",
        )
        .map_err(secret_err)?;
        let cluster_secret = Secret::one_of(
            a.cluster_secret_env.as_deref(),
            "TIERCEL_CLUSTER_SECRET",
            a.cluster_secret_file.as_deref(),
            "--cluster-secret-file",
        )
        .map_err(secret_err)?;
        //= DESIGN.md §9, member ↔ member: Raft RPCs authenticated before any body is read.
        if cluster_secret.is_none() && !peers.is_empty() {
            return err(
                "TIERCEL_CLUSTER_SECRET: required when the cluster has other members \
                 (--peer); set it, or --cluster-secret-file, to the same value on every member"
                    .into(),
            );
        }
        let tls = match (a.cert, a.key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return err("--key: required with --cert".into()),
            (None, Some(_)) => return err("--cert: required with --key".into()),
        };
        if a.ca_file.is_some() && tls.is_none() {
            return err(
                "--ca-file: only with --cert and --key (members dial each other over TLS only then)"
                    .into(),
            );
        }
        if a.max_connections == 0 {
            return err("--max-connections: must be at least 1".into());
        }
        if a.client_header_timeout.is_zero() || a.client_idle_timeout.is_zero() {
            return err(
                "--client-header-timeout: it and --client-idle-timeout must be above 0".into(),
            );
        }
        if a.max_log_streams == 0 || a.max_log_streams_per_token == 0 {
            return err(
                "--max-log-streams: it and --max-log-streams-per-token must be at least 1".into(),
            );
        }
        if a.log_write_timeout.is_zero() {
            return err("--log-write-timeout: must be above 0".into());
        }
        if a.max_followers_per_token == 0 {
            return err("--max-followers-per-token: must be at least 1".into());
        }
        if !(a.follow_rate_limit.is_finite() && a.follow_rate_limit > 0.0) {
            return err("--follow-rate-limit: must be a number above 0".into());
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
            raft_listen: a.raft_listen,
            advertise,
            data_dir: a.data_dir,
            peers,
            bootstrap: a.bootstrap,
            admin_token,
            file_tokens,
            cluster_secret,
            tls,
            ca_file: a.ca_file,
            limits: Limits {
                max_connections: a.max_connections,
                client_header_timeout: a.client_header_timeout,
                client_idle_timeout: a.client_idle_timeout,
                max_log_streams: a.max_log_streams,
                max_log_streams_per_token: a.max_log_streams_per_token,
                log_write_timeout: a.log_write_timeout,
                max_followers_per_token: a.max_followers_per_token,
                follow_rate: a.follow_rate_limit,
            },
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
