//! Runtime tests against a FAKE purge-service: a small hyper server in this file that speaks
//! the `/v1/log` NDJSON protocol and records reports. They check the runtime's plumbing
//! (timeouts, failover, persistence, reports) fast and deterministically; the tests against the
//! real `tiercel-purge` cluster are in `purge-service/tests/follow_*.rs`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::follower::{MAX_PLAUSIBLE_INDEX, NoopListener, STATE_FILE};
use crate::purge::wire::{LogEvent, LogPayload, PurgeRequest, ServiceRecord};
use crate::purge::{ObjectRef, PurgeVerdict};

const WAIT: Duration = Duration::from_secs(5);

/// A response body fed from a channel: the NDJSON stream.
struct ChanBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

#[derive(Default)]
struct Script {
    /// Committed follower entries, in index order.
    entries: Vec<(u64, LogPayload)>,
    /// Highest committed index (heartbeats).
    commit: u64,
    /// Log compacted up to here: `from <= snapshot` gets a Reset first.
    snapshot: Option<(u64, Vec<ServiceRecord>)>,
    /// Accept the stream but never write a byte.
    silent: bool,
    /// The server is gone: open streams end.
    dead: bool,
    /// `from` of every log request, in order.
    froms: Vec<u64>,
    /// Authorization header of every log request.
    auth: Vec<Option<String>>,
    /// Every report body.
    reports: Vec<crate::purge::wire::FollowerReport>,
}

