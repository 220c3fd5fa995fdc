//! Layered loading: defaults < TOML file < `TIERCEL_*` environment < flags.
//!
//! Why plain `toml` + serde rather than the `config` crate: `config` lower-cases keys, parses
//! list variables only with a global separator, and reports type errors without saying which
//! layer a value came from. Here every layer writes leaves into one TOML table and remembers
//! each leaf's [`Source`]; the merged table is deserialized once with `serde_path_to_error`, so
//! an error names the exact dotted key and the layer that supplied it, and precedence is simply
//! the order of the writes.
//!
//! The key schema is not written down twice: it is the set of leaves of the serialized
//! defaults (optional values serialize as `""`, so every key is present). A variable is the key
//! upper-cased with `.` → `__` and a `TIERCEL_` prefix (`timeouts.connect` →
//! `TIERCEL_TIMEOUTS__CONNECT`); lists are comma-separated; `services` is file-only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::args::{FlagValue, NodeArgs};
use super::error::{ConfigError, Source, io_message};
use super::schema::{NodeConfig, Role};

/// Prefix of every variable the loader reads.
pub const ENV_PREFIX: &str = "TIERCEL_";
/// The variable naming the config file when `--config` is absent.
pub const ENV_CONFIG: &str = "TIERCEL_CONFIG";
/// Keys that only a file can set (tables, not scalars).
const FILE_ONLY: [&str; 1] = ["services"];

/// The TOML type of a leaf, which decides how text from a variable or flag is converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Float,
    Boolean,
    List,
    FileOnly,
}

/// Where each dotted key's current value came from.
pub(crate) type Sources = BTreeMap<String, Source>;

/// The layers merged so far.
struct Layers {
    table: Table,
    sources: Sources,
    schema: BTreeMap<String, Kind>,
}

impl Layers {
    /// The defaults for `role`, and the schema read off them.
    fn new(role: Role) -> Result<Self, ConfigError> {
        let defaults = NodeConfig::defaults(role);
        let table = Table::try_from(&defaults).map_err(|e| ConfigError::Render {
            message: e.to_string(),
        })?;
        let mut schema = BTreeMap::new();
        collect_schema(&table, "", &mut schema);
        let sources = schema
            .keys()
            .map(|k| (k.clone(), Source::Default))
            .collect();
        Ok(Self {
            table,
            sources,
            schema,
        })
    }

    /// Writes `value` at dotted `key`, creating section tables on the way.
    fn set(&mut self, key: &str, value: Value, source: Source) {
        let mut table = &mut self.table;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_owned(), value);
                break;
            }
            let entry = table
                .entry(part.to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            let Value::Table(next) = entry else {
                return;
            };
            table = next;
        }
        self.sources.insert(key.to_owned(), source);
    }

    /// Merges a parsed file, rejecting keys the schema lacks.
    fn apply_file(&mut self, file: Table, path: &Path) -> Result<(), ConfigError> {
        let mut leaves = Vec::new();
        flatten_file(file, "", &self.schema, path, &mut leaves)?;
        for (key, value) in leaves {
            self.set(&key, value, Source::File(path.to_owned()));
        }
        Ok(())
    }

    /// Applies the `TIERCEL_*` variables that name schema keys; others are ignored.
    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        let by_name: BTreeMap<String, (String, Kind)> = self
            .schema
            .iter()
            .filter(|(_, kind)| **kind != Kind::FileOnly)
            .map(|(key, kind)| (env_name(key), (key.clone(), *kind)))
            .collect();
        for (name, text) in env {
            if let Some((key, kind)) = by_name.get(name) {
                let source = Source::Env(name.clone());
                let value = from_text(key, *kind, text, &source)?;
                self.set(key, value, source);
            }
        }
        Ok(())
    }

    /// Applies the flags that were given.
    fn apply_flags(&mut self, args: &NodeArgs) -> Result<(), ConfigError> {
        for (flag, key, value) in args.given() {
            let source = Source::Flag(flag);
            let value = match value {
                FlagValue::One(text) => {
                    let kind = self.schema.get(key).copied().unwrap_or(Kind::Text);
                    from_text(key, kind, text, &source)?
                }
                FlagValue::Many(items) => Value::Array(
                    items
                        .iter()
                        .map(|s| s.trim())
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                ),
            };
            self.set(key, value, source);
        }
        Ok(())
    }

    /// Deserializes the merged table, naming the key and layer of the first bad value.
    fn finish(self) -> Result<(NodeConfig, Sources), ConfigError> {
        let Layers { table, sources, .. } = self;
        match serde_path_to_error::deserialize::<_, NodeConfig>(table) {
            Ok(cfg) => Ok((cfg, sources)),
            Err(error) => {
                let key = error.path().to_string();
                let from = source_of(&sources, &key).cloned();
                Err(ConfigError::Invalid {
                    key,
                    from,
                    message: error.inner().message().to_owned(),
                })
            }
        }
    }
}

