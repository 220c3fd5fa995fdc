//! The `tiercel-purge` command line: one-line errors with exit 2, env variables, --check-config,
//! a busy port (exit 1), and a clean exit on SIGTERM.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiercel-purge"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TIERCEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tiercel-purge")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn invalid_flags_print_one_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().unwrap_or_default();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--id", "1", "--data-dir", d],
            "tiercel-purge: the following required arguments were not provided: --listen <LISTEN>",
        ),
        (
            &[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7070",
                "--data-dir",
                d,
                "--bogus",
            ],
            "tiercel-purge: unexpected argument '--bogus' found",
        ),
        (
            &["--id", "x", "--listen", "127.0.0.1:7070", "--data-dir", d],
            "tiercel-purge: invalid value 'x' for '--id <ID>': invalid digit found in string",
        ),
        (
            &["--id", "0", "--listen", "127.0.0.1:7070", "--data-dir", d],
            "tiercel-purge: --id: must be above 0",
        ),
        (
            &[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7070",
                "--data-dir",
                d,
                "--peer",
                "2=nohost",
            ],
            "tiercel-purge: invalid value '2=nohost' for '--peer <PEERS>': \"2=nohost\": \"nohost\" is not host:port",
        ),
    ];
    for (args, want) in cases {
        let o = run(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(
            err.trim_end().starts_with(want),
            "{args:?}: got {err:?}, want {want:?}"
        );
    }
}

#[test]
fn members_refuse_to_start_without_a_cluster_secret_or_with_a_short_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().unwrap_or_default();
    let args = [
        "--id",
        "1",
        "--listen",
        "127.0.0.1:7070",
        "--data-dir",
        d,
        "--peer",
        "2=127.0.0.1:7071",
    ];
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[],
            "tiercel-purge: TIERCEL_CLUSTER_SECRET: required when the cluster has other members",
        ),
        (
            &[("TIERCEL_CLUSTER_SECRET", "short")],
            "tiercel-purge: TIERCEL_CLUSTER_SECRET: shorter than 16 characters",
        ),
        (
            &[
                ("TIERCEL_CLUSTER_SECRET", "cluster-secret-0123456789"),
                ("TIERCEL_ADMIN_TOKEN", "admin"),
            ],
            "tiercel-purge: TIERCEL_ADMIN_TOKEN: shorter than 16 characters",
        ),
    ];
    for (env, want) in cases {
        let o = run(&args, env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{env:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(err.starts_with(want), "got {err:?}, want {want:?}");
    }
    // The secret is never a flag: `ps` would show it.
    let mut flag = args.to_vec();
    flag.extend(["--cluster-secret", "cluster-secret-0123456789"]);
    let o = run(&flag, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unexpected argument '--cluster-secret'"));
    // A file works, and so does a lone member without one.
    let file = dir.path().join("secret");
    std::fs::write(&file, "cluster-secret-0123456789\n").expect("write");
    let mut with_file = args.to_vec();
    with_file.extend([
        "--cluster-secret-file",
        file.to_str().unwrap_or_default(),
        "--check-config",
    ]);
    let o = run(&with_file, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&[&args[..6], &["--check-config"]].concat(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn every_flag_reads_its_env_variable_and_check_config_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().unwrap_or_default();
    let env = [
        ("TIERCEL_ID", "3"),
        ("TIERCEL_LISTEN", "127.0.0.1:7072"),
        ("TIERCEL_DATA_DIR", d),
        ("TIERCEL_PEER", "1=127.0.0.1:7070,2=127.0.0.1:7071"),
        ("TIERCEL_BOOTSTRAP", "true"),
        ("TIERCEL_CLUSTER_SECRET", "cluster-secret-0123456789"),
        ("TIERCEL_SNAPSHOT_EVERY", "50"),
        ("TIERCEL_CHECK_CONFIG", "1"),
    ];
    let o = run(&[], &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "configuration ok\n");
    // An env value is validated like the flag.
    let mut bad = env.to_vec();
    bad.push(("TIERCEL_SNAPSHOT_EVERY", "0"));
    let o = run(&[], &bad);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "tiercel-purge: --snapshot-every: must be at least 1\n"
    );
    let o = run(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[env: TIERCEL_SNAPSHOT_EVERY="));
}

#[test]
fn a_busy_port_exits_1_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let d = dir.path().join("a");
    let o = run(
        &[
            "--id",
            "1",
            "--listen",
            &addr,
            "--data-dir",
            d.to_str().unwrap_or_default(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!("tiercel-purge: cannot listen on {addr}: ")),
        "{}",
        stderr(&o)
    );
    drop(busy);

    let port = support::free_ports(1)[0];
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiercel-purge"))
        .args([
            "--id",
            "1",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--bootstrap",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("b"))
        .env("TIERCEL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(support::wait_healthy(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(10),
    ))
    .expect("healthy");
    tiercel_cluster::signal::terminate(child.id()).expect("SIGTERM sent");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