struct Fake {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start(script: Script) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(script));
        let s2 = script.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let s3 = s2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| serve(s3.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Fake { addr, script, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn push(&self, index: u64, payload: LogPayload) {
        let mut s = self.script.lock();
        s.entries.push((index, payload));
        s.commit = s.commit.max(index);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.script.lock().dead = true;
        self.task.abort();
    }
}

async fn serve(
    script: Arc<Mutex<Script>>,
    req: Request<Incoming>,
) -> Result<Response<http_body_util::Either<ChanBody, http_body_util::Full<Bytes>>>, Infallible> {
    use http_body_util::Either;
    let path = req.uri().path().to_string();
    if path == "/v1/followers/report" {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let report: crate::purge::wire::FollowerReport = serde_json::from_slice(&body).unwrap();
        script.lock().reports.push(report);
        return Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Either::Right(Default::default()))
            .unwrap());
    }
    let q: HashMap<_, _> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let from: u64 = q.get("from").and_then(|f| f.parse().ok()).unwrap_or(0);
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    {
        let mut s = script.lock();
        s.froms.push(from);
        s.auth.push(auth);
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let line = |e: &LogEvent| Bytes::from(format!("{}\n", serde_json::to_string(e).unwrap()));
        if script.lock().silent {
            // Hold the stream open, saying nothing.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(tx);
            return;
        }
        let mut next = from.max(1);
        let reset = script.lock().snapshot.clone();
        if let Some((snap, services)) = reset
            && next <= snap
        {
            let e = LogEvent::Reset {
                snapshot_index: snap,
                services,
            };
            if tx.send(line(&e)).await.is_err() {
                return;
            }
            next = snap + 1;
        }
        loop {
            let (batch, commit) = {
                let s = script.lock();
                if s.dead {
                    return;
                }
                let b: Vec<_> = s
                    .entries
                    .iter()
                    .filter(|(i, _)| *i >= next)
                    .cloned()
                    .collect();
                (b, s.commit)
            };
            for (index, payload) in batch {
                next = index + 1;
                if tx
                    .send(line(&LogEvent::Entry { index, payload }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            next = next.max(commit + 1);
            let hb = LogEvent::Heartbeat {
                commit_index: commit,
            };
            if tx.send(line(&hb)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Ok(Response::new(Either::Left(ChanBody(rx))))
}

#[derive(Default)]
struct Recorder {
    urls: Mutex<Vec<(String, bool)>>,
    services: Mutex<Vec<Vec<String>>>,
}

impl PurgeListener for Recorder {
    fn url_purged(&self, key: &str, soft: bool) {
        self.urls.lock().push((key.to_string(), soft));
    }
    fn services_changed(&self, services: &[ServiceRecord]) {
        let names = services.iter().map(|s| s.name.clone()).collect();
        self.services.lock().push(names);
    }
}

fn purge(urls: &[&str], soft: bool) -> LogPayload {
    LogPayload::Purge {
        id: "x".into(),
        purge: PurgeRequest {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            soft,
            ..Default::default()
        },
    }
}

fn service(name: &str) -> ServiceRecord {
    ServiceRecord {
        name: name.into(),
        version: 1,
        changed: None,
        doc: serde_json::json!({"hosts": []}),
    }
}

fn config(servers: Vec<String>) -> FollowerConfig {
    FollowerConfig {
        token: Some("follow-secret".into()),
        connect_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        persist_interval: Duration::from_millis(20),
        report_interval: Duration::from_millis(200),
        ..FollowerConfig::new(servers, "edge-1", "edge")
    }
}

fn obj(url: &str, stored_index: u64) -> ObjectRef<'_> {
    ObjectRef {
        service: "",
        url,
        host: "h",
        tags: &[],
        stored_index,
    }
}

/// Polls `cond` every 10 ms for up to 5 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn fake_server_entries_apply_once_and_are_reported_with_the_token() {
    let fake = Fake::start(Script::default()).await;
    fake.push(2, purge(&["http://h/a"], false));
    fake.push(
        4,
        LogPayload::Batch {
            items: vec![
                purge(&["http://h/b"], true),
                LogPayload::ServicePut {
                    service: service("shop"),
                },
            ],
        },
    );
    fake.script.lock().commit = 6;
    let rec = Arc::new(Recorder::default());
    let (state, handle) = start_follower(config(vec![fake.url()]), rec.clone())
        .await
        .unwrap();
    assert_eq!(handle.wait_applied(6, WAIT).await.unwrap(), 6);
    assert_eq!(state.applied_index(), 6);
    assert!(!state.lagging());
    assert_eq!(state.check(&obj("h/a", 1)), PurgeVerdict::HardPurged);
    assert_eq!(state.check(&obj("h/b", 3)), PurgeVerdict::SoftPurged);
    assert_eq!(state.check(&obj("h/b", 4)), PurgeVerdict::Valid);
    fake.push(7, purge(&["http://h/c"], false));
    handle.wait_applied(7, WAIT).await.unwrap();
    eventually("report of 7", || {
        fake.script
            .lock()
            .reports
            .iter()
            .any(|r| r.applied_index == 7 && r.node == "edge-1" && r.role == "edge")
    })
    .await;
    assert_eq!(
        *rec.urls.lock(),
        vec![
            ("h/a".to_string(), false),
            ("h/b".to_string(), true),
            ("h/c".to_string(), false)
        ]
    );
    assert_eq!(*rec.services.lock(), vec![vec!["shop".to_string()]]);
    assert_eq!(state.services().len(), 1);
    let (froms, auth) = {
        let s = fake.script.lock();
        (s.froms.clone(), s.auth.clone())
    };
    assert_eq!(froms, vec![1]);
    assert_eq!(auth[0].as_deref(), Some("Bearer follow-secret"));
    handle.shutdown().await;
}

#[tokio::test]
async fn fake_server_fails_over_from_a_dead_server() {
    // A port that refuses connections: bind, note it, close it.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let fake = Fake::start(Script::default()).await;
    fake.push(3, purge(&["http://h/a"], false));
    let (state, handle) = start_follower(config(vec![dead, fake.url()]), Arc::new(NoopListener))
        .await
        .unwrap();
    handle.wait_applied(3, WAIT).await.unwrap();
    assert_eq!(state.check(&obj("h/a", 0)), PurgeVerdict::HardPurged);
    // Reports also fail over to the live server.
    eventually("a report", || !fake.script.lock().reports.is_empty()).await;
    handle.shutdown().await;
}

#[tokio::test]
async fn a_server_claiming_an_implausible_index_is_dropped_and_the_next_one_followed() {
    // A faulty (or hostile) server: its heartbeat claims commit index u64::MAX. Believing it
    // would make `applied + 1` wrap and the node skip every real purge from then on.
    let liar = Fake::start(Script {
        commit: u64::MAX,
        ..Default::default()
    })
    .await;
    let good = Fake::start(Script::default()).await;
    good.push(3, purge(&["http://h/a"], false));
    let (state, handle) =
        start_follower(config(vec![liar.url(), good.url()]), Arc::new(NoopListener))
            .await
            .unwrap();
    handle.wait_applied(3, WAIT).await.unwrap();
    assert_eq!(state.applied_index(), 3);
    assert_eq!(state.check(&obj("h/a", 0)), PurgeVerdict::HardPurged);
    // The liar was asked, then left for the next server; nothing it claimed was believed, so
    // no report anywhere carries more than what was really applied.
    assert!(!liar.script.lock().froms.is_empty());
    eventually("a report to the good server", || {
        good.script
            .lock()
            .reports
            .iter()
            .any(|r| r.applied_index == 3)
    })
    .await;
    for fake in [&liar, &good] {
        let reports = fake.script.lock().reports.clone();
        assert!(reports.iter().all(|r| r.applied_index <= 3), "{reports:?}");
    }
    assert!(state.applied_index() < MAX_PLAUSIBLE_INDEX);
    handle.shutdown().await;
}

#[tokio::test]
async fn fake_server_silent_stream_times_out_and_reconnects() {
    let fake = Fake::start(Script {
        silent: true,
        ..Default::default()
    })
    .await;
    let (state, handle) = start_follower(config(vec![fake.url()]), Arc::new(NoopListener))
        .await
        .unwrap();
    // idle_timeout is 500 ms: within 5 s the follower must have reconnected at least twice.
    eventually("reconnects", || fake.script.lock().froms.len() >= 3).await;
    assert!(state.lagging(), "never heard anything");
    handle.shutdown().await;
}

#[tokio::test]
async fn fake_server_lag_is_detected_when_the_service_goes_away() {
    let fake = Fake::start(Script::default()).await;
    fake.push(1, purge(&["http://h/a"], false));
    let cfg = FollowerConfig {
        max_purge_lag: Duration::from_millis(300),
        ..config(vec![fake.url()])
    };
    let (state, handle) = start_follower(cfg, Arc::new(NoopListener)).await.unwrap();
    handle.wait_applied(1, WAIT).await.unwrap();
    assert!(!state.lagging());
    drop(fake);
    eventually("lagging", || state.lagging()).await;
    assert!(state.since_heard().unwrap() > Duration::from_millis(300));
    handle.shutdown().await;
}

#[tokio::test]
async fn fake_server_reset_soft_purges_and_replaces_services() {
    let fake = Fake::start(Script {
        snapshot: Some((50, vec![service("new")])),
        commit: 50,
        ..Default::default()
    })
    .await;
    fake.push(51, purge(&["http://h/x"], false));
    let rec = Arc::new(Recorder::default());
    let (state, handle) = start_follower(config(vec![fake.url()]), rec.clone())
        .await
        .unwrap();
    handle.wait_applied(51, WAIT).await.unwrap();
    assert_eq!(state.check(&obj("h/a", 49)), PurgeVerdict::SoftPurged);
    assert_eq!(state.check(&obj("h/a", 50)), PurgeVerdict::Valid);
    assert_eq!(state.check(&obj("h/x", 50)), PurgeVerdict::HardPurged);
    assert_eq!(*rec.services.lock(), vec![vec!["new".to_string()]]);
    handle.shutdown().await;
}

#[tokio::test]
async fn fake_server_state_survives_a_restart_and_resumes_from_the_next_index() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(Script::default()).await;
    fake.push(5, purge(&["http://h/a"], false));
    fake.push(
        6,
        LogPayload::ServicePut {
            service: service("shop"),
        },
    );
    let cfg = FollowerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..config(vec![fake.url()])
    };
    let (_, handle) = start_follower(cfg.clone(), Arc::new(NoopListener))
        .await
        .unwrap();
    handle.wait_applied(6, WAIT).await.unwrap();
    // Reports claim only what is on disk; wait for 6 to be reported, i.e. durable.
    eventually("durable report", || {
        fake.script
            .lock()
            .reports
            .iter()
            .any(|r| r.applied_index == 6)
    })
    .await;
    handle.shutdown().await;
    assert!(dir.path().join(STATE_FILE).exists());

    // While the node is down, the service moves on.
    fake.push(9, purge(&["http://h/b"], false));
    let rec = Arc::new(Recorder::default());
    let (state, handle) = start_follower(cfg, rec.clone()).await.unwrap();
    // Known at once, before anything is heard: the purge of 5 and the service.
    assert!(state.applied_index() >= 6);
    assert_eq!(state.check(&obj("h/a", 4)), PurgeVerdict::HardPurged);
    assert!(state.lagging(), "nothing heard yet after a restart");
    handle.wait_applied(9, WAIT).await.unwrap();
    assert_eq!(state.check(&obj("h/b", 8)), PurgeVerdict::HardPurged);
    // The restart resumed after what it had applied and applied only the new purge.
    let froms = fake.script.lock().froms.clone();
    assert_eq!(froms[0], 1);
    assert_eq!(*froms.last().unwrap(), 7);
    assert_eq!(*rec.urls.lock(), vec![("h/b".to_string(), false)]);
    assert_eq!(rec.services.lock()[0], vec!["shop".to_string()]);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_state_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), b"{oops").unwrap();
    let cfg = FollowerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..config(vec!["http://127.0.0.1:9".into()])
    };
    let err = start_follower(cfg, Arc::new(NoopListener))
        .await
        .unwrap_err();
    assert!(matches!(err, FollowerError::StateCorrupt { .. }), "{err}");
}