/// The source of `key` or of the nearest enclosing key (`shields` for `shields[1]`).
pub(crate) fn source_of<'a>(sources: &'a Sources, key: &str) -> Option<&'a Source> {
    let mut best: Option<(&String, &Source)> = None;
    for (k, s) in sources {
        let covers = key == k
            || key
                .strip_prefix(k.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['));
        if covers && best.is_none_or(|(b, _)| k.len() > b.len()) {
            best = Some((k, s));
        }
    }
    best.map(|(_, s)| s)
}

/// `timeouts.connect` → `TIERCEL_TIMEOUTS__CONNECT`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
}

fn collect_schema(table: &Table, prefix: &str, out: &mut BTreeMap<String, Kind>) {
    for (name, value) in table {
        let key = join(prefix, name);
        let kind = match value {
            Value::Table(inner) => {
                collect_schema(inner, &key, out);
                continue;
            }
            _ if FILE_ONLY.contains(&key.as_str()) => Kind::FileOnly,
            Value::Integer(_) => Kind::Integer,
            Value::Float(_) => Kind::Float,
            Value::Boolean(_) => Kind::Boolean,
            Value::Array(_) => Kind::List,
            Value::String(_) | Value::Datetime(_) => Kind::Text,
        };
        out.insert(key, kind);
    }
}

