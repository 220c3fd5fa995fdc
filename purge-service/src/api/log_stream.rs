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

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use http_body_util::channel::{Channel, Sender};
use tiercel_cluster::purge::wire::LogEvent;
use tokio::time::Instant;

use super::response::Failure;
use super::{Answer, ApiRequest};
use crate::app::App;
use crate::state::events::{encode_line, entry_event};

/// Heartbeat period. The contract is "at least every second"; half that leaves margin for
/// scheduling and network jitter, so a follower never sees a gap over a second (followers
/// reconnect after 3 s of silence, and may treat shorter silences as lag).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// A stream on a node cut off from the quorum is closed after this long without heartbeats.
const CLOSE_WHEN_ALONE: Duration = Duration::from_secs(5);
/// Entries read from the store per step.
const CHUNK: u64 = 512;
/// Retries when the log has a hole not yet explained by a snapshot (a snapshot being
/// installed), before the stream is ended and the follower reconnects.
const GAP_RETRIES: u32 = 40;

/// Starts the stream.
pub async fn stream(app: Arc<App>, req: &ApiRequest) -> Answer {
    let from = match req.query("from") {
        None | Some("") => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            Failure::BadRequest(format!("from: {v:?} is not a non-negative integer"))
        })?,
    };
    let (tx, body) = Channel::<Bytes, Infallible>::new(8);
    tokio::spawn(async move {
        if let Err(reason) = pump(app, tx, from).await {
            tracing::debug!(%reason, "log stream ended");
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

fn line(buf: &mut BytesMut, ev: &LogEvent) -> Result<(), String> {
    buf.extend_from_slice(&encode_line(ev).map_err(|e| e.to_string())?);
    Ok(())
}

async fn send(tx: &mut Sender<Bytes, Infallible>, buf: BytesMut) -> Result<(), String> {
    if buf.is_empty() {
        return Ok(());
    }
    tx.send_data(buf.freeze())
        .await
        .map_err(|_| "client went away".to_string())
}

async fn reset(app: &App, tx: &mut Sender<Bytes, Infallible>) -> Result<u64, String> {
    let snap = app.state.snapshot();
    let mut buf = BytesMut::new();
    line(
        &mut buf,
        &LogEvent::Reset {
            snapshot_index: snap.index,
            services: snap.services,
        },
    )?;
    send(tx, buf).await?;
    Ok(snap.index + 1)
}

async fn pump(app: Arc<App>, mut tx: Sender<Bytes, Infallible>, from: u64) -> Result<(), String> {
    let mut cursor = from.max(1);
    let mut applied_rx = app.state.applied();
    let mut last_beat: Option<(u64, Instant)> = None;
    let mut gaps = 0u32;
    let mut alone_since: Option<Instant> = None;
    loop {
        let applied = *applied_rx.borrow_and_update();
        while cursor <= applied {
            if cursor <= app.log.purged_index() {
                cursor = reset(&app, &mut tx).await?.max(cursor);
                continue;
            }
            // The common case: the entries were applied moments ago and are encoded in memory.
            if let Some(lines) = app.state.recent_lines(cursor, applied) {
                let mut buf = BytesMut::new();
                for l in &lines {
                    buf.extend_from_slice(l);
                }
                send(&mut tx, buf).await?;
                cursor = applied + 1;
                continue;
            }
            let end = (applied + 1).min(cursor + CHUNK);
            let entries = app
                .log
                .entries(cursor, end)
                .await
                .map_err(|e| e.to_string())?;
            if entries.first().map(|e| e.log_id.index) != Some(cursor) {
                // A hole: a snapshot is being installed and the log not purged yet.
                if app.state.snapshot().index >= cursor {
                    cursor = reset(&app, &mut tx).await?;
                    continue;
                }
                gaps += 1;
                if gaps > GAP_RETRIES {
                    return Err(format!("log has no entry {cursor}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            gaps = 0;
            let mut buf = BytesMut::new();
            for entry in &entries {
                if entry.log_id.index != cursor {
                    break;
                }
                if let Some(ev) = entry_event(entry) {
                    line(&mut buf, &ev)?;
                }
                cursor += 1;
            }
            send(&mut tx, buf).await?;
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
            let mut buf = BytesMut::new();
            line(
                &mut buf,
                &LogEvent::Heartbeat {
                    commit_index: caught_up,
                },
            )?;
            send(&mut tx, buf).await?;
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
