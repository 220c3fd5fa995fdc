//! Every error message of loading and validation, as the operator sees it: one exact line.

use std::path::Path;
use std::time::Duration;

use super::super::*;
use super::{Dir, args_with_file, env};

/// Runs `load` and returns the error's one-line text.
fn load_err(args: &NodeArgs, vars: &[(&str, &str)]) -> String {
    let err = NodeConfig::load(Role::Edge, args, env(vars)).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    text
}

#[test]
fn every_error_message() {
    let dir = Dir::new();
    let f = |name: &str, text: &str| {
        let path = dir.file(name, text);
        (args_with_file(&path), path.display().to_string())
    };
    let none = NodeArgs::default();
    let flag = |set: fn(&mut NodeArgs)| {
        let mut a = NodeArgs::default();
        set(&mut a);
        a
    };

    let (a, p) = f("size.toml", "disk_cache_size = \"lots\"");
    assert_eq!(
        load_err(&a, &[]),
        format!(
            "config error: disk_cache_size (from {p}): expected a size like 64MiB, got \"lots\""
        )
    );
    assert_eq!(
        load_err(&none, &[("TIERCEL_TIMEOUTS__CONNECT", "x")]),
        "config error: timeouts.connect (from TIERCEL_TIMEOUTS__CONNECT): expected a duration like 5s, got \"x\""
    );
    let (a, p) = f("typo.toml", "listne = \"127.0.0.1:1\"");
    assert_eq!(
        load_err(&a, &[]),
        format!("config error: unknown key \"listne\" in {p}")
    );
    let (a, p) = f("nested.toml", "[timeouts]\nconect = \"1s\"");
    assert_eq!(
        load_err(&a, &[]),
        format!("config error: unknown key \"timeouts.conect\" in {p}")
    );
    let (a, p) = f("section.toml", "[timeout]\nconnect = \"1s\"");
    assert_eq!(
        load_err(&a, &[]),
        format!("config error: unknown key \"timeout\" in {p}")
    );
    assert_eq!(
        load_err(&args_with_file(Path::new("/nope.toml")), &[]),
        "config error: cannot read /nope.toml: No such file or directory"
    );
    assert_eq!(
        load_err(&flag(|a| a.origin = Some("ftp://x".into())), &[]),
        "config error: origin (from --origin): expected http://host[:port] or https://host[:port]"
    );
    let (a, p) = f("origin.toml", "origin = \"http://o:1/path\"");
    assert_eq!(
        load_err(&a, &[]),
        format!(
            "config error: origin (from {p}): expected http://host[:port] or https://host[:port]"
        )
    );
    let (a, p) = f("syntax.toml", "name = \"a\"\nlisten = \n");
    assert!(
        load_err(&a, &[]).starts_with(&format!(
            "config error: cannot parse {p}: line 2, column 10: "
        )),
        "{}",
        load_err(&a, &[])
    );
    let (a, p) = f("type.toml", "listen = 8080");
    assert_eq!(
        load_err(&a, &[]),
        format!("config error: listen (from {p}): invalid type: integer `8080`, expected a string")
    );
    let (a, p) = f("sectiontype.toml", "timeouts = 5");
    assert_eq!(
        load_err(&a, &[]),
        format!(
            "config error: timeouts (from {p}): invalid type: integer `5`, expected struct Timeouts"
        )
    );
    assert_eq!(
        load_err(&flag(|a| a.listen = Some("nope".into())), &[]),
        "config error: listen (from --listen): expected an address like 127.0.0.1:8080, got \"nope\""
    );
    assert_eq!(
        load_err(&flag(|a| a.memory_cache = Some("1.5GiB".into())), &[]),
        "config error: memory_cache (from --memory-cache): expected a size like 64MiB, got \"1.5GiB\""
    );
    assert_eq!(
        load_err(&none, &[("TIERCEL_LIMITS__MAX_HEADERS", "many")]),
        "config error: limits.max_headers (from TIERCEL_LIMITS__MAX_HEADERS): expected an integer, got \"many\""
    );
    assert_eq!(
        load_err(&none, &[("TIERCEL_LIMITS__MAX_CONNECTIONS", "-1")]),
        "config error: limits.max_connections (from TIERCEL_LIMITS__MAX_CONNECTIONS): invalid value: integer `-1`, expected usize"
    );
    assert_eq!(
        load_err(&none, &[("TIERCEL_CACHE__STORE_SET_COOKIE", "maybe")]),
        "config error: cache.store_set_cookie (from TIERCEL_CACHE__STORE_SET_COOKIE): expected true or false, got \"maybe\""
    );
    assert_eq!(
        load_err(&none, &[("TIERCEL_CACHE__HEURISTIC_FRACTION", "a tenth")]),
        "config error: cache.heuristic_fraction (from TIERCEL_CACHE__HEURISTIC_FRACTION): expected a number, got \"a tenth\""
    );
    assert_eq!(
        load_err(&none, &[("TIERCEL_SHIELDS", "http://a:1,ftp://x")]),
        "config error: shields[1] (from TIERCEL_SHIELDS): expected http://host[:port] or https://host[:port] (optionally #weight=W), got \"ftp://x\""
    );
    let (a, p) = f("list.toml", "shields = \"http://a:1\"");
    assert_eq!(
        load_err(&a, &[]),
        format!(
            "config error: shields (from {p}): invalid type: string \"http://a:1\", expected a sequence"
        )
    );
    let (a, p) = f("svc.toml", "services = [1]");
    assert_eq!(
        load_err(&a, &[]),
        format!("config error: services[0] (from {p}): invalid type: integer `1`, expected a map")
    );
    assert_eq!(
        load_err(&flag(|a| a.cert = Some("/c.pem".into())), &[]),
        "config error: cert (from --cert): key is not set: set both cert and key, or neither for a self-signed certificate"
    );
    assert_eq!(
        load_err(
            &flag(|a| a.disk_cache = Some("/tmp/x".into())),
            &[("TIERCEL_DISK_CACHE_SIZE", "8MiB")]
        ),
        "config error: disk_cache_size (from TIERCEL_DISK_CACHE_SIZE): must be at least 16MiB when disk_cache is set, got 8MiB"
    );
    assert_eq!(
        load_err(&flag(|a| a.listen = Some(String::new())), &[]),
        "config error: listen (from --listen): nothing to serve: set listen and/or tls_listen"
    );
}

