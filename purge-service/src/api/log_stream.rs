//! `GET /v1/log?from=N`: the NDJSON stream of [`LogEvent`]s, served by every node.
//!
//! ```text
//! from ─▶ cursor ≤ last purged? ──yes──▶ Reset{snapshot} ; cursor = snapshot + 1
//!           │no
//!           ▼
//!         entries [cursor, applied]: encoded lines from memory (recent), else the log store
//!           ▼
//!         Heartbeat{commit_index = applied}, only while in touch with a quorum
//!           ▼
//!         wait for the applied index to move, or 500 ms
//! ```
//!
//! Only entries at or below the node's applied index are sent, so what a follower sees has
//! been committed; the heartbeat's `commit_index` is that applied index.
//!
//! What one stream may cost is bounded: a member serves a limited number of streams (per
//! member and per token, [`crate::streams`]); lines are handed to the connection in frames of
//! at most [`FRAME_BUDGET`] bytes (a longer line alone, shared with every other stream rather
//! than copied), through a one-frame channel, and entries read from the store at most
//! [`READ_BUDGET`] bytes at a time; a reader that takes nothing for `--log-write-timeout` is
//! dropped. The stream's token is checked again whenever the log moves, so a revoked or
//! expired token stops receiving within moments.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use http_body_util::channel::{Channel, Sender};
use tiercel_cluster::conn::ConnControl;
use tiercel_cluster::purge::wire::LogEvent;
use tokio::time::Instant;

use super::response::{BodyError, Failure};
use super::{Answer, ApiRequest};
use crate::app::App;
use crate::state::events::{encode_line, entry_event};
use crate::types::{TokenRecord, unix_ms};

/// Heartbeat period. The contract is "at least every second"; half that leaves margin for
/// scheduling and network jitter, so a follower never sees a gap over a second (followers
/// reconnect after 3 s of silence, and may treat shorter silences as lag).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// A stream on a node cut off from the quorum is closed after this long without heartbeats.
const CLOSE_WHEN_ALONE: Duration = Duration::from_secs(5);
/// Entries read from the store per step, at most.
const CHUNK: u64 = 512;
/// Stored bytes read from the store per step (at least one entry).
pub const READ_BUDGET: usize = 1024 * 1024;
/// Bytes of small lines gathered into one frame.
pub const FRAME_BUDGET: usize = 64 * 1024;
/// Retries when the log has a hole not yet explained by a snapshot (a snapshot being
/// installed), before the stream is ended and the follower reconnects.
const GAP_RETRIES: u32 = 40;

/// Starts the stream for the follower holding `token`.
pub async fn stream(app: Arc<App>, req: &ApiRequest, token: Option<&TokenRecord>) -> Answer {
    let from = match req.query("from") {
        None | Some("") => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            Failure::BadRequest(format!("from: {v:?} is not a non-negative integer"))
        })?,
    };
    let token = token
        .map(|t| t.id.clone())
        .ok_or_else(|| Failure::Unauthorized("a log stream needs a token".into()))?;
    let slot = app
        .streams
        .admit(&token)
        .map_err(|e| Failure::Unavailable {
            message: e.to_string(),
            retry_after: 1,
        })?;
    let (tx, body) = Channel::<Bytes, BodyError>::new(1);
    let conn = req.parts.extensions.get::<ConnControl>().cloned();
    tokio::spawn(async move {
        let _slot = slot;
        let mut out = Out {
            tx,
            timeout: app.settings.log_write_timeout,
            pending: BytesMut::new(),
        };
        if let Err(end) = pump(&app, &mut out, from, &token).await {
            tracing::debug!(reason = %end, "log stream ended");
            // Cut the response: a clean end would leave its last bytes waiting on a reader
            // that does not read, holding the connection until its idle timeout.
            if let (End::ReaderStalled(_), Some(conn)) = (&end, conn) {
                conn.drop_connection();
            }
            out.tx.abort(end.to_string().into());
        }
    });
    let mut resp = Response::new(body.boxed());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Why a stream ended early.
#[derive(Debug, thiserror::Error)]
enum End {
    /// The reader took nothing for the write timeout.
    #[error("reader took nothing for {0:?}; dropped")]
    ReaderStalled(Duration),
    /// Anything else (client gone, token revoked, node cut off or stopping, store error).
    #[error("{0}")]
    Other(String),
}

impl From<String> for End {
    fn from(s: String) -> Self {
        End::Other(s)
    }
}

impl From<&str> for End {
    fn from(s: &str) -> Self {
        End::Other(s.to_string())
    }
}

/// The sending side of one stream: lines gathered into bounded frames, each handed over within
/// the write timeout.
struct Out {
    tx: Sender<Bytes, BodyError>,
    timeout: Duration,
    pending: BytesMut,
}

