//! One in-flight upstream fetch, shared by every client that asked for the same object.
//!
//! ```text
//!  fetch ──head──▶ Fill::publish ──▶ waiters wake (Outcome)
//!      │
//!      └─frames─▶ Fill::push ─▶ current chunk pieces ─(chunk full)─▶ storage + window
//!                                   ▲                                     ▲
//!  FillReader(pos) ────────────────┴── reads the newest bytes here       │
//!                   └──────────── lagging readers read chunks from there ┘
//! ```
//!
//! The fetch owns the upstream connection and runs to completion whatever the clients do, so
//! a client that disconnects never aborts the fill for the others: the leader runs it until
//! the outcome is published, and a task of its own runs what is left (`leader_fetch.rs`).
//! Only the fetch publishes the outcome (its drop guard included). While chunks are
//! stored, readers never slow the fetch down: each keeps its own position, reads the newest
//! bytes from the chunk being assembled, recent chunks from a small in-memory window, and
//! older chunks back from storage. Once they are not (a body without a length that outgrew
//! `cache.max_object_size`), memory is all there is, and the fetch waits for the slowest
//! reader before it pushes past the window ([`Fill::wait_for_readers`]). Memory per fill is
//! bounded by the window, not by the object size.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use parking_lot::Mutex;

use super::parts::Behind;
use crate::policy::{AgeClock, StoredPolicy, VariantId, VarySpec};
use crate::storage::{Chunk, ObjectMeta, Storage, WeakChunk};
use crate::upstream::{ResponseBody, UpstreamError};

/// What a shareable response looks like before its body has finished arriving.
#[derive(Debug)]
pub struct FillHead {
    /// Primary cache key.
    pub key: [u8; 32],
    /// Variant the response is stored under.
    pub variant: VariantId,
    /// The response's Vary.
    pub vary: VarySpec,
    /// Status.
    pub status: StatusCode,
    /// Header section as stored (hop-by-hop and private fields removed).
    pub headers: std::sync::Arc<HeaderMap>,
    /// RFC 9111 §4.2.3 inputs.
    pub age: AgeClock,
    /// Freshness rules.
    pub policy: StoredPolicy,
    /// Content-Length announced by the upstream, if any.
    pub length: Option<u64>,
    /// Generation under which its chunks are stored.
    pub generation: u64,
    /// For a response with Vary: the epoch of the Vary head its variant joins. Fills for the
    /// other variants started while it streams use the same one, so concurrent cold variants
    /// all end up under one head.
    pub head_epoch: u64,
    /// Fields withheld from storage (`private="…"`, §5.2.2.7): only the client whose request
    /// started the fill may see them, never a client that joined it.
    pub withheld: HeaderMap,
}

impl FillHead {
    /// The metadata of the object this fill stores, `size` bytes in chunks of `chunk_size`:
    /// what the fill knows of it (the URL, host, tags and purge index are the caller's to add).
    pub(super) fn object_meta(&self, size: u64, chunk_size: u32) -> ObjectMeta {
        ObjectMeta {
            key: self.key,
            variant: self.variant,
            vary: self.vary.clone(),
            head_epoch: self.head_epoch,
            status: self.status,
            headers: self.headers.clone(),
            age: self.age,
            policy: self.policy.clone(),
            url: String::new(),
            host: String::new(),
            tags: Vec::new(),
            purge_index: 0,
            size,
            chunk_size,
            generation: self.generation,
            inline: None,
            present: None,
        }
    }
}

/// What became of the fetch, as seen by a waiting client.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A shareable response is streaming: each client reads it at its own pace.
    Stream(Arc<FillHead>),
    /// The stored object was validated (304) or fully stored: serve it from storage.
    Stored(Arc<ObjectMeta>),
    /// The response may not be shared (not storable). One client may take it; the others
    /// must ask the upstream themselves. `server_error` marks 5xx answers (stale-if-error).
    Private {
        /// The response, until one client takes it.
        slot: Arc<Mutex<Option<Response<ResponseBody>>>>,
        /// 500, 502, 503 or 504: an error for stale-if-error purposes.
        server_error: bool,
        /// Why it is not stored, for Cache-Status `detail=`.
        detail: &'static str,
    },
    /// The upstream could not be reached or failed before a response head.
    Failed(UpstreamError),
}

