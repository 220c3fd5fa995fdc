//! The closed-loop load generator behind `tiercel-load`.
//!
//! ```text
//!   one thread (current-thread runtime + LocalSet, pinned by the caller with taskset)
//!   ┌──────────────────────────────────────────────────────────────────────────────┐
//!   │ h1: conn 1 ── GET ▶ wait body ▶ GET ▶ ...     h2: conn 1 ─┬─ stream slot 1 ... │
//!   │     conn 2 ── GET ▶ ...                                   └─ stream slot M ... │
//!   │     ...  N connections                             ...  N connections         │
//!   │                   │ latency, bytes, errors                                   │
//!   │                   ▼                                                          │
//!   │      Recorder (HDR histogram, counts only what ends inside the window)       │
//!   └──────────────────────────────────────────────────────────────────────────────┘
//!   time ──▶ |── warm-up ──|────────── measurement window ──────────|
//! ```
//!
//! Each worker sends a request, reads the whole body, records, and sends the next one: the
//! offered load adapts to the server (closed loop), so the figure is the throughput at a fixed
//! concurrency, with the latency that concurrency costs. Hyper's connection-level clients are
//! used directly (no pool), every exchange has a timeout, and a non-2xx status, a broken body or
//! a body of the wrong length counts as an error.
//!
//! Deliberately not here: open-loop (fixed-rate) load and coordinated-omission correction, TLS,
//! HTTP/3, and several URLs per run.

mod cpu;
mod exchange;
mod h1;
mod h2;
mod recorder;
mod target;
pub mod zipf;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use cpu::{
    MachineTicks, Proc, cpu_delta, cpu_time, cpu_times, machine_percent, machine_ticks, percent,
};
pub use recorder::{ErrorKind, Recorder, RecorderError, Window};
pub use target::{Target, TargetError};

use crate::report::LoadReport;

/// Pause after a failed connect, so a dead server costs a few hundred attempts a second, not a
/// busy loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// The protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive, one request at a time per connection.
    H1,
    /// HTTP/2 over cleartext TCP with prior knowledge (h2c), several streams per connection.
    H2,
}

impl Protocol {
    /// `h1` or `h2`, as in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::H1 => "h1",
            Protocol::H2 => "h2",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run could not start (failures during the run are counted, not returned).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration does not describe a run (zero connections, zero duration...).
    #[error("invalid load configuration: {0}")]
    Config(&'static str),
    /// The latency histogram could not be created.
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    /// The runtime could not be built.
    #[error("cannot build the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Everything a run needs besides the target.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// h1 keep-alive or h2c.
    pub protocol: Protocol,
    /// Concurrent TCP connections.
    pub connections: usize,
    /// Concurrent streams per connection (h2 only; h1 always has one).
    pub streams: usize,
    /// Time spent loading before anything is counted (caches, TCP windows, allocators settle).
    pub warmup: Duration,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Limit for one whole exchange (and for connecting).
    pub timeout: Duration,
    /// When set, every body must be exactly this long.
    pub expected_len: Option<u64>,
    /// h2 initial stream window, bytes (the same for every server compared).
    pub h2_stream_window: u32,
    /// h2 initial connection window, bytes.
    pub h2_connection_window: u32,
    /// h2 largest frame the client accepts, bytes.
    pub h2_max_frame: u32,
    /// Processes whose CPU use is sampled over the window (the server under test).
    pub watch_pids: Vec<u32>,
    /// Free-form labels copied into the report (`server=nginx`, `size=1KiB`).
    pub tags: BTreeMap<String, String>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            protocol: Protocol::H1,
            connections: 32,
            streams: 1,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            expected_len: None,
            h2_stream_window: 4 * 1024 * 1024,
            h2_connection_window: 32 * 1024 * 1024,
            h2_max_frame: 16_384,
            watch_pids: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}

impl LoadConfig {
    /// Refuses configurations that cannot produce a measurement.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.connections == 0 {
            return Err(LoadError::Config("connections must be at least 1"));
        }
        if self.streams == 0 {
            return Err(LoadError::Config("streams must be at least 1"));
        }
        if self.protocol == Protocol::H1 && self.streams != 1 {
            return Err(LoadError::Config(
                "HTTP/1.1 has one request in flight per connection: use --streams 1",
            ));
        }
        if self.duration.is_zero() {
            return Err(LoadError::Config("duration must be positive"));
        }
        if self.timeout.is_zero() {
            return Err(LoadError::Config("timeout must be positive"));
        }
        //= https://www.rfc-editor.org/rfc/rfc9113#section-6.5.2
        //# The initial value is 2^14 (16,384) octets. The value advertised by an endpoint MUST
        //# be between this initial value and the maximum allowed frame size (2^24-1 or
        //# 16,777,215 octets), inclusive.
        if !(16_384..=16_777_215).contains(&self.h2_max_frame) {
            return Err(LoadError::Config(
                "h2 max frame size must be within 16384..=16777215",
            ));
        }
        //= https://www.rfc-editor.org/rfc/rfc9113#section-6.5.2
        //# Values above the maximum flow-control window size of 2^31-1 MUST be treated as a
        //# connection error (Section 5.4.1) of type FLOW_CONTROL_ERROR.
        if self.h2_stream_window > 0x7fff_ffff || self.h2_connection_window > 0x7fff_ffff {
            return Err(LoadError::Config("h2 windows must be at most 2^31-1"));
        }
        Ok(())
    }
}

