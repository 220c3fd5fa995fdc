//! Loading end to end: precedence of every layer for scalar, nested and list keys, every error
//! message, validation rules, the TOML round trip, and real files on disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::units::format_duration;
use super::*;

mod errors;

/// A temporary directory holding config files for one test.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn args_with_file(path: &Path) -> NodeArgs {
    NodeArgs {
        config: Some(path.to_owned()),
        ..NodeArgs::default()
    }
}

/// Sets a flag in `NodeArgs`, and the value the key then has.
type FlagSetter = (fn(&mut NodeArgs), &'static str);

/// One key and a distinct value for it in every layer.
struct Layered {
    key: &'static str,
    default: &'static str,
    file: (&'static str, &'static str),
    env: (&'static str, &'static str, &'static str),
    flag: Option<FlagSetter>,
    get: fn(&NodeConfig) -> String,
}

fn layered_keys() -> Vec<Layered> {
    vec![
        Layered {
            key: "listen (scalar)",
            default: "127.0.0.1:8080",
            file: ("listen = \"127.0.0.1:1001\"", "127.0.0.1:1001"),
            env: ("TIERCEL_LISTEN", "127.0.0.1:1002", "127.0.0.1:1002"),
            flag: Some((
                |a| a.listen = Some("127.0.0.1:1003".into()),
                "127.0.0.1:1003",
            )),
            get: |c| c.listen.map(|a| a.to_string()).unwrap_or_default(),
        },
        Layered {
            key: "timeouts.connect (nested)",
            default: "5s",
            file: ("[timeouts]\nconnect = \"1s\"", "1s"),
            env: ("TIERCEL_TIMEOUTS__CONNECT", "250ms", "250ms"),
            flag: Some((|a| a.connect_timeout = Some("3m".into()), "3m")),
            get: |c| format_duration(c.timeouts.connect),
        },
        Layered {
            key: "shields (list)",
            default: "",
            file: ("shields = [\"http://f:1\"]", "http://f:1"),
            env: (
                "TIERCEL_SHIELDS",
                "http://e:1, http://e:2",
                "http://e:1 http://e:2",
            ),
            flag: Some((
                |a| a.shields = vec!["http://g:1".into(), "http://g:2".into()],
                "http://g:1 http://g:2",
            )),
            get: |c| c.shields.join(" "),
        },
        Layered {
            key: "disk_cache_size (size)",
            default: "1GiB",
            file: ("disk_cache_size = 33554432", "32MiB"),
            env: ("TIERCEL_DISK_CACHE_SIZE", "1GB", "1GB"),
            flag: Some((|a| a.disk_cache_size = Some("64MiB".into()), "64MiB")),
            get: |c| c.disk_cache_size.to_string(),
        },
        Layered {
            key: "purge_services (list)",
            default: "",
            file: ("purge_services = [\"http://p:1\"]", "http://p:1"),
            env: ("TIERCEL_PURGE_SERVICES", "http://q:1", "http://q:1"),
            flag: Some((
                |a| a.purge_services = vec!["http://r:1".into()],
                "http://r:1",
            )),
            get: |c| c.purge_services.join(" "),
        },
        Layered {
            key: "cache.chunk_size (nested, no flag)",
            default: "1MiB",
            file: ("[cache]\nchunk_size = \"2MiB\"", "2MiB"),
            env: ("TIERCEL_CACHE__CHUNK_SIZE", "512KiB", "512KiB"),
            flag: None,
            get: |c| c.cache.chunk_size.to_string(),
        },
        Layered {
            key: "limits.max_headers (integer)",
            default: "100",
            file: ("[limits]\nmax_headers = 50", "50"),
            env: ("TIERCEL_LIMITS__MAX_HEADERS", "60", "60"),
            flag: None,
            get: |c| c.limits.max_headers.to_string(),
        },
        Layered {
            key: "cache.heuristic_fraction (float)",
            default: "0.1",
            file: ("[cache]\nheuristic_fraction = 0.25", "0.25"),
            env: ("TIERCEL_CACHE__HEURISTIC_FRACTION", "0.5", "0.5"),
            flag: None,
            get: |c| c.cache.heuristic_fraction.to_string(),
        },
        Layered {
            key: "origin_fallback (boolean)",
            default: "true",
            file: ("origin_fallback = false", "false"),
            env: ("TIERCEL_ORIGIN_FALLBACK", "true", "true"),
            flag: None,
            get: |c| c.origin_fallback.to_string(),
        },
        Layered {
            key: "origin (optional)",
            default: "",
            file: ("origin = \"http://file:1\"", "http://file:1"),
            env: ("TIERCEL_ORIGIN", "https://env:2", "https://env:2"),
            flag: Some((|a| a.origin = Some("http://flag:3".into()), "http://flag:3")),
            get: |c| c.origin.clone().unwrap_or_default(),
        },
    ]
}

#[test]
fn every_layer_beats_the_one_below() {
    let dir = Dir::new();
    for spec in layered_keys() {
        // Every combination of layers present: the highest one present wins.
        for mask in 0..8u8 {
            let (use_file, use_env, use_flag) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
            if use_flag && spec.flag.is_none() {
                continue;
            }
            let mut args = NodeArgs::default();
            if use_file {
                args.config = Some(dir.file(&format!("{mask}.toml"), spec.file.0));
            }
            let vars = if use_env {
                env(&[(spec.env.0, spec.env.1)])
            } else {
                Vec::new()
            };
            let mut want = spec.default;
            if use_file {
                want = spec.file.1;
            }
            if use_env {
                want = spec.env.2;
            }
            if let (true, Some((set, value))) = (use_flag, spec.flag) {
                set(&mut args);
                want = value;
            }
            let cfg = NodeConfig::load(Role::Edge, &args, vars)
                .unwrap_or_else(|e| panic!("{} mask {mask}: {e}", spec.key));
            assert_eq!(
                (spec.get)(&cfg),
                want,
                "{} file={use_file} env={use_env} flag={use_flag}",
                spec.key
            );
        }
    }
}

#[test]
fn sources_are_reported_per_key() {
    let dir = Dir::new();
    let file = dir.file(
        "s.toml",
        "listen = \"127.0.0.1:1\"\n[timeouts]\nidle = \"1s\"",
    );
    let mut args = args_with_file(&file);
    args.origin = Some("http://o:1".into());
    let (_, sources) =
        NodeConfig::load_with_sources(Role::Shield, &args, env(&[("TIERCEL_NAME", "s1")])).unwrap();
    let of = |key: &str| {
        sources
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
    };
    assert_eq!(of("listen"), Some(Source::File(file.clone())));
    assert_eq!(of("timeouts.idle"), Some(Source::File(file)));
    assert_eq!(of("name"), Some(Source::Env("TIERCEL_NAME".into())));
    assert_eq!(of("origin"), Some(Source::Flag("--origin")));
    assert_eq!(of("memory_cache"), Some(Source::Default));
}

#[test]
fn role_defaults() {
    let edge = NodeConfig::load(Role::Edge, &NodeArgs::default(), env(&[])).unwrap();
    let shield = NodeConfig::load(Role::Shield, &NodeArgs::default(), env(&[])).unwrap();
    assert_eq!(edge, NodeConfig::defaults(Role::Edge));
    assert_eq!(shield, NodeConfig::defaults(Role::Shield));
    assert_eq!(
        (edge.name.as_str(), edge.listen),
        ("tiercel-edge", Some("127.0.0.1:8080".parse().unwrap()))
    );
    assert_eq!(
        (shield.name.as_str(), shield.listen),
        ("tiercel-shield", Some("127.0.0.1:8081".parse().unwrap()))
    );
    let t = &edge.timeouts;
    let s = Duration::from_secs;
    assert_eq!(
        [
            t.connect,
            t.first_byte,
            t.idle,
            t.client_header,
            t.client_idle,
            t.shutdown_grace
        ],
        [s(5), s(30), s(30), s(10), s(60), s(10)]
    );
    assert_eq!(edge.memory_cache, ByteSize::mib(256));
    assert_eq!(edge.disk_cache_size, ByteSize::gib(1));
    assert_eq!(
        (
            edge.limits.max_request_head,
            edge.limits.max_headers,
            edge.limits.max_connections
        ),
        (ByteSize::kib(64), 100, 10_000)
    );
    let c = &edge.cache;
    assert_eq!(c.chunk_size, ByteSize::mib(1));
    assert_eq!((c.heuristic_fraction, c.heuristic_max), (0.1, s(24 * 3600)));
    assert_eq!(
        (c.store_set_cookie, c.honor_request_no_cache),
        (false, true)
    );
    assert_eq!(
        (c.max_purge_lag, c.hit_for_miss_ttl, c.max_object_size),
        (s(10), s(30), ByteSize(0))
    );
    assert_eq!(NodeConfig::default(), edge);
}

#[test]
fn unknown_variables_are_ignored_and_config_file_comes_from_env_too() {
    let dir = Dir::new();
    let from_env = dir.file("env.toml", "name = \"from-env-file\"");
    let from_flag = dir.file("flag.toml", "name = \"from-flag-file\"");
    let vars = env(&[
        ("TIERCEL_TOKEN", "secret"),
        ("TIERCEL_LOG_FORMAT", "json"),
        ("TIERCEL_listen", "nonsense"),
        ("TIERCEL_TIMEOUTS", "nonsense"),
        ("TIERCEL_SERVICES", "nonsense"),
        ("LISTEN", "nonsense"),
        ("TIERCEL_CONFIG", from_env.to_str().unwrap()),
    ]);
    let cfg = NodeConfig::load(Role::Edge, &NodeArgs::default(), vars.clone()).unwrap();
    assert_eq!(cfg.name, "from-env-file");
    let cfg = NodeConfig::load(Role::Edge, &args_with_file(&from_flag), vars).unwrap();
    assert_eq!(cfg.name, "from-flag-file");
}

#[test]
fn empty_values_unset_optional_keys() {
    let dir = Dir::new();
    let file = dir.file(
        "t.toml",
        "listen = \"\"\ntls_listen = \"127.0.0.1:8443\"\norigin = \"http://o:1\"",
    );
    let cfg = NodeConfig::load(
        Role::Edge,
        &args_with_file(&file),
        env(&[("TIERCEL_ORIGIN", "")]),
    )
    .unwrap();
    assert_eq!(cfg.listen, None);
    assert_eq!(cfg.tls_listen, Some("127.0.0.1:8443".parse().unwrap()));
    assert_eq!(cfg.origin, None);
    let cfg = NodeConfig::load(
        Role::Edge,
        &NodeArgs::default(),
        env(&[("TIERCEL_SHIELDS", "")]),
    )
    .unwrap();
    assert!(cfg.shields.is_empty());
}

#[test]
fn services_pass_through_from_the_file() {
    let dir = Dir::new();
    let file = dir.file(
        "svc.toml",
        "[[services]]\nname = \"site\"\nhosts = [\"a.example\", \"*.b.example\"]\n\n[[services]]\nname = \"two\"\nhosts = [\"two.example\"]\n",
    );
    let cfg = NodeConfig::load(Role::Edge, &args_with_file(&file), env(&[])).unwrap();
    assert_eq!(cfg.services.len(), 2);
    assert_eq!(cfg.services[0]["name"].as_str(), Some("site"));
    assert_eq!(cfg.services[0]["hosts"].as_array().map(Vec::len), Some(2));
    assert_eq!(cfg.services[1]["name"].as_str(), Some("two"));
}

#[test]
fn a_bad_service_in_the_file_is_refused_naming_its_key_and_the_file() {
    let dir = Dir::new();
    for (text, want) in [
        (
            "[[services]]\nname = \"two\"\n",
            ("services[0]", "missing field `hosts`"),
        ),
        (
            "[[services]]\nname = \"a\"\nhosts = [\"a.example\"]\nbalance = \"random\"\n",
            (
                "services[0].balance",
                "expected round_robin, least_conn or consistent, got \"random\"",
            ),
        ),
        (
            "[[services]]\nname = \"a\"\nhosts = [\"x.example\"]\n[[services]]\nname = \"b\"\nhosts = [\"x.example\"]\n",
            (
                "services",
                "host \"x.example\" belongs to both \"a\" and \"b\"",
            ),
        ),
    ] {
        let (key, message) = want;
        let file = dir.file("svc.toml", text);
        let err = NodeConfig::load(Role::Edge, &args_with_file(&file), env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("config error: {key} (from {}): {message}", file.display())
        );
    }
}

/// A configuration with every key away from its default.
fn everything_set() -> NodeConfig {
    let mut service = toml::Table::new();
    service.insert("name".into(), "site".into());
    service.insert("hosts".into(), toml::Value::Array(vec!["a.example".into()]));
    NodeConfig {
        name: "edge-fra-1".into(),
        listen: Some("127.0.0.1:18080".parse().unwrap()),
        tls_listen: Some("[::1]:18443".parse().unwrap()),
        cert: Some("/etc/tiercel/cert.pem".into()),
        key: Some("/etc/tiercel/key.pem".into()),
        origin: Some("https://origin.example:8443".into()),
        shields: vec!["http://s1:8081".into(), "http://s2:8081".into()],
        origin_fallback: false,
        shield_protocol: "http/1.1".into(),
        origin_protocol: "auto".into(),
        origin_addresses: vec!["192.0.2.1".into(), "[2001:db8::2]:8443".into()],
        trusted_forwarders: vec!["10.0.0.0/8".into(), "2001:db8::1".into()],
        purge_services: vec!["http://p1:7070".into()],
        purge_token: Some("t0ken-0123456789abcdef".into()),
        purge_token_file: None,
        purge_ca_file: None,
        origin_ca_file: Some("/etc/tiercel/origin-ca.pem".into()),
        memory_cache: ByteSize::mib(64),
        disk_cache: Some("/var/cache/tiercel".into()),
        disk_cache_size: ByteSize(20_000_000_000),
        admin_listen: Some("127.0.0.1:19090".parse().unwrap()),
        state_dir: Some("/var/lib/tiercel".into()),
        worker_threads: 3,
        timeouts: Timeouts {
            connect: Duration::from_millis(1500),
            first_byte: Duration::from_secs(20),
            idle: Duration::from_secs(120),
            client_header: Duration::from_secs(5),
            client_idle: Duration::from_secs(3600),
            shutdown_grace: Duration::ZERO,
            fill_queue: Duration::from_millis(250),
            client_body: Duration::from_secs(7),
        },
        limits: Limits {
            max_request_head: ByteSize::kib(32),
            max_headers: 64,
            max_connections: 50_000,
            max_connections_per_ip: 200,
            max_fills: 2048,
            max_fills_per_connection: 16,
        },
        cache: CacheSettings {
            chunk_size: ByteSize::mib(4),
            slice_threshold: ByteSize::mib(16),
            heuristic_fraction: 0.05,
            heuristic_max: Duration::from_secs(7200),
            store_set_cookie: true,
            honor_request_no_cache: false,
            max_purge_lag: Duration::from_secs(3),
            max_purge_rules: 5_000,
            hit_for_miss_ttl: Duration::from_millis(500),
            max_object_size: ByteSize::gib(8),
            abandoned_fill_max: ByteSize::mib(32),
            max_tags: 50,
            max_tags_bytes: ByteSize::kib(4),
            max_vary_fields: 4,
            max_variants: 20,
        },
        quic: QuicSettings {
            enabled: false,
            alt_svc_max_age: Duration::from_secs(3600),
            max_concurrent_streams: 100,
            stream_receive_window: ByteSize::kib(512),
            receive_window: ByteSize::mib(4),
            congestion: "bbr".to_owned(),
            max_udp_payload: 1350,
            address_validation: "always".to_owned(),
            early_data: false,
        },
        services: vec![service],
    }
}

#[test]
fn to_toml_round_trips_through_a_real_file() {
    let dir = Dir::new();
    for cfg in [
        everything_set(),
        NodeConfig::defaults(Role::Edge),
        NodeConfig::defaults(Role::Shield),
    ] {
        assert_eq!(cfg.validate(), Ok(()));
        let text = cfg.to_toml_with_secrets();
        let path = dir.file("round.toml", &text);
        // Load as the other role too: the file sets every key, so defaults do not matter.
        for role in [Role::Edge, Role::Shield] {
            let loaded = NodeConfig::load(role, &args_with_file(&path), env(&[]))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(loaded, cfg, "{text}");
        }
    }
}

#[test]
fn to_toml_shape_and_token_redaction() {
    let text = NodeConfig::defaults(Role::Edge).to_toml();
    assert!(
        text.starts_with(
            "name = \"tiercel-edge\"\nlisten = \"127.0.0.1:8080\"\ntls_listen = \"\"\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n[timeouts]\nconnect = \"5s\"\nfirst_byte = \"30s\"\n"),
        "{text}"
    );
    assert!(
        text.contains("\n[cache]\nchunk_size = \"1MiB\"\n"),
        "{text}"
    );
    assert!(text.contains("memory_cache = \"256MiB\"\n"), "{text}");

    let cfg = everything_set();
    let shown = cfg.to_toml();
    assert!(!shown.contains("t0ken"), "{shown}");
    assert!(shown.starts_with(
        "# purge_token is set (from a flag, TIERCEL_PURGE_TOKEN or the file) but not shown\n"
    ));
    assert!(shown.contains("\npurge_token = \"\"\n"));
    assert!(
        cfg.to_toml_with_secrets()
            .contains("\npurge_token = \"t0ken-0123456789abcdef\"\n")
    );
}

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

#[test]
fn flags_parse_and_help_shows_the_defaults() {
    let cli = Cli::try_parse_from([
        "tiercel-edge",
        "--listen",
        "127.0.0.1:1",
        "--shield",
        "http://a:1",
        "--shield",
        "http://b:1,http://c:1",
        "--purge-service",
        "http://p:1",
        "--connect-timeout",
        "2s",
        "--check-config",
        "--config",
        "/etc/t.toml",
    ])
    .unwrap();
    assert_eq!(
        cli.node,
        NodeArgs {
            config: Some("/etc/t.toml".into()),
            check_config: true,
            listen: Some("127.0.0.1:1".into()),
            shields: vec![
                "http://a:1".into(),
                "http://b:1".into(),
                "http://c:1".into()
            ],
            purge_services: vec!["http://p:1".into()],
            connect_timeout: Some("2s".into()),
            ..NodeArgs::default()
        }
    );
    let cli = Cli::try_parse_from([
        "tiercel-edge",
        "--origin",
        "http://o:1",
        "--memory-cache",
        "2GiB",
    ])
    .unwrap();
    let cfg = NodeConfig::load(Role::Edge, &cli.node, env(&[])).unwrap();
    assert_eq!(
        (cfg.origin.as_deref(), cfg.memory_cache),
        (Some("http://o:1"), ByteSize::gib(2))
    );

    let help = <Cli as clap::CommandFactory>::command()
        .render_help()
        .to_string();
    for needle in [
        "[default: 256MiB]",
        "[default: 1GiB; shield: 8GiB]",
        "[default: 5s]",
        "[default: 30s]",
        "[default: 127.0.0.1:8080 on an edge, 127.0.0.1:8081 on a shield]",
        "[default: tiercel-edge or tiercel-shield]",
        "--check-config",
        "--purge-service <URL>",
        "--shield <URL>",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
