//! Node configuration: schema, loading, validation — shared by `tiercel-edge` and
//! `tiercel-shield`.
//!
//! ```text
//!   defaults(role)  <  --config FILE (TOML)  <  TIERCEL_* variables  <  flags
//!   schema::defaults   unknown keys: error       unknown names: ignored   NodeArgs (clap)
//!                 \_____________ one TOML table, a Source per key ____________/
//!                                         │ serde (+ path of a bad value)
//!                                         ▼
//!                                NodeConfig ── validate() ── node
//! ```
//!
//! Every flag has a file key and a variable: `--disk-cache-size` ↔ `disk_cache_size` ↔
//! `TIERCEL_DISK_CACHE_SIZE`; nested keys use `__` (`TIERCEL_TIMEOUTS__CONNECT`); lists are
//! comma-separated (`TIERCEL_SHIELDS=http://a:8081,http://b:8081`). Variables that are not
//! schema keys are ignored, because other tools share the prefix (`TIERCEL_TOKEN` for
//! `tiercelctl`, `TIERCEL_LOG_FORMAT` for [`telemetry`](crate::telemetry)). Sizes are written
//! `64MiB`/`1GB`/`4096`, durations `250ms`/`5s`/`2m`/`1h` ([`units`]). Optional values take `""`
//! for "unset". Relative paths are relative to the working directory, not to the file.
//!
//! A binary does:
//! ```no_run
//! # use tiercel_cluster::config::{NodeArgs, NodeConfig, Role};
//! # let args = NodeArgs::default();
//! match NodeConfig::load(Role::Edge, &args, std::env::vars()) {
//!     Ok(cfg) if args.check_config => print!("{}", cfg.to_toml()),
//!     Ok(cfg) => { /* run */ }
//!     Err(e) => { eprintln!("{e}"); std::process::exit(2) }
//! }
//! ```

use std::path::Path;

mod args;
mod error;
mod load;
mod schema;
pub mod units;
mod validate;

pub use args::NodeArgs;
pub use error::{ConfigError, Source};
pub use load::{ENV_CONFIG, ENV_PREFIX, env_name};
pub use schema::{CacheSettings, Limits, NodeConfig, QuicSettings, Role, Timeouts, defaults};
pub use units::ByteSize;
pub use validate::origin_address;

impl NodeConfig {
    /// Loads the configuration of a `role` node: defaults < TOML file (`--config`, else
    /// `TIERCEL_CONFIG`) < `TIERCEL_*` variables from `env` < flags in `args`, then validates it.
    ///
    /// Unknown keys in the file are errors; unknown `TIERCEL_*` variables are ignored (other
    /// tools share the prefix). `env` is usually `std::env::vars()`; tests pass a list.
    pub fn load(
        role: Role,
        args: &NodeArgs,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        load::load(role, args, env).map(|(cfg, _)| cfg)
    }

    /// Like [`load`](Self::load), also returning where each key's value came from (for
    /// `--check-config` explanations and for callers that report their own errors).
    pub fn load_with_sources(
        role: Role,
        args: &NodeArgs,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<(String, Source)>), ConfigError> {
        load::load(role, args, env).map(|(cfg, sources)| (cfg, sources.into_iter().collect()))
    }

    /// What a configuration file holding `text` sets, over the `role`'s defaults, validated
    /// as [`load`](Self::load) would (`path` only names the file in errors); secret files it
    /// names are not read. For tools that check a file before it is deployed, and for fuzzing
    /// the file parser.
    pub fn from_file_text(role: Role, text: &str, path: &Path) -> Result<Self, ConfigError> {
        load::from_file_text(role, text, path)
    }

    /// Checks the rules types cannot express (cert with key, chunk size bounds, URLs,
    /// distinct listeners...). [`load`](Self::load) already calls it; use it on a config built
    /// in code. Errors from here carry no source.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self, &load::Sources::new())
    }

    /// The configuration as TOML, for `--check-config`: every key, in schema order, with
    /// unset values as `""`. The purge token is left out (replaced by a comment), because this
    /// output ends up in terminals and CI logs; [`to_toml_with_secrets`](Self::to_toml_with_secrets)
    /// keeps it.
    pub fn to_toml(&self) -> String {
        if self.purge_token.is_none() {
            return self.to_toml_with_secrets();
        }
        let shown = NodeConfig {
            purge_token: None,
            ..self.clone()
        };
        format!(
            "# purge_token is set (from a flag, TIERCEL_PURGE_TOKEN or the file) but not shown\n{}",
            shown.to_toml_with_secrets()
        )
    }

    /// The configuration as TOML, purge token included: loading it back gives an equal
    /// configuration.
    pub fn to_toml_with_secrets(&self) -> String {
        toml::to_string(self)
            .unwrap_or_else(|e| format!("# the configuration cannot be written as TOML: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
