//! When an upstream exchange times out, for requests with a body.
//!
//! The first-byte timeout is the origin's time to answer a request, so it counts from the
//! request's end, as nginx's `proxy_read_timeout` does: counted from the start, an upload that
//! takes longer than it to go out (a large one, or from a slow client) would be a 504 however
//! fast the origin took it. While the body goes out, what is timed is the upstream taking it:
//! a pause longer than the idle timeout in which the sender takes no piece of the body, and
//! is not waiting on the client (whose pauses `timeouts.client_body` bounds), ends the
//! exchange, as nginx's `proxy_send_timeout` does. Pieces are at most 64 KiB
//! (`engine/request_body.rs`): an origin that reads slower than one per idle timeout stalls
//! too. As in nginx, nothing bounds the upload as a whole.
//!
//! The clock is read off the request body: its frames are what the sender takes once the
//! upstream has room (hyper's HTTP/2 client holds one frame beyond the stream's window,
//! `h1send` asks for the next only after the last write went out). So the first-byte timeout
//! starts when the last piece is taken, and covers the last write; before the sender first
//! asks for the body (connecting, waiting for an HTTP/2 stream) it counts from the start.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Either;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{BoxError, UpstreamBody, UpstreamError};

/// What the request body has done so far, shared between the body (moved into the sender)
/// and the exchange's timer.
#[derive(Debug)]
struct Progress {
    /// The last change: a frame taken, or the wait for the client begun or ended; `None`
    /// until the sender first asks for the body (it may be connecting, or waiting for an
    /// HTTP/2 stream: the first-byte timeout from the start bounds that).
    last: Option<Instant>,
    /// When the body ended (its last frame taken, or the sender dropped it).
    ended: Option<Instant>,
    /// The sender asked for more and the client has not sent it yet.
    waiting_on_client: bool,
}

#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    /// Told when the deadline may have come sooner than the one being slept towards: when the
    /// sender first asks for the body, and when the body ends.
    sooner: Notify,
}

impl Shared {
    fn end(&self, p: &mut Progress, now: Instant) {
        p.waiting_on_client = false;
        if p.ended.is_none() {
            p.ended = Some(now);
            self.sooner.notify_one();
        }
    }
}

/// Where the request of one exchange has got to: `None` without a body (the request was
/// whole when it started), else the body's progress as the sender takes it.
#[derive(Debug)]
pub(super) struct RequestClock(Option<Arc<Shared>>);

/// A request body that tells its [`RequestClock`] how far the sender has taken it.
struct Clocked {
    inner: UpstreamBody,
    shared: Arc<Shared>,
}

impl Body for Clocked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let now = Instant::now();
        let ended = match &polled {
            Poll::Pending => None,
            Poll::Ready(Some(Ok(_))) => Some(self.inner.is_end_stream()),
            Poll::Ready(None) => Some(true),
            // The send fails with the body's error: nothing left to time.
            Poll::Ready(Some(Err(_))) => Some(false),
        };
        let mut p = self.shared.progress.lock();
        if p.last.is_none() {
            self.shared.sooner.notify_one();
        }
        match ended {
            None if !p.waiting_on_client => {
                p.waiting_on_client = true;
                p.last = Some(now);
            }
            None => {}
            Some(ended) => {
                p.waiting_on_client = false;
                p.last = Some(now);
                if ended {
                    self.shared.end(&mut p, now);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Clocked {
    /// A body dropped before its end will send no more (the sender failed, or the origin
    /// refused it): from here the exchange only waits for an answer.
    fn drop(&mut self) {
        let mut p = self.shared.progress.lock();
        self.shared.end(&mut p, Instant::now());
    }
}

impl RequestClock {
    /// `req` with its body clocked, and the clock that times its exchange. A request
    /// without a body is left as it is (misses take this path).
    pub(super) fn attach(req: Request<UpstreamBody>) -> (Request<UpstreamBody>, RequestClock) {
        if req.body().is_end_stream() {
            return (req, RequestClock(None));
        }
        let (parts, body) = req.into_parts();
        let (body, clock) = RequestClock::wrap(body);
        (Request::from_parts(parts, body), clock)
    }

    /// `body` (not over yet), clocked.
    fn wrap(body: UpstreamBody) -> (UpstreamBody, RequestClock) {
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                last: None,
                ended: None,
                waiting_on_client: false,
            }),
            sooner: Notify::new(),
        });
        let body = Clocked {
            inner: body,
            shared: shared.clone(),
        };
        (body.boxed_unsync(), RequestClock(Some(shared)))
    }

    /// Runs `exchange` (the request going out, then its response head coming in) until it
    /// is done or times out: `first_byte` after the request's end, or `idle` into a pause in
    /// which the upstream takes none of the body. Without a body, a plain timeout (the
    /// exchange future is moved once, as before the clock: misses take this path).
    pub(super) fn run<T, F>(
        &self,
        first_byte: Duration,
        idle: Duration,
        exchange: F,
    ) -> impl Future<Output = Result<T, UpstreamError>> + use<T, F>
    where
        F: Future<Output = Result<T, UpstreamError>>,
    {
        match &self.0 {
            None => Either::Left(
                tokio::time::timeout(first_byte, exchange)
                    .map(|r| r.unwrap_or_else(|_| Err(timed_out()))),
            ),
            Some(shared) => Either::Right(run_clocked(shared.clone(), first_byte, idle, exchange)),
        }
    }
}