#[test]
fn io_messages_lose_the_os_error_suffix() {
    let e = std::io::Error::from_raw_os_error(2);
    assert_eq!(error::io_message(&e), "No such file or directory");
    let e = std::io::Error::other("plain (text)");
    assert_eq!(error::io_message(&e), "plain (text)");
}

#[test]
fn validation_rules() {
    type Rule = (fn(&mut NodeConfig), &'static str);
    let rules: Vec<Rule> = vec![
        (
            |c| c.name = "a b".into(),
            "config error: name: expected 1 to 64 letters, digits, '.', '_', '-' or ':', got \"a b\"",
        ),
        (
            |c| c.name = String::new(),
            "config error: name: expected 1 to 64 letters, digits, '.', '_', '-' or ':', got \"\"",
        ),
        (
            |c| c.listen = None,
            "config error: listen: nothing to serve: set listen and/or tls_listen",
        ),
        (
            |c| c.tls_listen = c.listen,
            "config error: tls_listen: same address as listen (127.0.0.1:8080)",
        ),
        (
            |c| c.admin_listen = c.listen,
            "config error: admin_listen: same address as listen (127.0.0.1:8080)",
        ),
        (
            |c| c.cert = Some("/c".into()),
            "config error: cert: key is not set: set both cert and key, or neither for a self-signed certificate",
        ),
        (
            |c| c.key = Some("/k".into()),
            "config error: key: cert is not set: set both cert and key, or neither for a self-signed certificate",
        ),
        (
            |c| c.origin = Some("http://".into()),
            "config error: origin: expected http://host[:port] or https://host[:port]",
        ),
        (
            |c| c.purge_services = vec!["http://p:1".into(), "p:2".into()],
            "config error: purge_services[1]: expected http://host[:port] or https://host[:port], got \"p:2\"",
        ),
        (
            |c| c.purge_token = Some("0123456789abcdef xyz".into()),
            "config error: purge_token: must be visible ASCII characters without spaces",
        ),
        (
            |c| c.purge_token = Some("short".into()),
            "config error: purge_token: shorter than 16 characters (generate one with `openssl rand -hex 32`)",
        ),
        (
            |c| {
                c.purge_token = Some("0123456789abcdef".into());
                c.purge_token_file = Some("/run/secrets/purge".into());
            },
            "config error: purge_token_file: give purge_token or purge_token_file, not both",
        ),
        (
            |c| c.cache.chunk_size = ByteSize::kib(32),
            "config error: cache.chunk_size: must be between 64KiB and 16MiB, got 32KiB",
        ),
        (
            |c| c.cache.chunk_size = ByteSize::mib(17),
            "config error: cache.chunk_size: must be between 64KiB and 16MiB, got 17MiB",
        ),
        (
            |c| c.quic.congestion = "vegas".into(),
            "config error: quic.congestion: must be cubic, new_reno or bbr, got \"vegas\"",
        ),
        (
            |c| c.quic.max_udp_payload = 1000,
            "config error: quic.max_udp_payload: must be between 1200 and 65527, got 1000",
        ),
        (
            |c| c.quic.stream_receive_window = ByteSize::kib(8),
            "config error: quic.stream_receive_window: must be between 16KiB and 1GiB, got 8KiB",
        ),
        (
            |c| c.memory_cache = ByteSize::kib(512),
            "config error: memory_cache: must be at least cache.chunk_size (1MiB), got 512KiB",
        ),
        (
            |c| {
                c.disk_cache = Some("/d".into());
                c.disk_cache_size = ByteSize::mib(15);
            },
            "config error: disk_cache_size: must be at least 16MiB when disk_cache is set, got 15MiB",
        ),
        (
            |c| c.cache.heuristic_fraction = 1.5,
            "config error: cache.heuristic_fraction: must be between 0 and 1, got 1.5",
        ),
        (
            |c| c.cache.heuristic_fraction = f64::NAN,
            "config error: cache.heuristic_fraction: must be between 0 and 1, got NaN",
        ),
        (
            |c| c.timeouts.connect = Duration::ZERO,
            "config error: timeouts.connect: must be more than 0s",
        ),
        (
            |c| c.timeouts.client_idle = Duration::ZERO,
            "config error: timeouts.client_idle: must be more than 0s",
        ),
        (
            |c| c.cache.max_purge_lag = Duration::ZERO,
            "config error: cache.max_purge_lag: must be more than 0s",
        ),
        (
            |c| c.cache.max_purge_rules = 0,
            "config error: cache.max_purge_rules: must be at least 1",
        ),
        (
            |c| c.worker_threads = 1025,
            "config error: worker_threads: must be at most 1024 (0 = one per core), got 1025",
        ),
        (
            |c| c.limits.max_request_head = ByteSize(100),
            "config error: limits.max_request_head: must be at least 1KiB, got 100B",
        ),
        (
            |c| c.limits.max_headers = 0,
            "config error: limits.max_headers: must be at least 1",
        ),
        (
            |c| c.limits.max_connections = 0,
            "config error: limits.max_connections: must be at least 1",
        ),
    ];
    for (mutate, want) in rules {
        let mut cfg = NodeConfig::defaults(Role::Edge);
        mutate(&mut cfg);
        assert_eq!(cfg.validate().unwrap_err().to_string(), want);
    }
    // Boundaries that are fine.
    let fine: Vec<fn(&mut NodeConfig)> = vec![
        |c| c.cache.chunk_size = ByteSize::kib(64),
        |c| c.cache.chunk_size = ByteSize::mib(16),
        |c| {
            c.disk_cache = Some("/d".into());
            c.disk_cache_size = ByteSize::mib(16);
        },
        |c| c.disk_cache_size = ByteSize(0),
        |c| c.worker_threads = 1024,
        |c| c.worker_threads = 1,
        |c| {
            c.cert = Some("/c".into());
            c.key = Some("/k".into());
        },
        |c| {
            c.listen = None;
            c.tls_listen = Some("127.0.0.1:8443".parse().unwrap());
        },
        |c| {
            c.listen = Some("127.0.0.1:0".parse().unwrap());
            c.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        },
        |c| c.cache.heuristic_fraction = 0.0,
        |c| c.cache.heuristic_fraction = 1.0,
        |c| c.timeouts.shutdown_grace = Duration::ZERO,
        |c| c.memory_cache = ByteSize::mib(1),
    ];
    for mutate in fine {
        let mut cfg = NodeConfig::defaults(Role::Edge);
        mutate(&mut cfg);
        assert_eq!(cfg.validate(), Ok(()));
    }
}
