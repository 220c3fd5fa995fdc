//! Configuration errors: one line that names the key and where its value came from, so an
//! operator can fix the right layer (flag, variable, file) without guessing.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The TOML file at this path.
    File(PathBuf),
    /// This environment variable (e.g. `TIERCEL_TIMEOUTS__CONNECT`).
    Env(String),
    /// This command-line flag (e.g. `--origin`).
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => fmt::Display::fmt(&path.display(), f),
            Source::Env(name) => f.write_str(name),
            Source::Flag(flag) => f.write_str(flag),
        }
    }
}

/// Why a node configuration cannot be used. Never worth retrying unchanged: every variant
/// needs an operator to fix a flag, a variable or the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` (or `TIERCEL_CONFIG`) could not be read.
    #[error("config error: cannot read {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason, without the `(os error N)` suffix.
        message: String,
    },
    /// The file is not valid TOML.
    #[error("config error: cannot parse {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's reason, with the line and column.
        message: String,
    },
    /// The file has a key the schema does not have (a typo, most likely).
    #[error("config error: unknown key {key:?} in {}", path.display())]
    UnknownKey {
        /// The full dotted key, e.g. `timeouts.conect`.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// A value that cannot be used for its key: wrong type, bad format, or a broken rule.
    #[error("config error: {key}{}: {message}", from_suffix(.from))]
    Invalid {
        /// The dotted key, e.g. `timeouts.connect` or `shields[1]`.
        key: String,
        /// Where the value came from, when known (unknown for [`NodeConfig::validate`] on a
        /// hand-built config).
        ///
        /// [`NodeConfig::validate`]: crate::config::NodeConfig::validate
        from: Option<Source>,
        /// What is wrong, e.g. `expected a duration like 5s, got "x"`.
        message: String,
    },
    /// The effective configuration could not be written as TOML (a bug: every value of the
    /// schema has a TOML form).
    #[error("config error: cannot render the configuration as TOML: {message}")]
    Render {
        /// The serializer's reason.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

fn from_suffix(from: &Option<Source>) -> String {
    match from {
        Some(source) => format!(" (from {source})"),
        None => String::new(),
    }
}

/// An I/O error's text without the `(os error N)` suffix the standard library appends.
pub(crate) fn io_message(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}
