//! The node binaries' flags. Values are kept as text and parsed by the loader, so a bad flag is
//! reported exactly like a bad file value or variable (`origin (from --origin): ...`), and a
//! flag that is absent is `None` — never a default in disguise — which keeps precedence exact.

use std::path::PathBuf;

use clap::Args;

use super::schema::defaults;
use super::units::format_duration;

/// Flags shared by `tiercel-edge` and `tiercel-shield`; `#[command(flatten)]` it into the
/// binary's parser. Every flag also has a config-file key and a `TIERCEL_*` variable (see
/// [`NodeConfig::load`](super::NodeConfig::load)).
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeArgs {
    /// TOML configuration file (also `TIERCEL_CONFIG`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Load and validate the configuration, print it as TOML, and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Node name, used in Cache-Status and Via.
    #[arg(long, value_name = "NAME", help = format!(
        "Node name, used in Cache-Status and Via [default: {} or {}]",
        defaults::EDGE_NAME, defaults::SHIELD_NAME
    ))]
    pub name: Option<String>,

    /// Plain HTTP/1.1 + h2c listener (`""` turns it off).
    #[arg(long, value_name = "ADDR", help = format!(
        "Plain HTTP/1.1 + h2c listener, \"\" for none [default: {} on an edge, {} on a shield]",
        defaults::EDGE_LISTEN, defaults::SHIELD_LISTEN
    ))]
    pub listen: Option<String>,

    /// TLS listener (TCP h1/h2 and UDP h3 on the same port).
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<String>,

    /// PEM certificate chain for --tls-listen (self-signed when --cert and --key are absent).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<String>,

    /// PEM private key for --cert.
    #[arg(long, value_name = "FILE")]
    pub key: Option<String>,

    /// Origin: `http://host[:port]` or `https://host[:port]`.
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,

    /// Shield base URL (repeatable, or comma-separated).
    #[arg(long = "shield", value_name = "URL", value_delimiter = ',')]
    pub shields: Vec<String>,

    /// Purge-service URL to follow (repeatable, or comma-separated).
    #[arg(long = "purge-service", value_name = "URL", value_delimiter = ',')]
    pub purge_services: Vec<String>,

    /// Bearer token for the purge-service (prefer TIERCEL_PURGE_TOKEN or --purge-token-file:
    /// flags are visible in ps).
    #[arg(long, value_name = "TOKEN")]
    pub purge_token: Option<String>,

    /// File holding the bearer token for the purge-service.
    #[arg(long, value_name = "FILE")]
    pub purge_token_file: Option<String>,

    /// CA certificates that verify https:// purge-services [default: the system's roots].
    #[arg(long, value_name = "FILE")]
    pub purge_ca_file: Option<String>,

    /// RAM cache size.
    #[arg(long, value_name = "SIZE", help = format!(
        "RAM cache size, e.g. 512MiB [default: {}]", defaults::MEMORY_CACHE
    ))]
    pub memory_cache: Option<String>,

    /// SSD cache directory.
    #[arg(long, value_name = "DIR")]
    pub disk_cache: Option<String>,

    /// SSD cache size.
    #[arg(long, value_name = "SIZE", help = format!(
        "SSD cache size, at least {} [default: {}; shield: {}]",
        defaults::MIN_DISK_CACHE_SIZE, defaults::DISK_CACHE_SIZE, defaults::SHIELD_DISK_CACHE_SIZE
    ))]
    pub disk_cache_size: Option<String>,

    /// Admin listener: /healthz, /readyz, /metrics.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// Directory for the purge follower's state.
    #[arg(
        long,
        value_name = "DIR",
        help = "Directory for the purge follower's state [default: the --disk-cache directory]"
    )]
    pub state_dir: Option<String>,

    /// Request-serving threads.
    #[arg(long, value_name = "N", help = format!(
        "Request-serving threads, at most {}; 0 = one per usable core [default: {}]",
        defaults::MAX_WORKER_THREADS, defaults::WORKER_THREADS
    ))]
    pub worker_threads: Option<String>,

    /// Upstream connect timeout.
    #[arg(long, value_name = "DURATION", help = format!(
        "Upstream connect timeout, e.g. 2s [default: {}]",
        format_duration(defaults::CONNECT_TIMEOUT)
    ))]
    pub connect_timeout: Option<String>,

    /// Upstream time to first byte.
    #[arg(long, value_name = "DURATION", help = format!(
        "Upstream time from the request's end to the response head [default: {}]",
        format_duration(defaults::FIRST_BYTE_TIMEOUT)
    ))]
    pub first_byte_timeout: Option<String>,

    /// Upstream body idle timeout.
    #[arg(long, value_name = "DURATION", help = format!(
        "Upstream: longest pause in a response body, or in taking a request body [default: {}]",
        format_duration(defaults::IDLE_TIMEOUT)
    ))]
    pub idle_timeout: Option<String>,
}

/// A flag's value as the loader sees it.
pub(crate) enum FlagValue<'a> {
    /// One text value.
    One(&'a str),
    /// A repeatable flag's values.
    Many(&'a [String]),
}

impl NodeArgs {
    /// The flags that were given, as (flag, config key, value).
    pub(crate) fn given(&self) -> Vec<(&'static str, &'static str, FlagValue<'_>)> {
        let mut out = Vec::new();
        let singles: [(&'static str, &'static str, &Option<String>); 18] = [
            ("--name", "name", &self.name),
            ("--listen", "listen", &self.listen),
            ("--tls-listen", "tls_listen", &self.tls_listen),
            ("--cert", "cert", &self.cert),
            ("--key", "key", &self.key),
            ("--origin", "origin", &self.origin),
            ("--purge-token", "purge_token", &self.purge_token),
            (
                "--purge-token-file",
                "purge_token_file",
                &self.purge_token_file,
            ),
            ("--purge-ca-file", "purge_ca_file", &self.purge_ca_file),
            ("--memory-cache", "memory_cache", &self.memory_cache),
            ("--disk-cache", "disk_cache", &self.disk_cache),
            (
                "--disk-cache-size",
                "disk_cache_size",
                &self.disk_cache_size,
            ),
            ("--admin-listen", "admin_listen", &self.admin_listen),
            ("--state-dir", "state_dir", &self.state_dir),
            ("--worker-threads", "worker_threads", &self.worker_threads),
            (
                "--connect-timeout",
                "timeouts.connect",
                &self.connect_timeout,
            ),
            (
                "--first-byte-timeout",
                "timeouts.first_byte",
                &self.first_byte_timeout,
            ),
            ("--idle-timeout", "timeouts.idle", &self.idle_timeout),
        ];
        for (flag, key, value) in singles {
            if let Some(v) = value {
                out.push((flag, key, FlagValue::One(v.as_str())));
            }
        }
        if !self.shields.is_empty() {
            out.push(("--shield", "shields", FlagValue::Many(&self.shields)));
        }
        if !self.purge_services.is_empty() {
            out.push((
                "--purge-service",
                "purge_services",
                FlagValue::Many(&self.purge_services),
            ));
        }
        out
    }
}
