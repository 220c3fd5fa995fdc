use super::*;

const SECRET: &str = "cluster-secret-0123456789";

fn parse_with(extra: &[&str], secret: Option<&str>) -> Result<NodeConfig, String> {
    let mut argv = vec![
        "tiercel-purge",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:7070",
        "--data-dir",
        "/tmp/x",
    ];
    argv.extend_from_slice(extra);
    let mut args = Args::try_parse_from(argv).map_err(|e| e.kind().to_string())?;
    args.cluster_secret_env = secret.map(str::to_owned);
    NodeConfig::from_args(args).map_err(|e| e.0)
}

fn parse(extra: &[&str]) -> Result<NodeConfig, String> {
    parse_with(extra, Some(SECRET))
}

#[test]
fn a_cluster_needs_a_secret_a_lone_member_does_not() {
    let peers = ["--peer", "2=127.0.0.1:7071"];
    let e = parse_with(&peers, None).unwrap_err();
    assert!(
        e.starts_with("TIERCEL_CLUSTER_SECRET: required when the cluster has other members"),
        "{e}"
    );
    let alone = parse_with(&[], None).unwrap();
    assert!(alone.cluster_secret.is_none());
    let e = parse_with(&peers, Some("short")).unwrap_err();
    assert!(
        e.starts_with("TIERCEL_CLUSTER_SECRET: shorter than 16"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, format!("{SECRET}\n")).unwrap();
    let f = f.to_str().unwrap();
    let c = parse_with(
        &["--peer", "2=127.0.0.1:7071", "--cluster-secret-file", f],
        None,
    )
    .unwrap();
    assert_eq!(c.cluster_secret.unwrap().expose(), SECRET);
    let e = parse_with(&["--cluster-secret-file", f], Some(SECRET)).unwrap_err();
    assert!(e.contains("not both"), "{e}");
}

#[test]
fn a_separate_member_listener_is_what_peers_dial() {
    let c = parse(&["--raft-listen", "10.0.0.5:7170"]).unwrap();
    assert_eq!(c.raft_listen, Some("10.0.0.5:7170".parse().unwrap()));
    assert_eq!(c.advertise, "10.0.0.5:7170");
    let e = parse(&["--raft-listen", "127.0.0.1:7070"]).unwrap_err();
    assert_eq!(e, "--raft-listen: must differ from --listen");
    let e = parse(&["--raft-listen", "0.0.0.0:7170"]).unwrap_err();
    assert!(
        e.starts_with("--advertise: required when --raft-listen is 0.0.0.0"),
        "{e}"
    );
}

#[test]
fn tls_flags_come_in_pairs() {
    let cases: &[(&[&str], &str)] = &[
        (&["--cert", "c.pem"], "--key: required with --cert"),
        (&["--key", "k.pem"], "--cert: required with --key"),
        (
            &["--ca-file", "ca.pem"],
            "--ca-file: only with --cert and --key",
        ),
    ];
    for (extra, want) in cases {
        let got = parse(extra).unwrap_err();
        assert!(got.starts_with(want), "{extra:?}: {got}");
    }
    let c = parse(&["--cert", "c.pem", "--key", "k.pem", "--ca-file", "ca.pem"]).unwrap();
    assert_eq!(c.tls.unwrap().cert, std::path::PathBuf::from("c.pem"));
}

#[test]
fn a_minimal_start_has_sane_defaults() {
    let c = parse(&["--peer", "2=127.0.0.1:7071", "--peer", "3=127.0.0.1:7072"]).unwrap();
    assert_eq!(c.id, 1);
    assert_eq!(c.advertise, "127.0.0.1:7070");
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[&3], "127.0.0.1:7072");
    assert!(!c.bootstrap);
    assert_eq!(c.tuning.snapshot_every, 1000);
    assert_eq!(c.tuning.log_keep, 0);
    assert_eq!(c.rate, (100.0, 200.0));
    assert_eq!(c.live_window, Duration::from_secs(5));
    let b = parse(&[
        "--bootstrap",
        "--snapshot-every",
        "20",
        "--heartbeat",
        "50ms",
        "--election-timeout",
        "0.3",
    ])
    .unwrap();
    assert!(b.bootstrap);
    assert_eq!(b.tuning.snapshot_every, 20);
    assert_eq!(
        (b.tuning.heartbeat_ms, b.tuning.election_timeout_ms),
        (50, 300)
    );
}