/// [`RequestClock::run`] for a request with a body.
async fn run_clocked<T>(
    shared: Arc<Shared>,
    first_byte: Duration,
    idle: Duration,
    exchange: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    let started = Instant::now();
    tokio::pin!(exchange);
    loop {
        // While the client is slow its own timeout runs; look again after `idle`.
        let at = shared
            .deadline(started, first_byte, idle)
            .map_or_else(|| Instant::now() + idle, |(at, _)| at);
        tokio::select! {
            biased;
            done = &mut exchange => return done,
            // The body was first asked for, or ended: the deadline may be sooner.
            () = shared.sooner.notified() => {}
            () = tokio::time::sleep_until(at) => {
                // Progress may have moved the deadline on since it was taken.
                if let Some((at, error)) = shared.deadline(started, first_byte, idle)
                    && at <= Instant::now()
                {
                    return Err(error);
                }
            }
        }
    }
}

impl Shared {
    /// The instant the exchange times out at if nothing changes, and how; `None` while the
    /// sender waits on the client.
    fn deadline(
        &self,
        started: Instant,
        first_byte: Duration,
        idle: Duration,
    ) -> Option<(Instant, UpstreamError)> {
        let p = self.progress.lock();
        match (p.ended, p.last) {
            (Some(ended), _) => Some((ended + first_byte, timed_out())),
            (None, None) => Some((started + first_byte, timed_out())),
            (None, Some(_)) if p.waiting_on_client => None,
            (None, Some(last)) => Some((last + idle, UpstreamError::RequestStalled)),
        }
    }
}