/// Why a body stream ended early.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FillError {
    /// The upstream failed mid-body.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// The body ended before its Content-Length.
    #[error("upstream body ended after {got} of {want} bytes")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// A reader fell behind the in-memory window and the chunk was no longer in storage.
    #[error("chunk {0} was evicted before a slow reader reached it")]
    Evicted(u32),
    /// Every reader left and the body outgrew `cache.abandoned_fill_max`: the fetch stopped.
    #[error("fill stopped: nobody reads it any more")]
    Abandoned,
}

struct BodyState {
    chunk_size: usize,
    window_chunks: usize,
    /// Chunks fully received.
    completed: u32,
    /// The most recent completed chunks, newest last.
    window: VecDeque<(u32, Chunk)>,
    /// Pieces of the chunk being assembled.
    current: Vec<Bytes>,
    current_len: usize,
    /// Bytes received in total.
    total: u64,
    /// Chunks written to storage (a prefix of the completed ones: writing stops, never
    /// resumes, when the object turns out too large).
    stored_chunks: u32,
    /// `Some` once the body ended.
    end: Option<Result<(), FillError>>,
}

struct State {
    outcome: Option<Outcome>,
    body: BodyState,
}

/// Shared state of one fetch. See the module docs.
pub struct Fill {
    state: Mutex<State>,
    /// Woken on every change readers wait for (outcome, bytes, end). A plain `Notify`, not a
    /// watch channel: a watch wakes through eight of them, and a miss changes a fill several
    /// times.
    changed: tokio::sync::Notify,
    storage: Storage,
    /// Clients waiting for the outcome or reading the body ([`Interest`]).
    interest: AtomicUsize,
    /// Whether completed chunks are written to storage.
    storing: AtomicBool,
    /// Where each reader is: once chunks are no longer stored, the fetch waits for the
    /// slowest one (see [`Fill::wait_for_readers`]).
    readers: Mutex<Vec<Arc<AtomicU64>>>,
    /// Readers moved on (only signalled while not storing).
    progress: tokio::sync::Notify,
}

/// A client's interest in a fill: while any is held, the fill is not abandoned.
pub struct Interest(Arc<Fill>);

impl Drop for Interest {
    fn drop(&mut self) {
        self.0.interest.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill").finish_non_exhaustive()
    }
}

impl Fill {
    /// A fill whose body is cut into `chunk_size` chunks, keeping `window_chunks` in memory.
    pub fn new(storage: Storage, chunk_size: usize, window_chunks: usize) -> Arc<Self> {
        Arc::new(Fill {
            state: Mutex::new(State {
                outcome: None,
                body: BodyState {
                    chunk_size: chunk_size.max(1),
                    window_chunks: window_chunks.max(1),
                    completed: 0,
                    window: VecDeque::new(),
                    current: Vec::new(),
                    current_len: 0,
                    total: 0,
                    stored_chunks: 0,
                    end: None,
                },
            }),
            changed: tokio::sync::Notify::new(),
            storage,
            interest: AtomicUsize::new(0),
            storing: AtomicBool::new(true),
            readers: Mutex::new(Vec::new()),
            progress: tokio::sync::Notify::new(),
        })
    }

    /// The position of the slowest reader, if any reads or is about to.
    fn slowest_reader(&self) -> Option<u64> {
        let readers = self.readers.lock();
        // A client that asked but has not made its reader yet starts from the first byte
        // (or later, for a range): counted as at 0 until it reads.
        if self.interest.load(Ordering::Relaxed) > readers.len() {
            return Some(0);
        }
        readers.iter().map(|p| p.load(Ordering::Relaxed)).min()
    }

    /// Once chunks are no longer stored, readers find the body only in memory (the window
    /// of recent chunks and the chunk being assembled): before pushing `next` more bytes, the
    /// fetch waits until the slowest reader is close enough that it will still find its
    /// bytes there, so a slow client slows the upstream instead of losing part of its body.
    /// Gives up after `patience` (the upstream would time out anyway); a reader still behind
    /// then ends with an error, as before.
    pub async fn wait_for_readers(&self, next: usize, patience: std::time::Duration) {
        let (received, room) = {
            let st = self.state.lock();
            let b = &st.body;
            (b.total, (b.window_chunks * b.chunk_size) as u64)
        };
        let next = next as u64;
        if next >= room {
            return;
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let notified = self.progress.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.slowest_reader() {
                Some(p) if received + next - p.min(received) > room && !self.abandoned() => {}
                _ => return,
            }
            let tick =
                (tokio::time::Instant::now() + std::time::Duration::from_millis(100)).min(deadline);
            if tokio::time::timeout_at(tick, notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return;
            }
        }
    }

