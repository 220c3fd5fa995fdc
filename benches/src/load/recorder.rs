//! Counting what happened during a run: latencies of successful exchanges in an HDR histogram,
//! failures by kind, body bytes. Only exchanges that finish inside the measurement window count;
//! the warm-up before it is tallied separately so a server that only fails while cold is seen.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency the histogram tracks exactly (longer ones are clamped to it); the per-request
/// timeout is always shorter in practice.
const MAX_TRACKED: Duration = Duration::from_secs(120);

/// Why the histogram could not be created (only with nonsensical bounds).
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// hdrhistogram refused the bounds.
    #[error("cannot create the latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
}

/// What went wrong with one exchange (or one attempt to connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// TCP connect or the HTTP handshake failed.
    Connect,
    /// The request could not be sent or the response head never parsed.
    Send,
    /// The whole exchange (head and body) took longer than the per-request timeout.
    Timeout,
    /// The status was not 2xx.
    Status,
    /// The body stream failed half-way.
    Body,
    /// The body length differed from `Content-Length` or from the expected length.
    Length,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Send,
        ErrorKind::Timeout,
        ErrorKind::Status,
        ErrorKind::Body,
        ErrorKind::Length,
    ];

    /// The label used in reports (also the JSON key).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Send => "send",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Body => "body",
            ErrorKind::Length => "length",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The measurement window: exchanges finishing in `[start, end)` are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// End of the warm-up, start of the measurement.
    pub start: Instant,
    /// End of the measurement; workers stop issuing requests from here on.
    pub end: Instant,
}

impl Window {
    /// A window that opens `warmup` after `now` and lasts `duration`.
    pub fn after(now: Instant, warmup: Duration, duration: Duration) -> Window {
        let start = now + warmup;
        Window {
            start,
            end: start + duration,
        }
    }

    /// Length of the window.
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// Tallies of one run (one process, one thread: no synchronisation needed).
#[derive(Debug)]
pub struct Recorder {
    window: Window,
    /// Latency of counted exchanges, in nanoseconds.
    histogram: Histogram<u64>,
    requests: u64,
    bytes: u64,
    errors: [u64; ErrorKind::ALL.len()],
    warmup_requests: u64,
    warmup_errors: u64,
    connects: u64,
}

impl Recorder {
    /// An empty recorder for `window`.
    pub fn new(window: Window) -> Result<Recorder, RecorderError> {
        let max = u64::try_from(MAX_TRACKED.as_nanos()).unwrap_or(u64::MAX);
        Ok(Recorder {
            window,
            histogram: Histogram::new_with_bounds(1, max, 3)?,
            requests: 0,
            bytes: 0,
            errors: [0; ErrorKind::ALL.len()],
            warmup_requests: 0,
            warmup_errors: 0,
            connects: 0,
        })
    }

    /// The window this recorder counts.
    pub fn window(&self) -> Window {
        self.window
    }

    /// A successful exchange started at `started`, finished at `finished`, with `bytes` of body.
    pub fn success(&mut self, started: Instant, finished: Instant, bytes: u64) {
        if finished < self.window.start {
            self.warmup_requests += 1;
        } else if finished < self.window.end {
            let nanos = finished.saturating_duration_since(started).as_nanos();
            self.histogram
                .saturating_record(u64::try_from(nanos).unwrap_or(u64::MAX).max(1));
            self.requests += 1;
            self.bytes += bytes;
        }
    }

    /// A failed exchange (or connect) that ended at `at`.
    pub fn failure(&mut self, kind: ErrorKind, at: Instant) {
        if at < self.window.start {
            self.warmup_errors += 1;
        } else if at < self.window.end {
            self.errors[kind.index()] += 1;
        }
    }

    /// A connection was opened at `at`; only those inside the window are counted, since they
    /// mean the server closed (or broke) keep-alive connections under load.
    pub fn connected(&mut self, at: Instant) {
        if at >= self.window.start && at < self.window.end {
            self.connects += 1;
        }
    }

    /// Connections opened inside the window.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Successful exchanges counted in the window.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Body bytes of the counted exchanges.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Failures in the window, by kind.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    /// All failures in the window.
    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Successful exchanges that finished during the warm-up (not in the figures).
    pub fn warmup_requests(&self) -> u64 {
        self.warmup_requests
    }

    /// Failures during the warm-up (not in the figures, but reported).
    pub fn warmup_errors(&self) -> u64 {
        self.warmup_errors
    }

    /// The latency histogram in nanoseconds.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> (Instant, Recorder) {
        let t0 = Instant::now();
        let w = Window::after(t0, Duration::from_secs(1), Duration::from_secs(2));
        (t0, Recorder::new(w).unwrap())
    }

    #[test]
    fn counts_only_what_finishes_inside_the_window() {
        let (t0, mut r) = window();
        let ms = Duration::from_millis;
        // Warm-up: a success and a failure.
        r.success(t0, t0 + ms(10), 100);
        r.failure(ErrorKind::Timeout, t0 + ms(999));
        // Started in the warm-up, finished inside: counted with its full latency.
        r.success(t0 + ms(990), t0 + ms(1010), 1024);
        r.success(t0 + ms(1500), t0 + ms(1501), 1024);
        r.failure(ErrorKind::Status, t0 + ms(1000));
        r.failure(ErrorKind::Status, t0 + ms(2999));
        r.failure(ErrorKind::Length, t0 + ms(2000));
        // After the end: ignored.
        r.success(t0 + ms(2999), t0 + ms(3000), 1024);
        r.failure(ErrorKind::Body, t0 + ms(3001));
        r.connected(t0);
        r.connected(t0 + ms(1000));
        r.connected(t0 + ms(3000));

        assert_eq!(r.requests(), 2);
        assert_eq!(r.bytes(), 2048);
        assert_eq!(r.warmup_requests(), 1);
        assert_eq!(r.warmup_errors(), 1);
        assert_eq!(r.errors(ErrorKind::Status), 2);
        assert_eq!(r.errors(ErrorKind::Length), 1);
        assert_eq!(r.errors(ErrorKind::Body), 0);
        assert_eq!(r.total_errors(), 3);
        assert_eq!(r.connects(), 1);
        let h = r.histogram();
        assert_eq!(h.len(), 2);
        // 3 significant digits: within 0.1 %.
        assert!(h.max().abs_diff(20_000_000) <= 20_000, "{}", h.max());
        assert!(h.min().abs_diff(1_000_000) <= 1_000, "{}", h.min());
    }

    #[test]
    fn zero_and_huge_latencies_are_clamped_not_lost() {
        let (t0, mut r) = window();
        let inside = t0 + Duration::from_millis(1500);
        r.success(inside, inside, 1);
        r.success(inside - Duration::from_millis(1400), inside, 1);
        assert_eq!(r.histogram().len(), 2);
        assert_eq!(r.histogram().min(), 1);
    }

    #[test]
    fn error_kinds_have_distinct_labels_in_order() {
        let labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            labels,
            ["connect", "send", "timeout", "status", "body", "length"]
        );
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    #[test]
    fn window_arithmetic() {
        let t0 = Instant::now();
        let w = Window::after(t0, Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(w.start - t0, Duration::from_secs(2));
        assert_eq!(w.duration(), Duration::from_secs(10));
    }
}