fn timed_out() -> UpstreamError {
    UpstreamError::FirstByteTimeout
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;
    use http_body_util::StreamBody;

    use super::*;

    const FIRST_BYTE: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(3);

    fn body_of(pieces: Vec<&'static [u8]>) -> UpstreamBody {
        let frames = pieces
            .into_iter()
            .map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from_static(p))));
        StreamBody::new(stream::iter(frames))
            .map_err(|e| match e {})
            .boxed_unsync()
    }

    #[tokio::test(start_paused = true)]
    async fn a_bodyless_request_has_the_first_byte_timeout_from_its_start() {
        let (_, clock) = RequestClock::attach(Request::new(super::super::empty_body()));
        assert!(clock.0.is_none(), "a request without a body is not clocked");
        let never = std::future::pending::<Result<(), UpstreamError>>();
        let started = Instant::now();
        let r = clock.run(FIRST_BYTE, IDLE, never).await;
        assert!(matches!(r, Err(UpstreamError::FirstByteTimeout)));
        assert_eq!(started.elapsed(), FIRST_BYTE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_timeout_counts_from_the_bodys_end() {
        let (mut body, clock) = RequestClock::wrap(body_of(vec![b"a", b"b"]));
        let started = Instant::now();
        // A sender that takes one frame every 2 s (within the idle timeout), for 20 s in all
        // before the body ends: longer than the first-byte timeout.
        let exchange = async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if body.frame().await.is_none() {
                    break;
                }
            }
            std::future::pending::<Result<(), UpstreamError>>().await
        };
        let r = clock.run(FIRST_BYTE, IDLE, exchange).await;
        assert!(matches!(r, Err(UpstreamError::FirstByteTimeout)));
        // Ended at 6 s (the third poll says None), timed out first-byte later.
        assert_eq!(started.elapsed(), Duration::from_secs(6) + FIRST_BYTE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_that_stops_taking_the_body_is_a_stall_after_the_idle_timeout() {
        let (mut body, clock) = RequestClock::wrap(body_of(vec![b"a", b"b", b"c"]));
        let started = Instant::now();
        let exchange = async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = body.frame().await;
            // The upstream's window stays shut: no more is taken.
            std::future::pending::<Result<(), UpstreamError>>().await
        };
        let r = clock.run(FIRST_BYTE, IDLE, exchange).await;
        assert!(matches!(r, Err(UpstreamError::RequestStalled)));
        assert_eq!(started.elapsed(), Duration::from_secs(2) + IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_byte_timeout_shorter_than_the_idle_one_counts_from_the_end() {
        // The timer sleeps towards the stall deadline (30 s) when the body ends at 2 s: the
        // end brings the deadline forward to 3 s.
        let (mut body, clock) = RequestClock::wrap(body_of(vec![b"a"]));
        let started = Instant::now();
        let exchange = async move {
            let _ = body.frame().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert!(body.frame().await.is_none());
            std::future::pending::<Result<(), UpstreamError>>().await
        };
        let r = clock
            .run(Duration::from_secs(1), Duration::from_secs(30), exchange)
            .await;
        assert!(matches!(r, Err(UpstreamError::FirstByteTimeout)));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_never_asked_for_is_bounded_by_the_first_byte_timeout() {
        // A sender still connecting, or waiting for a stream: no stall is timed yet.
        let (body, clock) = RequestClock::wrap(body_of(vec![b"a"]));
        let started = Instant::now();
        let exchange = async move {
            let _keep = body;
            std::future::pending::<Result<(), UpstreamError>>().await
        };
        let r = clock.run(FIRST_BYTE, IDLE, exchange).await;
        assert!(matches!(r, Err(UpstreamError::FirstByteTimeout)));
        assert_eq!(started.elapsed(), FIRST_BYTE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_while_the_client_is_slow_still_times_out() {
        // The sender gives up on the body (an origin refused it) while it waits on the
        // client: from then on only the answer is awaited, within the first-byte timeout.
        let frames = stream::once(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"x")))
        });
        let body = StreamBody::new(Box::pin(frames))
            .map_err(|e| match e {})
            .boxed_unsync();
        let (mut body, clock) = RequestClock::wrap(body);
        let started = Instant::now();
        let exchange = async move {
            let waited = tokio::time::timeout(Duration::from_secs(4), body.frame()).await;
            assert!(waited.is_err());
            drop(body);
            std::future::pending::<Result<(), UpstreamError>>().await
        };
        let r = clock.run(FIRST_BYTE, IDLE, exchange).await;
        assert!(matches!(r, Err(UpstreamError::FirstByteTimeout)));
        assert_eq!(started.elapsed(), Duration::from_secs(4) + FIRST_BYTE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_client_is_not_the_upstreams_stall() {
        // The client's pieces come 5 s apart (longer than the idle timeout): the sender waits
        // on the client, which is not timed here.
        let frames = stream::unfold(0, |i| async move {
            if i == 3 {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"x"))),
                i + 1,
            ))
        });
        let body = StreamBody::new(Box::pin(frames))
            .map_err(|e| match e {})
            .boxed_unsync();
        let (mut body, clock) = RequestClock::wrap(body);
        let exchange = async move {
            while body.frame().await.is_some() {}
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, UpstreamError>("answered")
        };
        let r = clock.run(FIRST_BYTE, IDLE, exchange).await;
        assert_eq!(r.ok(), Some("answered"));
    }
}