/// Splits a file into (dotted key, value) leaves, following the schema's sections.
fn flatten_file(
    table: Table,
    prefix: &str,
    schema: &BTreeMap<String, Kind>,
    path: &Path,
    out: &mut Vec<(String, Value)>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = join(prefix, &name);
        if schema.contains_key(&key) {
            out.push((key, value));
            continue;
        }
        let section_prefix = format!("{key}.");
        let is_section = schema.keys().any(|k| k.starts_with(&section_prefix));
        match value {
            Value::Table(inner) if is_section => flatten_file(inner, &key, schema, path, out)?,
            // A scalar where a section belongs: let serde report the type at this key.
            other if is_section => out.push((key, other)),
            _ => {
                return Err(ConfigError::UnknownKey {
                    key,
                    path: path.to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Converts a variable's or flag's text to the TOML value its key holds.
fn from_text(key: &str, kind: Kind, text: &str, source: &Source) -> Result<Value, ConfigError> {
    let invalid = |expected: &str| ConfigError::Invalid {
        key: key.to_owned(),
        from: Some(source.clone()),
        message: format!("expected {expected}, got {text:?}"),
    };
    let trimmed = text.trim();
    Ok(match kind {
        Kind::Text | Kind::FileOnly => Value::String(text.to_owned()),
        Kind::Integer => Value::Integer(trimmed.parse().map_err(|_| invalid("an integer"))?),
        Kind::Float => Value::Float(trimmed.parse().map_err(|_| invalid("a number"))?),
        Kind::Boolean => Value::Boolean(match trimmed {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(invalid("true or false")),
        }),
        Kind::List => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

/// Reads and parses the TOML file at `path`.
fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        message: io_message(&e),
    })?;
    parse_table(&text, path)
}

/// Parses the text of a configuration file (`path` only names it in errors).
fn parse_table(text: &str, path: &Path) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let (line, column) = line_column(text, span.start);
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        ConfigError::Parse {
            path: path.to_owned(),
            message: format!("{at}{}", e.message().trim_end()),
        }
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The configuration a file holding `text` gives on its own (defaults < `text`), validated.
/// Secret files it names are not read. See [`NodeConfig::from_file_text`].
pub(crate) fn from_file_text(
    role: Role,
    text: &str,
    path: &Path,
) -> Result<NodeConfig, ConfigError> {
    let mut layers = Layers::new(role)?;
    layers.apply_file(parse_table(text, path)?, path)?;
    let (cfg, sources) = layers.finish()?;
    super::validate::validate(&cfg, &sources)?;
    Ok(cfg)
}

/// The whole load: layers, then validation. See [`NodeConfig::load`].
pub(crate) fn load(
    role: Role,
    args: &NodeArgs,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(NodeConfig, Sources), ConfigError> {
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    let mut layers = Layers::new(role)?;
    let file: Option<PathBuf> = args.config.clone().or_else(|| {
        env.iter()
            .rev()
            .find(|(name, value)| name == ENV_CONFIG && !value.is_empty())
            .map(|(_, value)| PathBuf::from(value))
    });
    if let Some(path) = file {
        let table = read_file(&path)?;
        layers.apply_file(table, &path)?;
    }
    layers.apply_env(&env)?;
    layers.apply_flags(args)?;
    let (mut cfg, sources) = layers.finish()?;
    super::validate::validate(&cfg, &sources)?;
    super::validate::read_secret_files(&mut cfg, &sources)?;
    Ok((cfg, sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(env_name("listen"), "TIERCEL_LISTEN");
        assert_eq!(env_name("disk_cache_size"), "TIERCEL_DISK_CACHE_SIZE");
        assert_eq!(env_name("timeouts.connect"), "TIERCEL_TIMEOUTS__CONNECT");
        assert_eq!(
            env_name("cache.max_purge_lag"),
            "TIERCEL_CACHE__MAX_PURGE_LAG"
        );
    }

    #[test]
    fn schema_covers_every_field_with_its_kind() {
        let layers = Layers::new(Role::Edge).unwrap();
        let kinds: Vec<(&str, Kind)> = layers
            .schema
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        use Kind::*;
        assert_eq!(
            kinds,
            vec![
                ("admin_listen", Text),
                ("cache.abandoned_fill_max", Text),
                ("cache.chunk_size", Text),
                ("cache.heuristic_fraction", Float),
                ("cache.heuristic_max", Text),
                ("cache.hit_for_miss_ttl", Text),
                ("cache.honor_request_no_cache", Boolean),
                ("cache.max_object_size", Text),
                ("cache.max_purge_lag", Text),
                ("cache.max_purge_rules", Integer),
                ("cache.max_tags", Integer),
                ("cache.max_tags_bytes", Text),
                ("cache.max_variants", Integer),
                ("cache.max_vary_fields", Integer),
                ("cache.slice_threshold", Text),
                ("cache.store_set_cookie", Boolean),
                ("cert", Text),
                ("disk_cache", Text),
                ("disk_cache_size", Text),
                ("key", Text),
                ("limits.max_connections", Integer),
                ("limits.max_connections_per_ip", Integer),
                ("limits.max_fills", Integer),
                ("limits.max_fills_per_connection", Integer),
                ("limits.max_headers", Integer),
                ("limits.max_request_head", Text),
                ("listen", Text),
                ("memory_cache", Text),
                ("name", Text),
                ("origin", Text),
                ("origin_addresses", List),
                ("origin_ca_file", Text),
                ("origin_fallback", Boolean),
                ("origin_protocol", Text),
                ("purge_ca_file", Text),
                ("purge_services", List),
                ("purge_token", Text),
                ("purge_token_file", Text),
                ("quic.address_validation", Text),
                ("quic.alt_svc_max_age", Text),
                ("quic.congestion", Text),
                ("quic.early_data", Boolean),
                ("quic.enabled", Boolean),
                ("quic.max_concurrent_streams", Integer),
                ("quic.max_udp_payload", Integer),
                ("quic.receive_window", Text),
                ("quic.stream_receive_window", Text),
                ("services", FileOnly),
                ("shield_protocol", Text),
                ("shields", List),
                ("state_dir", Text),
                ("timeouts.client_body", Text),
                ("timeouts.client_header", Text),
                ("timeouts.client_idle", Text),
                ("timeouts.connect", Text),
                ("timeouts.fill_queue", Text),
                ("timeouts.first_byte", Text),
                ("timeouts.idle", Text),
                ("timeouts.shutdown_grace", Text),
                ("tls_listen", Text),
                ("trusted_forwarders", List),
                ("worker_threads", Integer),
            ]
        );
    }

    #[test]
    fn sources_cover_nested_paths() {
        let mut s = Sources::new();
        s.insert("shields".into(), Source::Flag("--shield"));
        s.insert("timeouts.connect".into(), Source::Env("X".into()));
        s.insert("services".into(), Source::File("f".into()));
        assert_eq!(source_of(&s, "shields[1]"), Some(&Source::Flag("--shield")));
        assert_eq!(
            source_of(&s, "timeouts.connect"),
            Some(&Source::Env("X".into()))
        );
        assert_eq!(
            source_of(&s, "services[0].name"),
            Some(&Source::File("f".into()))
        );
        assert_eq!(source_of(&s, "shieldsx"), None);
        assert_eq!(source_of(&s, "timeouts"), None);
    }

    #[test]
    fn line_columns() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc\ndef", 5), (2, 2));
        assert_eq!(line_column("a\n\nxé y", 6), (3, 3));
    }
}
