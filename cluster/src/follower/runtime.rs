//! The thin tokio runtime around [`FollowerMachine`]: it carries out the machine's actions
//! (connect, notify the engine, persist, report) and feeds back what happened.
//!
//! ```text
//!  stream task ──Input::Log / StreamFailed──▶ driver ──Connect──▶ stream task
//!                                             │  ▲
//!        listener ◀── UrlPurged/Services ─────┤  └── Persisted / Reported ── blocking write,
//!                                             └── Persist / Report ───────▶  report task
//! ```
//!
//! The driver is the only writer of the machine, so what it persists right after an action is
//! exactly the state that action describes.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::client::Client;
use super::config::{FollowerConfig, FollowerError};
use super::machine::{Action, FollowerMachine, Input};
use super::persist;
use super::state::{PurgeListener, PurgeState};
use crate::purge::wire::FollowerReport;

/// Control over a running follower.
///
/// Dropping the handle leaves the follower running for the life of the runtime; call
/// [`FollowerHandle::shutdown`] to stop it and write its state one last time.
#[derive(Debug)]
pub struct FollowerHandle {
    applied: watch::Receiver<u64>,
    inputs: mpsc::UnboundedSender<Input>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FollowerHandle {
    /// The applied index now.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the applied index is at least `index` and the listener has been told about
    /// every entry up to it; returns the applied index.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<u64, FollowerError> {
        let mut rx = self.applied.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|&a| a >= index)).await {
            Ok(Ok(a)) => Ok(*a),
            Ok(Err(_)) => Err(FollowerError::Stopped),
            Err(_) => Err(FollowerError::WaitTimeout {
                want: index,
                applied: *self.applied.borrow(),
            }),
        }
    }

    /// Tells the follower that the cache holds no object stored before `index` (the engine's
    /// oldest stamp), so rules at or below it can be forgotten: keeps the rule index, and the
    /// state file written on every change, from growing with every purge ever applied.
    pub fn prune_below(&self, index: u64) {
        let _ = self.inputs.send(Input::Prune { below: index });
    }

    /// Stops the follower: closes the stream, waits for a write in flight and writes the state
    /// one last time when it changed since.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Starts following the purge log.
///
/// Loads the state from `cfg.state_dir` (an unreadable or corrupt state file is an error: the
/// node cannot know which purges it applied), then streams from the first server. Returns at
/// once; [`PurgeState::lagging`] stays true until the service is heard.
pub async fn start_follower(
    cfg: FollowerConfig,
    listener: Arc<dyn PurgeListener>,
) -> Result<(Arc<PurgeState>, FollowerHandle), FollowerError> {
    cfg.validate()?;
    for s in cfg
        .servers
        .iter()
        .filter(|s| crate::tls::plain_http_off_loopback(s))
    {
        tracing::warn!(
            server = %s,
            "following a purge-service over plain HTTP beyond this machine: the token crosses \
             the network in clear text and the log can be forged on the way; use https://"
        );
    }
    let loaded = match cfg.state_dir.clone() {
        Some(dir) => tokio::task::spawn_blocking(move || {
            persist::prepare(&dir)?;
            persist::load(&dir)
        })
        .await
        .map_err(|_| FollowerError::Stopped)??,
        None => None,
    };
    let machine = FollowerMachine::new(
        loaded.unwrap_or_default(),
        cfg.servers.len(),
        cfg.state_dir.is_some(),
        cfg.timing(),
    );
    let state = Arc::new(PurgeState::new(machine, true, cfg.max_purge_lag));
    let (applied_tx, applied_rx) = watch::channel(state.applied_index());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (events_tx, events_rx) = mpsc::channel(256);
    let (connect_tx, connect_rx) = mpsc::unbounded_channel();
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let handle_jobs = jobs_tx.clone();
    let cfg = Arc::new(cfg);
    let client = Client::new(&cfg)?;
    let stream = tokio::spawn(stream_task(
        client.clone(),
        cfg.servers.clone(),
        connect_rx,
        events_tx,
    ));
    let driver = Driver {
        cfg,
        state: state.clone(),
        listener,
        client,
        applied_tx,
        connect_tx,
        jobs_tx,
        report_server: 0,
        persist_task: None,
    };
    let task = tokio::spawn(driver.run(events_rx, jobs_rx, shutdown_rx, stream));
    Ok((
        state,
        FollowerHandle {
            applied: applied_rx,
            inputs: handle_jobs,
            shutdown: shutdown_tx,
            task,
        },
    ))
}

