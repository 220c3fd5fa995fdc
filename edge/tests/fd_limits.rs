//! The real `tiercel-edge` binary under a low open-file limit (`prlimit`): client connections
//! cannot use up the descriptors that upstream connections and the admin listener need, and an
//! accept loop out of descriptors backs off instead of spinning.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::{EdgeProcess, WAIT, h1_client, metric, send};
use tiercel_testbed::origin::Origin;
use tokio::net::TcpStream;

/// The edge binary with at most `nofile` open files, in front of `origin`.
async fn spawn_limited(nofile: u32, origin: &str) -> EdgeProcess {
    let limit = vec!["prlimit".to_owned(), format!("--nofile={nofile}:{nofile}")];
    EdgeProcess::spawn(&limit, &["--origin", origin]).await
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// User + system CPU seconds the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Opens `n` connections to `addr` and holds them.
async fn flood(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    held
}

/// Asserts that `pid` stays nearly idle for a second (an accept loop backing off, not spinning).
async fn assert_backs_off(pid: u32) {
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.3,
        "{used:.2} s of CPU in 1 s while out of descriptors"
    );
}

/// GETs `url` until it answers 200 (descriptors free again), within [`WAIT`]; the body.
async fn get_when_back(url: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let client = h1_client();
        let req = Request::get(url).body(Full::<Bytes>::default()).unwrap();
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), send(&client, req)).await
            && r.status == 200
        {
            return String::from_utf8_lossy(&r.body).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{url} answers once descriptors free up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(url: String) -> u16 {
    let client = h1_client();
    let req = Request::get(url).body(Full::<Bytes>::default()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), send(&client, req))
        .await
        .expect("answered within 3 s")
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_posts_at_a_low_fd_limit_leave_room_for_hits_and_health() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let e = spawn_limited(256, &origin.url()).await;
    let pid = e.child.id();
    // Two connections open 256 POST streams each and never send a body (the case:
    // each used to hold an origin connection until the first-byte timeout).
    let mut held = Vec::new();
    for c in 0..2 {
        let tcp = TcpStream::connect(&e.listen).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        for i in 0..256 {
            let req = Request::post(format!("http://{}/up/{c}/{i}", e.listen))
                .body(())
                .unwrap();
            client = client.ready().await.unwrap();
            held.push(client.send_request(req, false).unwrap());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin.connections_accepted(), 0);
    let fds = open_fds(pid);
    assert!(fds < 64, "{fds} descriptors open");
    assert_eq!(
        get(format!("http://{}/hit?size=10&cc=max-age%3D60", e.listen)).await,
        200
    );
    assert_eq!(
        get(format!("http://{}/hit?size=10&cc=max-age%3D60", e.listen)).await,
        200
    );
    assert_eq!(get(format!("http://{}/healthz", e.admin)).await, 200);
    assert_eq!(origin.hits("/hit?size=10&cc=max-age%3D60"), 1);
    drop(held);
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_out_of_descriptors_backs_off_and_counts() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let e = spawn_limited(48, &origin.url()).await;
    let pid = e.child.id();
    // More admin connections than descriptors: the accept loop meets EMFILE.
    let held = flood(&e.admin, 60).await;
    assert_backs_off(pid).await;
    drop(held);
    // Once descriptors free up, the admin listener answers again and has counted the errors.
    let text = get_when_back(&format!("http://{}/metrics", e.admin)).await;
    let errors: u64 = metric(&text, "tiercel_admin_accept_errors_total")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors > 0, "accept errors counted");
    origin.shutdown().await;
}

/// The soft open-file limit of `pid`, from /proc.
fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("a Max open files line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let limit = vec!["prlimit".to_owned(), "--nofile=256:1024".to_owned()];
    let e = EdgeProcess::spawn(&limit, &["--origin", &origin.url()]).await;
    assert_eq!(soft_nofile(e.child.id()), 1024);
    assert_eq!(get(format!("http://{}/healthz", e.admin)).await, 200);
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_listener_out_of_descriptors_backs_off_and_counts() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let e = spawn_limited(48, &origin.url()).await;
    let pid = e.child.id();
    // Admin connections take the descriptors (up to the admin cap), then clients arrive:
    // the client accept loop meets EMFILE.
    let mut held = flood(&e.admin, 60).await;
    held.extend(flood(&e.listen, 20).await);
    assert_backs_off(pid).await;
    drop(held);
    // Once descriptors free up, clients are served again and the errors were counted.
    get_when_back(&format!("http://{}/back?size=10", e.listen)).await;
    let text = get_when_back(&format!("http://{}/metrics", e.admin)).await;
    let errors: u64 = metric(&text, "tiercel_accept_errors_total")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors > 0, "client accept errors counted: {text}");
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_holds_at_most_its_cap_of_connections() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let e = EdgeProcess::spawn(&[], &["--origin", &origin.url()]).await;
    // 64 idle connections fill the admin listener's cap: the next one is not served...
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(&e.admin).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = h1_client();
    let req = Request::get(format!("http://{}/healthz", e.admin))
        .body(Full::<Bytes>::default())
        .unwrap();
    let over = tokio::time::timeout(Duration::from_secs(1), send(&client, req)).await;
    assert!(over.is_err(), "a 65th admin connection was served");
    // ...until one of them goes.
    idle.pop();
    assert_eq!(get(format!("http://{}/healthz", e.admin)).await, 200);
    origin.shutdown().await;
}