    /// Registers a client's interest (dropped when the client goes away).
    pub fn interest(self: &Arc<Self>) -> Interest {
        self.interest.fetch_add(1, Ordering::Relaxed);
        Interest(self.clone())
    }

    /// Whether no client waits for or reads this fill any more.
    pub fn abandoned(&self) -> bool {
        self.interest.load(Ordering::Relaxed) == 0
    }

    /// Whether completed chunks are still written to storage.
    pub fn storing(&self) -> bool {
        self.storing.load(Ordering::Relaxed)
    }

    /// Stops writing chunks (the object is too large, or will not be stored) and returns how
    /// many were written, for the caller to delete.
    pub fn stop_storing(&self) -> u32 {
        let st = self.state.lock();
        self.storing.store(false, Ordering::Relaxed);
        st.body.stored_chunks
    }

    fn bump(&self) {
        self.changed.notify_waiters();
    }

    /// Waits for the next change of the fill if `unchanged()` still holds once the wait is
    /// registered (so a change between the caller's look and the wait is never missed).
    async fn wait_unless_moved(&self, unchanged: impl Fn() -> bool) {
        let notified = self.changed.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if unchanged() {
            notified.await;
        }
    }

    /// Announces what the fetch produced. Called once, by the fetch (or its drop guard).
    pub fn publish(&self, outcome: Outcome) {
        self.state.lock().outcome = Some(outcome);
        self.bump();
    }

    /// Whether the fetch has published its outcome.
    pub fn has_outcome(&self) -> bool {
        self.state.lock().outcome.is_some()
    }

    /// Waits until the fetch has published its outcome.
    pub async fn outcome(&self) -> Outcome {
        loop {
            if let Some(o) = self.state.lock().outcome.clone() {
                return o;
            }
            self.wait_unless_moved(|| self.state.lock().outcome.is_none())
                .await;
        }
    }

    /// Appends body bytes. Completed chunks are stored (when `store` is set) under
    /// `(key, variant, generation)`.
    pub fn push(&self, mut data: Bytes, head: &FillHead) {
        {
            let mut st = self.state.lock();
            let b = &mut st.body;
            while !data.is_empty() {
                let room = b.chunk_size - b.current_len;
                let piece = data.split_to(room.min(data.len()));
                b.current_len += piece.len();
                b.total += piece.len() as u64;
                b.current.push(piece);
                if b.current_len == b.chunk_size {
                    self.complete_chunk(b, head);
                }
            }
        }
        self.bump();
    }

    fn complete_chunk(&self, b: &mut BodyState, head: &FillHead) {
        let chunk = Chunk::copy_from_pieces(b.current.iter().map(|p| &p[..]));
        b.current.clear();
        b.current_len = 0;
        let index = b.completed;
        if self.storing() {
            self.storage.put_chunk(
                &head.key,
                &head.variant,
                head.generation,
                index,
                chunk.clone(),
            );
            b.stored_chunks = index + 1;
        }
        b.window.push_back((index, chunk));
        while b.window.len() > b.window_chunks {
            b.window.pop_front();
        }
        b.completed += 1;
    }

    /// Completes the last chunk of a body that ended with `result`, without telling readers
    /// yet: the caller stores the object first, then calls [`Fill::end`], so a client that has
    /// read the last byte and asks again finds the object stored. Returns the whole body when
    /// it fits in `inline_max` bytes (small objects are stored inline, without chunks).
    pub fn seal(
        &self,
        result: &Result<(), FillError>,
        head: &FillHead,
        inline_max: usize,
    ) -> FinishedBody {
        let mut st = self.state.lock();
        let b = &mut st.body;
        match result {
            Ok(()) if b.completed == 0 && b.current_len <= inline_max => {
                FinishedBody::Inline(concat(b.current.clone()))
            }
            Ok(()) => {
                if b.current_len > 0 {
                    self.complete_chunk(b, head);
                }
                FinishedBody::Chunked
            }
            Err(_) => FinishedBody::Failed,
        }
    }

