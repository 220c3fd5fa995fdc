//! Hybrid RAM + disk storage of cached responses, on foyer.
//!
//! Objects are stored as one metadata entry plus fixed-size body chunks (DESIGN.md §3), so a
//! large object never has to fit one foyer block and a reader can start at any chunk. Small
//! bodies are inlined in the metadata entry. Both tiers are bounded by their configured sizes;
//! the disk tier is written on insertion and recovered when a node restarts on the same
//! directory. An entry read back from disk whose blake3 does not match (each carries its own),
//! or written by an earlier format, is dropped and reported missing, never served.

mod chunk;
mod chunkset;
mod entry;
mod meta;

use std::path::PathBuf;
use std::sync::Arc;

use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, RecoverMode,
};

pub use chunk::{Chunk, ChunkBuilder, SEGMENT, WeakChunk};
pub use chunkset::ChunkSet;
pub use entry::{Entry, EntryKey, VaryHead};
pub use meta::{CorruptMeta, ENTRY_OVERHEAD, ObjectMeta, headers_weight, owned_headers};

use crate::policy::{VariantId, VarySpec};

/// How to build the storage.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Memory tier capacity in bytes.
    pub memory_bytes: usize,
    /// Disk tier directory and capacity in bytes; `None` for memory only.
    pub disk: Option<(PathBuf, usize)>,
    /// Largest chunk that will be stored (sizes the disk blocks).
    pub max_chunk_bytes: usize,
}

/// Why the storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk directory could not be created or used.
    #[error("disk cache {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// foyer refused to open the cache.
    #[error("cache storage: {0}")]
    Foyer(#[from] foyer::Error),
    /// The disk tier is too small for even a few blocks of the configured chunk size.
    #[error("disk cache size {size} is too small: it must hold at least {min} bytes")]
    TooSmall {
        /// Configured size.
        size: usize,
        /// Minimum.
        min: usize,
    },
}

/// What a lookup of a URL's head entry found.
#[derive(Debug, Clone)]
pub enum Head {
    /// Nothing stored for the URL.
    Missing,
    /// The URL's single stored response (it has no Vary).
    Object(Arc<ObjectMeta>),
    /// Responses for the URL vary; look up the variant.
    Vary(Arc<VaryHead>),
}

/// The cache's storage: a foyer hybrid cache of [`Entry`] values.
#[derive(Clone)]
pub struct Storage {
    cache: HybridCache<EntryKey, Entry>,
    hybrid: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("hybrid", &self.hybrid)
            .finish()
    }
}

/// Disk block size: foyer's unit of eviction and the largest entry it can hold.
fn block_size(max_chunk: usize) -> usize {
    (max_chunk * 2 + 64 * 1024)
        .max(4 * 1024 * 1024)
        .next_power_of_two()
}

impl Storage {
    /// Opens the storage, recovering the disk tier if its directory holds one.
    pub async fn open(opts: StorageOptions) -> Result<Self, StorageError> {
        let builder = HybridCacheBuilder::<EntryKey, Entry>::new()
            .with_name("tiercel")
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .with_flush_on_close(true)
            .memory(opts.memory_bytes.max(1))
            .with_weighter(|_k: &EntryKey, v: &Entry| v.weight())
            .storage();
        let cache = match &opts.disk {
            None => builder.build().await?,
            Some((dir, size)) => {
                let block = block_size(opts.max_chunk_bytes);
                let min = block * 4;
                if *size < min {
                    return Err(StorageError::TooSmall { size: *size, min });
                }
                std::fs::create_dir_all(dir).map_err(|source| StorageError::Dir {
                    path: dir.clone(),
                    source,
                })?;
                let device = FsDeviceBuilder::new(dir).with_capacity(*size).build()?;
                let engine = BlockEngineConfig::new(device)
                    .with_block_size(block)
                    .with_tombstone_log(true);
                builder
                    .with_engine_config(engine)
                    .with_recover_mode(RecoverMode::Quiet)
                    .build()
                    .await?
            }
        };
        let hybrid = cache.is_hybrid();
        Ok(Storage { cache, hybrid })
    }

    /// Whether a disk tier is configured.
    pub fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    async fn get(&self, key: &EntryKey) -> Option<Entry> {
        // Without a disk tier, memory is all there is: asked directly, a miss is settled at
        // once, where the hybrid lookup would spawn a task to ask a disk that is not there
        // (a third of a miss's storage cost).
        let found = if self.cache.is_hybrid() {
            self.cache.get(key).await
        } else {
            Ok(self.cache.memory().get(key))
        };
        match found {
            Ok(Some(e)) => match e.value() {
                Entry::Unreadable(why) => {
                    tracing::warn!(key = %hex(&key.0), why, "stored entry unreadable; dropped");
                    self.cache.remove(key);
                    None
                }
                value => Some(value.clone()),
            },
            Ok(None) => None,
            Err(error) => {
                // foyer's own checksum failed, or the read did: the entry is of no use.
                tracing::warn!(%error, key = %hex(&key.0), "cache read failed; entry dropped");
                self.cache.remove(key);
                None
            }
        }
    }

