//! `tiercelctl` command line (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tiercel_cluster::purge::wire::TokenScope;

/// Talk to a Tiercel purge-service: purge, watch a purge spread, manage services and tokens.
#[derive(Debug, Clone, Parser)]
#[command(name = "tiercelctl", version)]
pub struct Cli {
    /// Purge-service URL (`https://host:port`, or `http://` on loopback); repeat for failover:
    /// the next one is tried when a server cannot be reached or answers 502/503/504, never on
    /// a 4xx.
    #[arg(
        long = "server",
        env = "TIERCEL_SERVER",
        value_delimiter = ',',
        global = true
    )]
    pub servers: Vec<String>,
    /// Bearer token. Prefer TIERCEL_TOKEN or --token-file: other users can read command lines.
    #[arg(long, env = "TIERCEL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, env = "TIERCEL_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// CA certificates that verify `https://` servers (default: the system's roots).
    #[arg(long, env = "TIERCEL_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of human lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// Timeout of each HTTP request (`10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Submit a purge (committed to a quorum when this returns).
    Purge(PurgeArgs),
    /// How far a purge has spread: `status ID`.
    Status {
        /// The purge id printed by `purge`.
        id: String,
    },
    /// The audit trail: who purged what.
    #[command(subcommand)]
    Purges(PurgesCommand),
    /// Service configuration documents.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Show the Raft cluster (or change its membership).
    Cluster {
        /// Membership change; without one, show the cluster.
        #[command(subcommand)]
        action: Option<ClusterCommand>,
    },
}

/// `purge` targets and options.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// Absolute URL; purges every variant of it (repeatable).
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Surrogate key (`Surrogate-Key` / `Cache-Tag`) (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Absolute URL prefix, matched on bytes (repeatable).
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// Host name (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Everything.
    #[arg(long)]
    pub all: bool,
    /// Mark stale instead of removing.
    #[arg(long)]
    pub soft: bool,
    /// Limit the purge to this service's objects (required with a token scoped to services).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Wait until every live node applied the purge (exit 1 on timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// Idempotency key; a retry with the same key counts once. Default: a fresh random key per
    /// invocation (so a failover to the next server counts once).
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// `purges` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum PurgesCommand {
    /// List purges, oldest first, with the token that asked for each.
    List {
        /// Only purges of the last DURATION (`1h`, `7d`).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// `services` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ServicesCommand {
    /// Print one service.
    Get {
        /// Service name.
        name: String,
    },
    /// List every service.
    List,
    /// Create or replace a service from a JSON or TOML document (checked here first).
    Put {
        /// Service name.
        name: String,
        /// The document, JSON or TOML (`-` for stdin); in TOML `tls.cert` and `tls.key` are
        /// PEM files, read and sent inline.
        #[arg(long)]
        file: PathBuf,
        /// Only if the current version is this one.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Delete a service.
    Delete {
        /// Service name.
        name: String,
        /// Only if the current version is this one.
        #[arg(long)]
        if_match: Option<u64>,
    },
}

/// `tokens` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TokensCommand {
    /// Create a token; its secret is shown only this once.
    Create {
        /// A label for humans.
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// Sustained requests per second (service default when absent).
        #[arg(long)]
        rate: Option<f64>,
        /// Lifetime (`90d`, `12h`); never expires when absent.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Limit a purge token to this service (repeatable): it may purge, and read, only
        /// these.
        #[arg(long = "service", value_name = "NAME")]
        services: Vec<String>,
    },
    /// List tokens: names, scopes, expiry and last use (never secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// `cluster` membership changes.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// Add a member (a learner first; promoted to voter once caught up unless `--learner`).
    Add {
        /// Raft node id.
        #[arg(long)]
        id: u64,
        /// Its member address `host:port`: its --advertise (by default its --raft-listen, else
        /// its --listen). An existing id at another address moves that member there.
        #[arg(long)]
        addr: String,
        /// Keep it a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// Raft node id.
        id: u64,
    },
}

/// Token scopes as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Read the log and report progress (edges and shields).
    Follow,
    /// Purges, status, reads (CI).
    Purge,
    /// Everything.
    Admin,
}

impl From<ScopeArg> for TokenScope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Follow => TokenScope::Follow,
            ScopeArg::Purge => TokenScope::Purge,
            ScopeArg::Admin => TokenScope::Admin,
        }
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `90d` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s or 500ms"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        u => {
            return Err(format!(
                "unknown unit `{u}` in `{s}` (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("30s", Some(30_000)),
            ("30", Some(30_000)),
            ("500ms", Some(500)),
            ("1.5s", Some(1500)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            (" 7s ", Some(7000)),
            ("s", None),
            ("10d", Some(864_000_000)),
            ("10w", None),
            ("-1s", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = parse_duration(input).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn parses_the_documented_command_lines() {
        let cli = Cli::try_parse_from([
            "tiercelctl",
            "--server",
            "http://a:1",
            "--server",
            "http://b:2",
            "--token",
            "T",
            "purge",
            "--url",
            "http://h/a",
            "--url",
            "http://h/b",
            "--tag",
            "t",
            "--prefix",
            "http://h/p/",
            "--host",
            "h",
            "--all",
            "--soft",
            "--wait",
            "--wait-timeout",
            "5s",
            "--idempotency-key",
            "K",
        ])
        .unwrap();
        assert_eq!(cli.servers, vec!["http://a:1", "http://b:2"]);
        assert_eq!(cli.token.as_deref(), Some("T"));
        let Command::Purge(p) = cli.command else {
            panic!("not a purge")
        };
        assert_eq!(p.urls, vec!["http://h/a", "http://h/b"]);
        assert_eq!((p.tags.len(), p.prefixes.len(), p.hosts.len()), (1, 1, 1));
        assert!(p.all && p.soft && p.wait);
        assert_eq!(p.wait_timeout, Duration::from_secs(5));
        assert_eq!(p.idempotency_key.as_deref(), Some("K"));

        // Global flags also work after the subcommand.
        let cli = Cli::try_parse_from([
            "tiercelctl",
            "services",
            "put",
            "shop",
            "--file",
            "d.json",
            "--if-match",
            "3",
            "--server",
            "http://a:1",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Services(ServicesCommand::Put {
                if_match: Some(3),
                ..
            })
        ));
        let cli = Cli::try_parse_from([
            "tiercelctl",
            "tokens",
            "create",
            "--name",
            "ci",
            "--scope",
            "purge",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Tokens(TokensCommand::Create {
                scope: ScopeArg::Purge,
                ..
            })
        ));
        let cli = Cli::try_parse_from(["tiercelctl", "cluster"]).unwrap();
        assert!(matches!(cli.command, Command::Cluster { action: None }));
        let bad = Cli::try_parse_from([
            "tiercelctl",
            "tokens",
            "create",
            "--name",
            "x",
            "--scope",
            "root",
        ]);
        assert_eq!(bad.unwrap_err().exit_code(), 2);
        let bad = Cli::try_parse_from(["tiercelctl", "purge", "--wait-timeout", "soon"]);
        assert_eq!(bad.unwrap_err().exit_code(), 2);
    }
}