    /// The whole body, once it has ended well within its first chunk (a small object whose
    /// fetch completed before its readers started): a reader can take it in one piece.
    pub fn whole_body(&self) -> Option<Bytes> {
        let st = self.state.lock();
        let b = &st.body;
        match (&b.end, b.completed, b.current.as_slice()) {
            (Some(Ok(())), 0, [one]) => Some(one.clone()),
            (Some(Ok(())), 0, pieces) => Some(concat(pieces.to_vec())),
            _ => None,
        }
    }

    /// Tells readers the body is over (successfully or not).
    pub fn end(&self, result: Result<(), FillError>) {
        self.state.lock().body.end = Some(result);
        self.bump();
    }

    /// Resolves everything still open with an error: called when the fetch task goes away
    /// without finishing (a panic, a runtime shutting down), so no reader waits forever.
    pub fn abandon(&self) {
        {
            let mut st = self.state.lock();
            let abandoned = || UpstreamError::Protocol("fill abandoned".into());
            if st.outcome.is_none() {
                st.outcome = Some(Outcome::Failed(abandoned()));
            }
            if st.body.end.is_none() {
                st.body.end = Some(Err(FillError::Upstream(abandoned())));
            }
        }
        self.bump();
    }

    /// Whether the body is over.
    pub fn ended(&self) -> bool {
        self.state.lock().body.end.is_some()
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.state.lock().body.total
    }
}

/// How the body ended, for building the stored metadata.
#[derive(Debug)]
pub enum FinishedBody {
    /// Small enough to live in the metadata entry.
    Inline(Bytes),
    /// Stored in chunks.
    Chunked,
    /// The body failed: nothing to store.
    Failed,
}

/// Joins an inline body's pieces into one exact-size buffer. Even a single piece is copied: it
/// is a slice of the upstream connection's read buffer, and stored as it is it would keep that
/// whole buffer alive for as long as the object stays cached.
fn concat(pieces: Vec<Bytes>) -> Bytes {
    let len = pieces.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(len);
    for p in pieces {
        out.extend_from_slice(&p);
    }
    Bytes::from(out)
}

/// One client's position in a fill's body, reading `[pos, end)`.
pub struct FillReader {
    fill: Arc<Fill>,
    head: Arc<FillHead>,
    pos: u64,
    end: Option<u64>,
    /// For a reader that falls behind the window: how to fetch a chunk that storage no longer
    /// holds by range (see `parts::Behind`); without it such a reader's response is cut short.
    behind: Option<Behind>,
    /// This reader's position as the fill sees it.
    at: Arc<AtomicU64>,
    /// The stored chunk this reader is walking, held weakly (see `storage::Chunk`).
    held: Option<WeakChunk>,
    _interest: Interest,
}

impl Drop for FillReader {
    fn drop(&mut self) {
        self.fill
            .readers
            .lock()
            .retain(|p| !Arc::ptr_eq(p, &self.at));
        self.fill.progress.notify_waiters();
    }
}

enum Step {
    Data(Bytes),
    FromStorage(u32, u64),
    Wait,
    Done,
    Fail(FillError),
}

impl FillReader {
    /// Reads from byte `start` up to `end` (exclusive; `None`: to the end of the body).
    pub fn new(
        fill: Arc<Fill>,
        head: Arc<FillHead>,
        start: u64,
        end: Option<u64>,
        behind: Option<Behind>,
    ) -> Self {
        let interest = fill.interest();
        let at = Arc::new(AtomicU64::new(start));
        fill.readers.lock().push(at.clone());
        FillReader {
            fill,
            head,
            pos: start,
            end,
            behind,
            at,
            held: None,
            _interest: interest,
        }
    }

    /// Moves the reader on by `n` bytes, telling a fetch that waits for it.
    fn advance(&mut self, n: usize) {
        self.pos += n as u64;
        self.at.store(self.pos, Ordering::Relaxed);
        if !self.fill.storing() {
            self.fill.progress.notify_waiters();
        }
    }

