//! When a client connection has gone quiet for too long, and what to do about it.
//!
//! Two client timeouts, as nginx and Varnish have them: `timeouts.client_idle` bounds a
//! keep-alive connection with no request in flight (nginx `keepalive_timeout`, Varnish
//! `timeout_idle`), and `timeouts.client_header` bounds an HTTP/1.1 request head once it has
//! started to arrive, or a fresh connection that has sent nothing (nginx
//! `client_header_timeout`). hyper has one timer for both (its header timeout starts as soon as
//! the previous response is written), so the front end keeps its own: [`Activity`] is updated
//! by the connection's reads and its requests, and [`verdict`] — pure, so it is tested
//! exhaustively — says when to look again and when to close.
//!
//! A request in flight is not cut off for being slow: a slow origin is bounded by the upstream
//! timeouts. What is cut is a client that stops reading: when the socket has refused our bytes
//! for `client_idle` (nginx `send_timeout`, Varnish `send_timeout`), the connection is dropped,
//! so clients that never read cannot hold connections and their buffers forever. HTTP/2 can
//! stall without a full socket (a client that withholds WINDOW_UPDATE): there, a response body
//! that has handed over a frame and is not asked for the next one counts as waiting on the
//! client, and when no body on the connection has moved for `client_idle`, it is dropped too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::head::{MAX_SCANNED_HEAD, framing_of, head_end};

/// The two client timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietLimits {
    /// An HTTP/1.1 request head (or a fresh connection's first one) must arrive within this.
    pub header: Duration,
    /// A connection with nothing in flight is closed after this.
    pub idle: Duration,
}

/// What a connection is doing, as of one instant (milliseconds since it was accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests whose responses are not yet fully handed to the connection.
    pub in_flight: usize,
    /// When the last request finished (or the connection was accepted).
    pub quiet_since: u64,
    /// When bytes of a next request head began to arrive while nothing was in flight.
    pub head_started: Option<u64>,
    /// HTTP/2: no request heads to time, only streams (but see `awaiting_first`).
    pub h2: bool,
    /// No request has started on the connection yet: from accept to its first complete
    /// request head, TLS handshake and h2 preface included, one deadline (`header`) holds
    /// whatever the protocol, so a client that sends the h2 preface and then nothing is held
    /// no longer than one that sends nothing at all.
    pub awaiting_first: bool,
    /// Since when the socket has refused every write (the client is not reading).
    pub write_blocked_since: Option<u64>,
    /// Response bodies that produced a frame and have not been asked for the next one.
    pub bodies_waiting_on_client: usize,
    /// When a response body on this connection last produced a frame (or the connection was
    /// accepted).
    pub body_progress: u64,
}

/// What to do with a connection now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing yet; look again at this time (ms since accept).
    LookAgainAt(u64),
    /// Close it, for this reason.
    Close(Closing),
}

/// Why the node closes a client connection (also what `/metrics` counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// Nothing in flight for `idle`: close it politely (h2 GOAWAY, h1 close between requests).
    Idle,
    /// An HTTP/1.1 request head (or a TLS handshake) did not arrive in time: drop it.
    HeadTimeout,
    /// The client has not taken any of our bytes for `idle`: drop it.
    SendTimeout,
    /// Idle while the node was at its connection limit: closed politely to make room.
    MadeRoom,
}