/// The per-exchange settings every worker shares.
#[derive(Debug)]
pub(crate) struct Settings {
    timeout: Duration,
    expected_len: Option<u64>,
    streams: usize,
    h2_stream_window: u32,
    h2_connection_window: u32,
    h2_max_frame: u32,
}

/// Runs the load on a fresh current-thread runtime in the calling thread (pin the process with
/// `taskset` to keep it on one core) and returns the report.
pub fn run_blocking(target: Target, config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run_local(target, config))
}

/// Runs the load on the current thread; must be called inside a [`tokio::task::LocalSet`].
pub async fn run_local(target: Target, config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.validate()?;
    let window = Window::after(Instant::now(), config.warmup, config.duration);
    let rec = Rc::new(RefCell::new(Recorder::new(window)?));
    let settings = Rc::new(Settings {
        timeout: config.timeout,
        expected_len: config.expected_len,
        streams: config.streams,
        h2_stream_window: config.h2_stream_window,
        h2_connection_window: config.h2_connection_window,
        h2_max_frame: config.h2_max_frame,
    });
    let target = Rc::new(target);

    let sampler = tokio::task::spawn_local(sample_cpu(window, config.watch_pids.clone()));
    let workers: Vec<_> = (0..config.connections)
        .map(|_| {
            let (t, s, r) = (Rc::clone(&target), Rc::clone(&settings), Rc::clone(&rec));
            match config.protocol {
                Protocol::H1 => tokio::task::spawn_local(h1::worker(t, s, r)),
                Protocol::H2 => tokio::task::spawn_local(h2::connection(t, s, r)),
            }
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let cpu = sampler.await.unwrap_or_default();
    let rec = rec.borrow();
    Ok(LoadReport::new(&target.url(), &config, &rec, cpu))
}

/// CPU use over the window, in percent of one core.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    /// The load generator.
    pub client: Option<f64>,
    /// The watched processes together (`None` when none were given or one vanished).
    pub server: Option<f64>,
    /// The whole machine (up to 100 × CPUs): what is left after client and server is
    /// interference from other work.
    pub machine: Option<f64>,
}

/// Samples CPU time at the start and the end of the window.
async fn sample_cpu(window: Window, pids: Vec<u32>) -> CpuUse {
    let procs: Vec<Proc> = pids.into_iter().map(Proc::Pid).collect();
    tokio::time::sleep_until(window.start.into()).await;
    let t0 = Instant::now();
    let (client0, server0, machine0) = (
        cpu_time(Proc::SelfProcess),
        cpu_times(&procs),
        machine_ticks(),
    );
    tokio::time::sleep_until(window.end.into()).await;
    let wall = t0.elapsed();
    let (client1, server1, machine1) = (
        cpu_time(Proc::SelfProcess),
        cpu_times(&procs),
        machine_ticks(),
    );
    CpuUse {
        client: percent(client0, client1, wall),
        server: percent(Some(Duration::ZERO), cpu_delta(&server0, &server1), wall),
        machine: machine_percent(machine0, machine1),
    }
}

#[cfg(test)]
mod tests;
