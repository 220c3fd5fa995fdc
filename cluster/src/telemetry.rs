//! Logging and tracing set-up shared by every binary.
//!
//! One call, [`init`], at the top of `main`: a `tracing-subscriber` fmt layer on stderr,
//! filtered by `RUST_LOG` (or the binary's default plus quiet dependencies), as text or — with
//! `TIERCEL_LOG_FORMAT=json` — one JSON object per line for log shippers.
//!
//! Not here yet: OpenTelemetry export (OTLP traces and metrics, DESIGN.md §6) is its own
//! issue; it will add a layer to the same registry, which is why the noisy transport crates are
//! filtered at `warn` from the start (an exporter must not trace itself).

use std::fmt;

use tracing_subscriber::EnvFilter;

/// The variable choosing the log format: `json`, or `text` (the default).
pub const LOG_FORMAT_ENV: &str = "TIERCEL_LOG_FORMAT";

/// Dependencies whose `info`/`debug` output is noise for an operator; kept at `warn` unless
/// `RUST_LOG` (or the default filter) names them.
const QUIET: [&str; 4] = ["h2", "hyper", "tower", "foyer"];

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What [`init`] decided from the environment, separated out so it can be tested without
/// installing a global subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The `EnvFilter` directives in effect.
    pub filter: String,
    /// The output format.
    pub format: LogFormat,
    /// Problems with the environment worth one warning line (bad `RUST_LOG`, unknown format).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Decides the settings from `default_filter` (e.g. `"info"`) and the values of
    /// `RUST_LOG` and `TIERCEL_LOG_FORMAT`.
    pub fn decide(default_filter: &str, rust_log: Option<&str>, log_format: Option<&str>) -> Self {
        let mut warnings = Vec::new();
        let default = with_quiet_dependencies(default_filter);
        let filter = match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
            Some(given) if EnvFilter::try_new(given).is_ok() => given.to_owned(),
            Some(given) => {
                warnings.push(format!(
                    "ignoring RUST_LOG={given:?} (not a valid filter); using {default:?}"
                ));
                default
            }
            None => default,
        };
        let format = match log_format.map(str::trim) {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                warnings.push(format!(
                    "ignoring {LOG_FORMAT_ENV}={other:?} (expected json or text); writing text"
                ));
                LogFormat::Text
            }
        };
        Self {
            filter,
            format,
            warnings,
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// `default_filter` plus `crate=warn` for each quiet dependency it does not mention.
fn with_quiet_dependencies(default_filter: &str) -> String {
    let mut directives: Vec<String> = default_filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    for name in QUIET {
        let mentioned = directives.iter().any(|d| {
            d == name || d.starts_with(&format!("{name}=")) || d.starts_with(&format!("{name}::"))
        });
        if !mentioned {
            directives.push(format!("{name}=warn"));
        }
    }
    directives.join(",")
}

/// Installs the global subscriber: stderr, filtered by `RUST_LOG` (default: `default_filter`
/// with `h2`, `hyper`, `tower` and `foyer` at `warn`), text or JSON per `TIERCEL_LOG_FORMAT`.
///
/// Idempotent: when a subscriber is already installed (tests call this repeatedly) it does
/// nothing.
pub fn init(default_filter: &str) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let log_format = std::env::var(LOG_FORMAT_ENV).ok();
    let settings = Settings::decide(default_filter, rust_log.as_deref(), log_format.as_deref());
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into log files or CI output.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match settings.format {
        LogFormat::Json => builder.json().try_init().is_ok(),
        LogFormat::Text => builder.try_init().is_ok(),
    };
    if installed {
        for warning in &settings.warnings {
            tracing::warn!("{warning}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET_TAIL: &str = "h2=warn,hyper=warn,tower=warn,foyer=warn";

    #[test]
    fn filters() {
        let cases: [(&str, Option<&str>, String); 8] = [
            ("info", None, format!("info,{QUIET_TAIL}")),
            ("debug", None, format!("debug,{QUIET_TAIL}")),
            ("info", Some(""), format!("info,{QUIET_TAIL}")),
            ("info", Some("trace"), "trace".to_owned()),
            (
                "info",
                Some("tiercel_edge=debug,hyper=info"),
                "tiercel_edge=debug,hyper=info".to_owned(),
            ),
            (
                "info,hyper=debug",
                None,
                "info,hyper=debug,h2=warn,tower=warn,foyer=warn".to_owned(),
            ),
            (
                "info,foyer::storage=info",
                None,
                "info,foyer::storage=info,h2=warn,hyper=warn,tower=warn".to_owned(),
            ),
            (
                "info, h2 ,",
                None,
                "info,h2,hyper=warn,tower=warn,foyer=warn".to_owned(),
            ),
        ];
        for (default, rust_log, want) in cases {
            let s = Settings::decide(default, rust_log, None);
            assert_eq!(s.filter, want, "{default:?} {rust_log:?}");
            assert!(s.warnings.is_empty());
        }
    }

    #[test]
    fn invalid_rust_log_falls_back_with_a_warning() {
        let s = Settings::decide("info", Some("info,[[["), None);
        assert_eq!(s.filter, format!("info,{QUIET_TAIL}"));
        assert_eq!(
            s.warnings,
            vec![format!(
                "ignoring RUST_LOG=\"info,[[[\" (not a valid filter); using \"info,{QUIET_TAIL}\""
            )]
        );
    }

    #[test]
    fn formats() {
        let cases = [
            (None, LogFormat::Text, 0),
            (Some(""), LogFormat::Text, 0),
            (Some("text"), LogFormat::Text, 0),
            (Some("json"), LogFormat::Json, 0),
            (Some(" json "), LogFormat::Json, 0),
            (Some("JSON"), LogFormat::Text, 1),
            (Some("yaml"), LogFormat::Text, 1),
        ];
        for (value, want, warnings) in cases {
            let s = Settings::decide("info", None, value);
            assert_eq!((s.format, s.warnings.len()), (want, warnings), "{value:?}");
        }
        assert_eq!(
            Settings::decide("info", None, Some("yaml")).warnings,
            vec![
                "ignoring TIERCEL_LOG_FORMAT=\"yaml\" (expected json or text); writing text"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn every_default_filter_is_valid() {
        for default in ["info", "debug", "warn,tiercel_edge=debug", ""] {
            let s = Settings::decide(default, None, None);
            assert!(EnvFilter::try_new(&s.filter).is_ok(), "{}", s.filter);
        }
    }

    #[test]
    fn init_is_idempotent() {
        init("info");
        init("debug");
        tracing::info!("still fine after two inits");
    }
}