struct Driver {
    cfg: Arc<FollowerConfig>,
    state: Arc<PurgeState>,
    listener: Arc<dyn PurgeListener>,
    client: Client,
    applied_tx: watch::Sender<u64>,
    connect_tx: mpsc::UnboundedSender<(usize, u64, Duration)>,
    jobs_tx: mpsc::UnboundedSender<Input>,
    report_server: usize,
    persist_task: Option<JoinHandle<()>>,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Input>,
        mut jobs: mpsc::UnboundedReceiver<Input>,
        mut shutdown: watch::Receiver<bool>,
        stream: JoinHandle<()>,
    ) {
        let now = Instant::now();
        let (actions, _) = self.state.update(|m| m.start(now));
        self.execute(actions);
        let mut watching_shutdown = true;
        loop {
            let wake = self.state.read(|m| m.next_wakeup());
            let sleep = async move {
                match wake {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = shutdown.changed(), if watching_shutdown => match r {
                    Ok(()) if *shutdown.borrow() => break,
                    Ok(()) => {}
                    // The handle was dropped: keep following.
                    Err(_) => watching_shutdown = false,
                },
                Some(input) = jobs.recv() => self.feed(input),
                Some(input) = events.recv() => self.feed(input),
                _ = sleep => self.feed(Input::Tick),
            }
        }
        stream.abort();
        self.final_persist(&mut jobs).await;
    }

    fn feed(&mut self, input: Input) {
        if let Input::Reported { ok: false, .. } = input {
            self.report_server = (self.report_server + 1) % self.cfg.servers.len();
        }
        let now = Instant::now();
        let (actions, applied) = self.state.update(|m| m.handle(now, input));
        // Hooks first: whoever waits for `applied` may rely on the engine having been told.
        self.execute(actions);
        self.applied_tx.send_if_modified(|a| {
            let changed = *a != applied;
            *a = applied;
            changed
        });
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect {
                    server,
                    from,
                    delay,
                } => {
                    self.report_server = server;
                    let _ = self.connect_tx.send((server, from, delay));
                }
                Action::UrlPurged { key, soft } => self.listener.url_purged(&key, soft),
                Action::ServicesChanged(services) => self.listener.services_changed(&services),
                Action::SoftPurgedAll { snapshot_index } => tracing::warn!(
                    snapshot_index,
                    "purge log compacted past this node's index: everything stored before it \
                     is soft-purged"
                ),
                Action::RulesFolded { at_or_below, kept } => tracing::warn!(
                    at_or_below,
                    kept,
                    max = self.cfg.max_purge_rules,
                    "purge rule index full: rules at or below this index were folded into one; \
                     everything stored before it is purged (raise cache.max_purge_rules to \
                     avoid the extra origin fetches)"
                ),
                Action::Persist { applied } => self.persist(applied),
                Action::Report { applied_index } => self.report(applied_index),
            }
        }
    }

    fn persist(&mut self, applied: u64) {
        let Some(dir) = self.cfg.state_dir.clone() else {
            return;
        };
        let jobs = self.jobs_tx.clone();
        // Encoded now, while the state is exactly the one the action describes.
        let bytes = self.state.read(|m| persist::encode(m.state()));
        self.persist_task = Some(tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let ok = match bytes.map_err(std::io::Error::other) {
                Ok(b) => persist::write_atomic(&dir, &b),
                Err(e) => Err(e),
            };
            if let Err(e) = &ok {
                tracing::error!(dir = %dir.display(), error = %e, "cannot persist follower state");
            }
            let _ = jobs.send(Input::Persisted {
                applied,
                ok: ok.is_ok(),
                took: started.elapsed(),
            });
        }));
    }

    fn report(&self, applied_index: u64) {
        let base = self.cfg.servers[self.report_server % self.cfg.servers.len()].clone();
        let client = self.client.clone();
        let jobs = self.jobs_tx.clone();
        let report = FollowerReport {
            node: self.cfg.node.clone(),
            role: self.cfg.role.clone(),
            applied_index,
        };
        tokio::spawn(async move {
            let r = client.report(&base, &report).await;
            if let Err(e) = &r {
                tracing::debug!(server = %base, error = %e, "follower report failed");
            }
            let _ = jobs.send(Input::Reported {
                applied: applied_index,
                ok: r.is_ok(),
            });
        });
    }

    /// Waits for a write in flight, then writes once more if the state changed since.
    async fn final_persist(&mut self, jobs: &mut mpsc::UnboundedReceiver<Input>) {
        if self.cfg.state_dir.is_none() {
            return;
        }
        if let Some(t) = self.persist_task.take() {
            let _ = t.await;
        }
        // Feed the finished write back so the durable index is current.
        while let Ok(input) = jobs.try_recv() {
            if matches!(input, Input::Persisted { .. }) {
                let _ = self.state.update(|m| m.handle(Instant::now(), input));
            }
        }
        // Every change to the state moves the applied index, so this covers them all.
        let (applied, durable) = self.state.read(|m| (m.state().applied, m.durable_index()));
        if applied > durable {
            self.persist(applied);
            if let Some(t) = self.persist_task.take() {
                let _ = t.await;
            }
        }
    }
}

/// Opens the stream whenever the driver says so and forwards what it reads; reports every end
/// of a stream as `StreamFailed` so the driver picks the next server.
async fn stream_task(
    client: Client,
    servers: Vec<String>,
    mut connect: mpsc::UnboundedReceiver<(usize, u64, Duration)>,
    events: mpsc::Sender<Input>,
) {
    let random = RandomState::new();
    let mut draws: u64 = 0;
    while let Some((server, from, delay)) = connect.recv().await {
        tokio::time::sleep(delay).await;
        let base = &servers[server % servers.len()];
        match client.open_log(base, from).await {
            Ok(mut stream) => loop {
                match stream.next_event().await {
                    Ok(Some(event)) => {
                        if events.send(Input::Log(event)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        tracing::info!(server = %base, "purge log stream ended");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(server = %base, error = %e, "purge log stream failed");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(server = %base, from, error = %e, "cannot open purge log"),
        }
        draws += 1;
        let jitter = (random.hash_one(draws) >> 11) as f64 / (1u64 << 53) as f64;
        if events.send(Input::StreamFailed { jitter }).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