    /// The head entry of a URL.
    pub async fn head(&self, key: &[u8; 32]) -> Head {
        match self.get(&EntryKey::head(key)).await {
            Some(Entry::Object(m)) if m.key == *key => Head::Object(m),
            Some(Entry::Vary(v)) => Head::Vary(v),
            _ => Head::Missing,
        }
    }

    /// The stored response for one variant of a URL with Vary, if it belongs to `head`.
    pub async fn variant(
        &self,
        key: &[u8; 32],
        head: &VaryHead,
        variant: &VariantId,
    ) -> Option<Arc<ObjectMeta>> {
        match self.get(&EntryKey::variant(key, variant)).await {
            Some(Entry::Object(m))
                if m.key == *key && m.variant == *variant && m.head_epoch == head.epoch =>
            {
                Some(m)
            }
            _ => None,
        }
    }

    /// Body chunk `index` of a stored response. `None` when evicted or damaged (checked
    /// against the blake3 it was stored with when it comes back from disk, and then removed).
    pub async fn chunk(&self, meta: &ObjectMeta, index: u32) -> Option<Chunk> {
        if u64::from(index) >= meta.chunk_count() {
            return None;
        }
        self.chunk_raw(&meta.key, &meta.variant, meta.generation, index)
            .await
    }

    /// Like [`Storage::chunk`], for a body still being filled (no metadata stored yet).
    pub async fn chunk_raw(
        &self,
        key: &[u8; 32],
        variant: &VariantId,
        generation: u64,
        index: u32,
    ) -> Option<Chunk> {
        match self
            .get(&EntryKey::chunk(key, variant, generation, index))
            .await
        {
            Some(Entry::Chunk(chunk)) => Some(chunk),
            _ => None,
        }
    }

    /// Inserts one entry. Without a disk tier it goes to the memory tier directly: the hybrid
    /// insert would also hand it to a disk store that is not there (hashing it, weighing it and
    /// reading the clock four times: about 900 instructions a miss).
    fn insert(&self, key: EntryKey, entry: Entry) {
        if self.hybrid {
            self.cache.insert(key, entry);
        } else {
            self.cache.memory().insert(key, entry);
        }
    }

    /// Stores one body chunk of a response being filled.
    pub fn put_chunk(
        &self,
        key: &[u8; 32],
        variant: &VariantId,
        generation: u64,
        index: u32,
        chunk: Chunk,
    ) {
        self.insert(
            EntryKey::chunk(key, variant, generation, index),
            Entry::Chunk(chunk),
        );
    }

    /// Makes a stored response visible to lookups: its chunks must already be stored. For a
    /// response with Vary, `meta.head_epoch` names the head it joins (see [`VaryHead`]), and
    /// `variants` is how many variants that head then holds (ignored without Vary).
    pub fn put_object(&self, meta: Arc<ObjectMeta>, variants: u32) {
        let key = meta.key;
        match &meta.vary {
            VarySpec::Fields(_) => {
                let head = VaryHead {
                    vary: meta.vary.clone(),
                    epoch: meta.head_epoch,
                    variants,
                };
                self.insert(EntryKey::head(&key), Entry::Vary(Arc::new(head)));
                self.insert(EntryKey::variant(&key, &meta.variant), Entry::Object(meta));
            }
            _ => {
                self.insert(EntryKey::head(&key), Entry::Object(meta));
            }
        }
    }

    /// Removes one stored response (its chunks are left to eviction: nothing references them).
    pub fn remove_object(&self, meta: &ObjectMeta) {
        match &meta.vary {
            VarySpec::Fields(_) => self
                .cache
                .remove(&EntryKey::variant(&meta.key, &meta.variant)),
            _ => self.cache.remove(&EntryKey::head(&meta.key)),
        }
    }

    /// Removes chunks `0..count` of one generation (a fill that will not be stored).
    pub fn remove_chunks(&self, key: &[u8; 32], variant: &VariantId, generation: u64, count: u32) {
        for index in 0..count {
            self.cache
                .remove(&EntryKey::chunk(key, variant, generation, index));
        }
    }

    /// Removes every variant of a URL by dropping its head entry.
    pub fn remove_url(&self, key: &[u8; 32]) {
        self.cache.remove(&EntryKey::head(key));
    }

    /// Bytes used by the memory tier.
    pub fn memory_usage(&self) -> usize {
        self.cache.memory().usage()
    }

    /// Flushes and closes the storage (call on shutdown so the disk tier recovers fully).
    pub async fn close(&self) -> Result<(), foyer::Error> {
        self.cache.close().await
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