#[tokio::test]
async fn wait_applied_times_out_with_the_current_index() {
    let fake = Fake::start(Script::default()).await;
    fake.push(2, purge(&["http://h/a"], false));
    let (_, handle) = start_follower(config(vec![fake.url()]), Arc::new(NoopListener))
        .await
        .unwrap();
    handle.wait_applied(2, WAIT).await.unwrap();
    let err = handle
        .wait_applied(99, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FollowerError::WaitTimeout {
                want: 99,
                applied: 2
            }
        ),
        "{err}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn fake_server_prune_below_forgets_rules_older_than_the_cache() {
    let fake = Fake::start(Script::default()).await;
    fake.push(2, purge(&["http://h/a"], false));
    fake.push(5, purge(&["http://h/b"], false));
    let (state, handle) = start_follower(config(vec![fake.url()]), Arc::new(NoopListener))
        .await
        .unwrap();
    handle.wait_applied(5, WAIT).await.unwrap();
    assert_eq!(state.rule_count(), 2);
    handle.prune_below(2);
    eventually("pruned", || state.rule_count() == 1).await;
    assert_eq!(state.check(&obj("h/a", 1)), PurgeVerdict::Valid);
    assert_eq!(state.check(&obj("h/b", 4)), PurgeVerdict::HardPurged);
    handle.shutdown().await;
}