/// The rules. A wake-up is never later than the shortest timeout from now, so a deadline that
/// starts between two looks (a head beginning to arrive) is still enforced on time.
pub fn verdict(s: &Snapshot, now: u64, limits: &QuietLimits) -> Verdict {
    let header = millis(limits.header);
    let idle = millis(limits.idle);
    let next_look = now.saturating_add(header.min(idle).max(1));
    if let Some(blocked) = s.write_blocked_since {
        let deadline = blocked.saturating_add(idle);
        if now >= deadline {
            return Verdict::Close(Closing::SendTimeout);
        }
        if s.in_flight > 0 {
            return Verdict::LookAgainAt(deadline.min(next_look));
        }
    }
    if s.in_flight > 0 {
        if s.bodies_waiting_on_client > 0 {
            let deadline = s.body_progress.saturating_add(idle);
            if now >= deadline {
                return Verdict::Close(Closing::SendTimeout);
            }
            return Verdict::LookAgainAt(deadline.min(next_look));
        }
        return Verdict::LookAgainAt(next_look);
    }
    let (deadline, on_expiry) = match s.head_started {
        Some(start) if !s.h2 || s.awaiting_first => (
            start.saturating_add(header),
            Verdict::Close(Closing::HeadTimeout),
        ),
        _ => (
            s.quiet_since.saturating_add(idle),
            Verdict::Close(Closing::Idle),
        ),
    };
    if now >= deadline {
        on_expiry
    } else {
        Verdict::LookAgainAt(deadline.min(next_look))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The live counterpart of [`Snapshot`], shared by a connection's IO wrapper, its request
/// tasks (h2 streams run on their own tasks) and its watchdog. Relaxed atomics: the watchdog
/// only needs a recent picture, and each field is written by one kind of event.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    quiet_since: AtomicU64,
    /// 0 = none, else ms since accept + 1.
    head_started: AtomicU64,
    h2: AtomicBool,
    /// A request has started on this connection.
    served: AtomicBool,
    /// 0 = writes are going through, else ms since accept + 1 of the first refused write.
    write_blocked: AtomicU64,
    bodies_waiting: AtomicUsize,
    body_progress: AtomicU64,
    /// A handler asked for the connection to be dropped now.
    dropped: tokio::sync::Notify,
    /// The connection limiter asked for the connection to close if it is idle.
    close_asked: tokio::sync::Notify,
    close_asked_flag: AtomicBool,
    /// Whether the reads are a head arriving on an idle HTTP/1 connection (see [`super::head`]).
    scanning: AtomicBool,
    /// The part of that head read so far, when it came in more than one read.
    head: parking_lot::Mutex<Vec<u8>>,
    /// The last scanned head's framing was ambiguous; taken by the next request.
    ambiguous: AtomicBool,
}

impl Activity {
    /// A connection accepted now; until its first bytes it counts as a head in progress.
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(0),
            head_started: AtomicU64::new(1),
            h2: AtomicBool::new(false),
            served: AtomicBool::new(false),
            write_blocked: AtomicU64::new(0),
            bodies_waiting: AtomicUsize::new(0),
            body_progress: AtomicU64::new(0),
            dropped: tokio::sync::Notify::new(),
            close_asked: tokio::sync::Notify::new(),
            close_asked_flag: AtomicBool::new(false),
            scanning: AtomicBool::new(true),
            head: parking_lot::Mutex::new(Vec::new()),
            ambiguous: AtomicBool::new(false),
        })
    }

    /// Milliseconds since the connection was accepted.
    pub fn now(&self) -> u64 {
        millis(self.accepted.elapsed())
    }

    /// Bytes arrived from the client (`read` is what this read returned).
    pub fn bytes_read(&self, read: &[u8]) {
        if read.is_empty() {
            return;
        }
        if self.scanning.load(Relaxed) {
            self.scan_head(read);
        }
        // A fresh connection's clock (head_started = accept) keeps running until the first
        // head is complete; after that, the first byte of each quiet spell starts it.
        if self.in_flight.load(Relaxed) == 0 && self.head_started.load(Relaxed) == 0 {
            self.head_started.store(self.now() + 1, Relaxed);
        }
    }

    /// Follows a head arriving on an idle connection up to its blank line, and notes whether
    /// its framing was ambiguous. A head that arrives in one read (nearly all) is scanned in
    /// place; only a split one is copied.
    fn scan_head(&self, read: &[u8]) {
        if self.h2.load(Relaxed) {
            self.scanning.store(false, Relaxed);
            return;
        }
        let mut held = self.head.lock();
        let framing = if held.is_empty() {
            match head_end(read) {
                Some(end) => Some(framing_of(&read[..end])),
                None => {
                    held.extend_from_slice(&read[..read.len().min(MAX_SCANNED_HEAD)]);
                    None
                }
            }
        } else {
            let room = MAX_SCANNED_HEAD.saturating_sub(held.len());
            held.extend_from_slice(&read[..read.len().min(room)]);
            head_end(&held).map(|end| framing_of(&held[..end]))
        };
        let done = framing.is_some() || held.len() >= MAX_SCANNED_HEAD;
        if let Some(f) = framing
            && f.ambiguous()
        {
            self.ambiguous.store(true, Relaxed);
        }
        if done {
            held.clear();
            self.scanning.store(false, Relaxed);
        }
    }

    /// Whether the head of the request being started had ambiguous framing (read once).
    pub fn take_ambiguous_framing(&self) -> bool {
        self.ambiguous.swap(false, Relaxed)
    }

    /// The connection's first bytes were the HTTP/2 preface ([`super::protocols`] decides, on
    /// the same bytes hyper is then given): its requests are streams, with no heads to time or
    /// scan.
    pub fn chose_http2(&self) {
        self.h2.store(true, Relaxed);
        self.scanning.store(false, Relaxed);
        self.head.lock().clear();
    }

    /// The socket refused a write (its send buffer is full); the clock starts at the first.
    pub fn write_blocked(&self) {
        if self.write_blocked.load(Relaxed) == 0 {
            self.write_blocked.store(self.now() + 1, Relaxed);
        }
    }

    /// The socket took a write (or a flush went through).
    pub fn write_went_through(&self) {
        if self.write_blocked.load(Relaxed) != 0 {
            self.write_blocked.store(0, Relaxed);
        }
    }

    /// A response body handed over a frame: it now waits for the client to want more.
    pub fn body_frame_produced(&self) {
        self.body_progress.store(self.now(), Relaxed);
        self.bodies_waiting.fetch_add(1, Relaxed);
    }

    /// A response body that had handed over a frame is asked for more (or is dropped).
    pub fn body_asked_again(&self) {
        self.bodies_waiting.fetch_sub(1, Relaxed);
    }

    /// A request head is complete; the returned guard ends the request when dropped (with the
    /// response body, or with the request if it is abandoned).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_started.store(0, Relaxed);
        self.served.store(true, Relaxed);
        InFlight(self.clone())
    }

    /// Asks for the connection to be dropped at once (a handler gave up on a client that does
    /// not read: its last bytes would otherwise wait in the socket until the idle timeout).
    pub fn drop_connection(&self) {
        self.dropped.notify_one();
    }

    /// Resolves once [`Activity::drop_connection`] was called.
    pub async fn drop_requested(&self) {
        self.dropped.notified().await;
    }

    /// Since when the connection has been an idle keep-alive one: nothing in flight, and no
    /// request head begun (an HTTP/1.1 connection that has not sent its first request yet is
    /// not idle: its head is being timed). `None` when it is not idle.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        if !self.h2.load(Relaxed) && self.head_started.load(Relaxed) != 0 {
            return None;
        }
        Some(self.accepted + Duration::from_millis(self.quiet_since.load(Relaxed)))
    }

    /// Asks the connection to close while it is idle (the node needs its place): an HTTP/1.1
    /// connection closes between requests, an HTTP/2 one gets GOAWAY.
    pub fn ask_to_close(&self) {
        self.close_asked_flag.store(true, Relaxed);
        self.close_asked.notify_one();
    }

    /// Resolves once [`Activity::ask_to_close`] was called.
    pub async fn close_asked(&self) {
        self.close_asked.notified().await;
    }

    /// Whether [`Activity::ask_to_close`] was called.
    pub fn close_asked_now(&self) -> bool {
        self.close_asked_flag.load(Relaxed)
    }

    /// The current picture.
    pub fn snapshot(&self) -> Snapshot {
        let head = self.head_started.load(Relaxed);
        Snapshot {
            in_flight: self.in_flight.load(Relaxed),
            quiet_since: self.quiet_since.load(Relaxed),
            head_started: head.checked_sub(1),
            h2: self.h2.load(Relaxed),
            awaiting_first: !self.served.load(Relaxed),
            write_blocked_since: self.write_blocked.load(Relaxed).checked_sub(1),
            bodies_waiting_on_client: self.bodies_waiting.load(Relaxed),
            body_progress: self.body_progress.load(Relaxed),
        }
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

/// Put in every request's extensions by [`super::serve_connection`]: lets a handler drop the
/// connection its request came on.
#[derive(Debug, Clone)]
pub struct ConnControl(pub Arc<Activity>);

impl ConnControl {
    /// Drops the connection now (see [`Activity::drop_connection`]).
    pub fn drop_connection(&self) {
        self.0.drop_connection();
    }
}

impl InFlight {
    /// The connection this request belongs to.
    pub fn activity(&self) -> &Activity {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Relaxed) == 1 {
            a.quiet_since.store(a.now(), Relaxed);
            // The next bytes on an idle connection begin the next head.
            a.head.lock().clear();
            a.scanning.store(true, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QuietLimits = QuietLimits {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn snap(in_flight: usize, quiet_since: u64, head_started: Option<u64>, h2: bool) -> Snapshot {
        Snapshot {
            in_flight,
            quiet_since,
            head_started,
            h2,
            awaiting_first: false,
            write_blocked_since: None,
            bodies_waiting_on_client: 0,
            body_progress: 0,
        }
    }

    fn blocked(mut s: Snapshot, since: u64) -> Snapshot {
        s.write_blocked_since = Some(since);
        s
    }

    #[test]
    fn busy_connections_are_never_closed_and_looked_at_every_shortest_timeout() {
        for h2 in [false, true] {
            for head in [None, Some(0)] {
                let s = snap(3, 0, head, h2);
                assert_eq!(
                    verdict(&s, 1_000_000, &LIMITS),
                    Verdict::LookAgainAt(1_010_000)
                );
            }
        }
    }

    #[test]
    fn a_fresh_h1_connection_gets_the_header_timeout() {
        let s = snap(0, 0, Some(0), false);
        assert_eq!(verdict(&s, 0, &LIMITS), Verdict::LookAgainAt(10_000));
        assert_eq!(verdict(&s, 9_999, &LIMITS), Verdict::LookAgainAt(10_000));
        assert_eq!(
            verdict(&s, 10_000, &LIMITS),
            Verdict::Close(Closing::HeadTimeout)
        );
    }

    #[test]
    fn an_idle_h1_keep_alive_connection_gets_the_idle_timeout() {
        let s = snap(0, 5_000, None, false);
        assert_eq!(verdict(&s, 5_000, &LIMITS), Verdict::LookAgainAt(15_000));
        assert_eq!(verdict(&s, 60_000, &LIMITS), Verdict::LookAgainAt(65_000));
        assert_eq!(verdict(&s, 64_999, &LIMITS), Verdict::LookAgainAt(65_000));
        assert_eq!(verdict(&s, 65_000, &LIMITS), Verdict::Close(Closing::Idle));
    }

    #[test]
    fn a_head_that_starts_arriving_gets_the_header_timeout_from_its_first_byte() {
        // Idle since 5 s, head bytes from 50 s: the head must be complete by 60 s, even
        // though the idle deadline (65 s) is later.
        let s = snap(0, 5_000, Some(50_000), false);
        assert_eq!(verdict(&s, 55_000, &LIMITS), Verdict::LookAgainAt(60_000));
        assert_eq!(
            verdict(&s, 60_000, &LIMITS),
            Verdict::Close(Closing::HeadTimeout)
        );
        // A head that starts just before the idle deadline still gets its full time.
        let s = snap(0, 5_000, Some(64_000), false);
        assert_eq!(verdict(&s, 65_000, &LIMITS), Verdict::LookAgainAt(74_000));
    }

    #[test]
    fn an_h2_connection_that_sends_no_first_request_gets_the_header_timeout() {
        // Preface and SETTINGS arrived, no HEADERS: held to the one deadline from accept.
        let mut s = snap(0, 0, Some(0), true);
        s.awaiting_first = true;
        assert_eq!(verdict(&s, 9_999, &LIMITS), Verdict::LookAgainAt(10_000));
        assert_eq!(
            verdict(&s, 10_000, &LIMITS),
            Verdict::Close(Closing::HeadTimeout)
        );
    }

    #[test]
    fn h2_ignores_head_timing_and_closes_only_when_idle() {
        let s = snap(0, 0, Some(0), true);
        assert_eq!(verdict(&s, 10_000, &LIMITS), Verdict::LookAgainAt(20_000));
        assert_eq!(verdict(&s, 60_000, &LIMITS), Verdict::Close(Closing::Idle));
        let s = snap(0, 30_000, Some(31_000), true);
        assert_eq!(verdict(&s, 89_999, &LIMITS), Verdict::LookAgainAt(90_000));
        assert_eq!(verdict(&s, 90_000, &LIMITS), Verdict::Close(Closing::Idle));
    }

    #[test]
    fn the_look_again_time_never_passes_a_deadline_that_could_start_now() {
        // Property over a grid: a head starting at `now` is looked at no later than
        // `now + header`, so it is enforced on time.
        let limits = QuietLimits {
            header: Duration::from_millis(700),
            idle: Duration::from_millis(300),
        };
        for quiet in (0..5_000).step_by(250) {
            for now in (quiet..quiet + 5_000).step_by(97) {
                if let Verdict::LookAgainAt(t) = verdict(&snap(0, quiet, None, false), now, &limits)
                {
                    assert!(t > now && t <= now + 300, "quiet {quiet} now {now} → {t}");
                }
            }
        }
    }

    #[test]
    fn zero_and_huge_limits_do_not_overflow_or_spin() {
        let zero = QuietLimits {
            header: Duration::ZERO,
            idle: Duration::ZERO,
        };
        assert_eq!(
            verdict(&snap(1, 0, None, false), 7, &zero),
            Verdict::LookAgainAt(8)
        );
        assert_eq!(
            verdict(&snap(0, 0, None, false), 0, &zero),
            Verdict::Close(Closing::Idle)
        );
        let huge = QuietLimits {
            header: Duration::MAX,
            idle: Duration::MAX,
        };
        assert_eq!(
            verdict(&snap(0, u64::MAX - 1, Some(u64::MAX - 1), false), 5, &huge),
            Verdict::LookAgainAt(u64::MAX)
        );
    }

    #[test]
    fn a_client_that_stops_reading_is_cut_after_the_idle_timeout_busy_or_not() {
        for h2 in [false, true] {
            for in_flight in [0, 1, 5] {
                let s = blocked(snap(in_flight, 100_000, None, h2), 100_000);
                assert_eq!(
                    verdict(&s, 160_000, &LIMITS),
                    Verdict::Close(Closing::SendTimeout),
                    "h2 {h2} in flight {in_flight}"
                );
                let early = verdict(&s, 159_999, &LIMITS);
                assert!(
                    matches!(early, Verdict::LookAgainAt(t) if t <= 160_000),
                    "{early:?}"
                );
            }
        }
        // Busy and blocked: looked at again no later than the send deadline.
        let s = blocked(snap(2, 0, None, false), 100_000);
        assert_eq!(verdict(&s, 155_000, &LIMITS), Verdict::LookAgainAt(160_000));
        // A blocked write on an otherwise idle connection: whichever deadline comes first.
        let s = blocked(snap(0, 0, None, false), 30_000);
        assert_eq!(verdict(&s, 60_000, &LIMITS), Verdict::Close(Closing::Idle));
    }

    #[test]
    fn a_flow_control_stall_is_cut_when_no_body_has_moved_for_the_idle_timeout() {
        let mut s = snap(2, 0, None, true);
        s.bodies_waiting_on_client = 1;
        s.body_progress = 100_000;
        assert_eq!(verdict(&s, 150_000, &LIMITS), Verdict::LookAgainAt(160_000));
        assert_eq!(
            verdict(&s, 160_000, &LIMITS),
            Verdict::Close(Closing::SendTimeout)
        );
        // Bodies waiting on the origin instead (none waiting on the client): never cut here.
        s.bodies_waiting_on_client = 0;
        assert_eq!(verdict(&s, 500_000, &LIMITS), Verdict::LookAgainAt(510_000));
    }

    #[test]
    fn activity_tracks_requests_heads_and_the_h2_preface() {
        let a = Activity::new();
        let s = a.snapshot();
        assert_eq!((s.in_flight, s.head_started, s.h2), (0, Some(0), false));
        a.bytes_read(b"GET / HTTP/1.1\r\n");
        let r1 = a.request_started();
        let r2 = a.request_started();
        assert_eq!(a.snapshot().in_flight, 2);
        assert_eq!(a.snapshot().head_started, None);
        a.bytes_read(b"more request body"); // in flight: not a new head
        assert_eq!(a.snapshot().head_started, None);
        drop(r1);
        drop(r2);
        assert_eq!(a.snapshot().in_flight, 0);
        a.bytes_read(b"GET /next");
        assert!(a.snapshot().head_started.is_some());

        let b = Activity::new();
        b.bytes_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(!b.snapshot().h2, "bytes alone decide nothing");
        b.chose_http2();
        assert!(b.snapshot().h2);
        let c = Activity::new();
        c.bytes_read(b"PUT / HTTP/1.1\r\n");
        assert!(!c.snapshot().h2);
        c.write_blocked();
        let first = c.snapshot().write_blocked_since;
        assert!(first.is_some());
        std::thread::sleep(Duration::from_millis(5));
        c.write_blocked();
        assert_eq!(
            c.snapshot().write_blocked_since,
            first,
            "the clock starts once"
        );
        c.write_went_through();
        assert_eq!(c.snapshot().write_blocked_since, None);
        c.body_frame_produced();
        c.body_frame_produced();
        assert_eq!(c.snapshot().bodies_waiting_on_client, 2);
        c.body_asked_again();
        assert_eq!(c.snapshot().bodies_waiting_on_client, 1);
    }
}