impl Out {
    /// Queues an encoded line: small ones are gathered, a long one goes alone, uncopied.
    async fn line(&mut self, line: Bytes) -> Result<(), End> {
        if line.len() >= FRAME_BUDGET {
            self.flush().await?;
            return self.send(line).await;
        }
        if self.pending.len() + line.len() > FRAME_BUDGET {
            self.flush().await?;
        }
        self.pending.extend_from_slice(&line);
        Ok(())
    }

    /// Encodes and queues an event.
    async fn event(&mut self, ev: &LogEvent) -> Result<(), End> {
        let line = encode_line(ev).map_err(|e| e.to_string())?;
        self.line(line).await
    }

    /// Hands over what is gathered.
    async fn flush(&mut self) -> Result<(), End> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let frame = self.pending.split().freeze();
        self.send(frame).await
    }

    async fn send(&mut self, frame: Bytes) -> Result<(), End> {
        match tokio::time::timeout(self.timeout, self.tx.send_data(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("client went away".into()),
            Err(_) => Err(End::ReaderStalled(self.timeout)),
        }
    }
}

async fn reset(app: &App, out: &mut Out) -> Result<u64, End> {
    let snap = app.state.snapshot();
    if snap.reset_line.is_empty() {
        return Err("no Reset line to send".into());
    }
    out.line(snap.reset_line).await?;
    out.flush().await?;
    snap.index
        .checked_add(1)
        .ok_or_else(|| End::from("snapshot index out of range"))
}

/// Whether the stream's token still works: not revoked, not expired.
fn token_live(app: &App, token: &str) -> bool {
    let now = unix_ms();
    app.state
        .with(|m| m.state.token(token).is_some_and(|t| !t.expired(now)))
}

async fn pump(app: &App, out: &mut Out, from: u64, token: &str) -> Result<(), End> {
    let mut cursor = from.max(1);
    let mut applied_rx = app.state.applied();
    let mut last_beat: Option<(u64, Instant)> = None;
    let mut gaps = 0u32;
    let mut alone_since: Option<Instant> = None;
    loop {
        // The applied index first, then the token: a revocation applied after the check
        // cannot let entries committed after it through.
        let applied = *applied_rx.borrow_and_update();
        if !token_live(app, token) {
            return Err("token revoked or expired".into());
        }
        while cursor <= applied {
            if !token_live(app, token) {
                return Err("token revoked or expired".into());
            }
            if cursor <= app.log.purged_index() {
                cursor = reset(app, out).await?.max(cursor);
                continue;
            }
            // The common case: the entries were applied moments ago and are encoded in memory.
            if let Some(lines) = app.state.recent_lines(cursor, applied) {
                for l in lines {
                    out.line(l).await?;
                }
                out.flush().await?;
                cursor = applied + 1;
                continue;
            }
            let end = (applied + 1).min(cursor.saturating_add(CHUNK));
            let entries = app
                .log
                .entries_limited(cursor, end, READ_BUDGET)
                .await
                .map_err(|e| e.to_string())?;
            if entries.first().map(|e| e.log_id.index) != Some(cursor) {
                // A hole: a snapshot is being installed and the log not purged yet.
                if app.state.snapshot().index >= cursor {
                    cursor = reset(app, out).await?;
                    continue;
                }
                gaps += 1;
                if gaps > GAP_RETRIES {
                    return Err(format!("log has no entry {cursor}").into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            gaps = 0;
            for entry in &entries {
                if entry.log_id.index != cursor {
                    break;
                }
                if let Some(ev) = entry_event(entry) {
                    out.event(&ev).await?;
                }
                cursor += 1;
            }
            out.flush().await?;
        }
        // Every follower entry up to `applied` has been sent (or `from` lies beyond it).
        let caught_up = applied;
        let due = match last_beat {
            None => true,
            Some((idx, at)) => idx != caught_up || at.elapsed() >= HEARTBEAT,
        };
        // No heartbeat from a node cut off from the quorum: its silence is the signal. After a
        // while the stream is closed (the follower has moved on by then).
        let in_quorum = app.in_quorum();
        match (in_quorum, alone_since) {
            (true, _) => alone_since = None,
            (false, None) => alone_since = Some(Instant::now()),
            (false, Some(t)) if t.elapsed() > CLOSE_WHEN_ALONE => {
                return Err("cut off from the quorum".into());
            }
            (false, Some(_)) => {}
        }
        if due && in_quorum {
            out.event(&LogEvent::Heartbeat {
                commit_index: caught_up,
            })
            .await?;
            out.flush().await?;
            last_beat = Some((caught_up, Instant::now()));
        }
        let now = Instant::now();
        let next_beat = match last_beat {
            Some((_, at)) if at + HEARTBEAT > now => at + HEARTBEAT,
            _ => now + HEARTBEAT,
        };
        tokio::select! {
            changed = applied_rx.changed() => {
                if changed.is_err() {
                    return Err("node shutting down".into());
                }
            }
            _ = tokio::time::sleep_until(next_beat) => {}
        }
    }
}