    fn step(&self) -> Step {
        if self.end.is_some_and(|e| self.pos >= e) {
            return Step::Done;
        }
        let st = self.fill.state.lock();
        let b = &st.body;
        let cs = b.chunk_size as u64;
        // A body that ended mid-chunk had its short last chunk completed: the completed chunks
        // hold `total` bytes then, not a whole number of chunks (counted as whole, a reader at
        // the end would find an empty piece of the last chunk, again and again).
        let completed_bytes = (u64::from(b.completed) * cs).min(b.total);
        let limit = |avail: u64| self.end.map_or(avail, |e| avail.min(e - self.pos));
        if self.pos < completed_bytes {
            let index = (self.pos / cs) as u32;
            let offset = (self.pos % cs) as usize;
            if let Some((_, chunk)) = b.window.iter().find(|(i, _)| *i == index) {
                let n = limit((chunk.len() - offset) as u64) as usize;
                return Step::Data(chunk.frame(offset, n));
            }
            return Step::FromStorage(index, offset as u64);
        }
        if self.pos < b.total {
            let mut offset = (self.pos - completed_bytes) as usize;
            for piece in &b.current {
                if offset < piece.len() {
                    let n = limit((piece.len() - offset) as u64) as usize;
                    return Step::Data(piece.slice(offset..offset + n));
                }
                offset -= piece.len();
            }
        }
        match &b.end {
            // A fill that fetched the first slice of a larger object (`cache.slice_threshold`)
            // ends before the body does: the rest is read chunk by chunk, fetched by range.
            Some(Ok(())) if self.head.length.is_some_and(|len| self.pos < len) => {
                Step::FromStorage((self.pos / cs) as u32, self.pos % cs)
            }
            Some(Ok(())) => Step::Done,
            Some(Err(e)) => Step::Fail(e.clone()),
            None => Step::Wait,
        }
    }

    /// Whether `piece` would complete a body of known length before the fill has ended. The
    /// last bytes are held back until then, so a client that has read the whole body and asks
    /// again finds the object stored (the fill stores it before it ends).
    fn holds_back(&self, piece: usize) -> bool {
        self.head
            .length
            .is_some_and(|len| self.pos + piece as u64 == len)
            && !self.fill.ended()
    }

    /// The next piece of body, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, FillError>> {
        loop {
            match self.step() {
                Step::Data(d) if self.holds_back(d.len()) => {
                    let len = d.len();
                    self.fill.wait_unless_moved(|| self.holds_back(len)).await;
                }
                Step::Data(d) => {
                    self.advance(d.len());
                    return Some(Ok(d));
                }
                Step::Done => return None,
                Step::Fail(e) => return Some(Err(e)),
                Step::Wait => {
                    self.fill
                        .wait_unless_moved(|| matches!(self.step(), Step::Wait))
                        .await;
                }
                Step::FromStorage(index, offset) => {
                    // Only a completed chunk was ever written.
                    let written = index < self.fill.state.lock().body.completed;
                    let still = self.held.take().and_then(|w| w.upgrade(index));
                    let chunk = if still.is_some() {
                        still
                    } else if written {
                        self.fill
                            .storage
                            .chunk_raw(
                                &self.head.key,
                                &self.head.variant,
                                self.head.generation,
                                index,
                            )
                            .await
                    } else {
                        None
                    };
                    let chunk = match (chunk, &self.behind) {
                        (Some(c), _) => Some(c),
                        (None, Some(behind)) => {
                            // Past the end of a sliced fill, the next chunk is fetched while
                            // this one is sent.
                            let sliced = !written && self.fill.ended();
                            let next = index.saturating_add(1);
                            let cs = self.fill.state.lock().body.chunk_size as u64;
                            if sliced && self.end.is_none_or(|e| u64::from(next) * cs < e) {
                                behind.prefetch(next);
                            }
                            behind.chunk(index).await
                        }
                        (None, None) => None,
                    };
                    let Some(chunk) = chunk else {
                        return Some(Err(FillError::Evicted(index)));
                    };
                    let offset = offset as usize;
                    let mut n = chunk.len().saturating_sub(offset);
                    if let Some(e) = self.end {
                        n = n.min((e - self.pos) as usize);
                    }
                    // One segment at most, and the chunk only held weakly: see `storage::Chunk`.
                    let d = chunk.frame(offset, n);
                    self.held = Some(chunk.downgrade(index));
                    self.advance(d.len());
                    return Some(Ok(d));
                }
            }
        }
    }
}