#[test]
fn own_id_among_peers_is_dropped_when_consistent() {
    let c = parse(&["--peer", "1=127.0.0.1:7070", "--peer", "2=127.0.0.1:7071"]).unwrap();
    assert_eq!(c.peers.keys().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn invalid_values_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--peer", "2"], "invalid value"),
        (&["--peer", "x=127.0.0.1:1"], "invalid value"),
        (&["--peer", "2=nohost"], "invalid value"),
        (
            &["--peer", "1=127.0.0.1:9"],
            "--peer 1=127.0.0.1:9: that is this node's id with another address",
        ),
        (
            &["--peer", "2=a:1", "--peer", "2=b:1"],
            "--peer: id 2 given twice",
        ),
        (
            &["--snapshot-every", "0"],
            "--snapshot-every: must be at least 1",
        ),
        (
            &["--rate-limit", "0"],
            "--rate-limit: must be a number above 0",
        ),
        (&["--rate-burst", "0.5"], "--rate-burst: must be at least 1"),
        (
            &["--heartbeat", "1s", "--election-timeout", "500ms"],
            "--election-timeout: must be longer than --heartbeat (and --heartbeat above 0)",
        ),
        (&["--live-window", "0s"], "--live-window: must be above 0"),
        (&["--body-timeout", "0s"], "--body-timeout: must be above 0"),
        (&["--live-window", "5 parsecs"], "invalid value"),
        (&["--nope"], "unexpected argument"),
        (
            &["--token-file", "/nonexistent/tokens"],
            "--token-file /nonexistent/tokens: No such file or directory (os error 2)",
        ),
    ];
    for (extra, want) in cases {
        let got = parse(extra).unwrap_err();
        assert!(
            got.starts_with(want),
            "{extra:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn durations_parse() {
    let table: &[(&str, Option<Duration>)] = &[
        ("250ms", Some(Duration::from_millis(250))),
        ("5s", Some(Duration::from_secs(5))),
        ("2m", Some(Duration::from_secs(120))),
        ("1.5", Some(Duration::from_millis(1500))),
        ("", None),
        ("5h", None),
        ("-1s", None),
        ("ms", None),
    ];
    for &(s, want) in table {
        assert_eq!(parse_duration(s).ok(), want, "{s:?}");
    }
}

#[test]
fn token_files_are_loaded_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(&path, "purge ci 0123456789abcdef0123\n").unwrap();
    let c = parse(&["--token-file", path.to_str().unwrap()]).unwrap();
    assert_eq!(c.file_tokens.len(), 1);
    std::fs::write(&path, "purge ci\n").unwrap();
    let e = parse(&["--token-file", path.to_str().unwrap()]).unwrap_err();
    assert!(e.ends_with("line 1: expected `scope name secret`"), "{e}");
}

#[test]
fn an_unspecified_listen_address_needs_advertise() {
    let base = [
        "tiercel-purge",
        "--id",
        "1",
        "--listen",
        "0.0.0.0:7070",
        "--data-dir",
        "/tmp/x",
    ];
    let args = Args::try_parse_from(base).unwrap();
    assert_eq!(
        NodeConfig::from_args(args).unwrap_err().0,
        "--advertise: required when --listen is 0.0.0.0 (peers cannot reach it)"
    );
    let mut with = base.to_vec();
    with.extend(["--advertise", "purge-1.internal:7070"]);
    let c = NodeConfig::from_args(Args::try_parse_from(with).unwrap()).unwrap();
    assert_eq!(c.advertise, "purge-1.internal:7070");
}
