//! The real `tiercel-edge` binary: configuration errors, --check-config, and serving.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

fn edge() -> Command {
    support::edge_binary()
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn invalid_config_file_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"disk_cache_size = \"lots\"\n")
        .unwrap();
    let (code, _, err) = run(edge()
        .arg("--config")
        .arg(&path)
        .args(["--origin", "http://127.0.0.1:9"]));
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("disk_cache_size"), "{err}");

    std::fs::write(&path, "listne = \"127.0.0.1:1\"\n").unwrap();
    let (code, _, err) = run(edge().arg("--config").arg(&path));
    assert_eq!(code, 2);
    assert!(err.contains("listne"), "{err}");

    let (code, _, err) = run(edge().args(["--memory-cache", "12 parsecs"]));
    assert_eq!(code, 2);
    assert!(err.contains("memory"), "{err}");

    let (code, _, err) = run(edge()
        .env("TIERCEL_TIMEOUTS__CONNECT", "soon")
        .args(["--origin", "http://127.0.0.1:9"]));
    assert_eq!(code, 2);
    assert!(err.contains("timeouts.connect"), "{err}");
}

#[test]
fn check_config_prints_the_effective_config() {
    let (code, out, err) = run(edge().args([
        "--check-config",
        "--origin",
        "http://127.0.0.1:9000",
        "--memory-cache",
        "64MiB",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("origin = \"http://127.0.0.1:9000\""), "{out}");
}

#[test]
fn serves_and_stops_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = edge()
        .args(["--listen", &listen, "--origin", "http://127.0.0.1:9"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = None;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(&listen) {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            answered = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = answered.expect("the edge listens");
    assert!(out.starts_with("HTTP/1.1 502"), "origin down → 502: {out}");
    tiercel_cluster::signal::terminate(child.id()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "exits within the grace period");
        std::thread::sleep(Duration::from_millis(50));
    }
}
