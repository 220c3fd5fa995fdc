//! What is stored about one cached response besides its body.
//!
//! One [`ObjectMeta`] describes one variant of one URL: the stored header section, the RFC 9111
//! inputs computed when it arrived ([`AgeClock`], [`StoredPolicy`]), what purges match on (URL,
//! host, tags, the purge-log index at store time) and how its body is laid out (inline, or in
//! fixed-size chunks, each entry carrying its own blake3: see `entry.rs`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::ChunkSet;
use crate::policy::{AgeClock, StoredPolicy, VariantId, VarySpec};

/// One stored response (one variant of one URL).
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// The primary cache key (URL + key rules).
    pub key: [u8; 32],
    /// Which variant of the URL this is (derived from the request's selecting header fields).
    pub variant: VariantId,
    /// The response's Vary, as stored.
    pub vary: VarySpec,
    /// For responses with Vary: the epoch of the head entry this variant belongs to.
    pub head_epoch: u64,
    /// Response status.
    pub status: StatusCode,
    /// The stored header section: hop-by-hop and `private="…"` fields already removed.
    pub headers: std::sync::Arc<HeaderMap>,
    /// RFC 9111 §4.2.3 inputs.
    pub age: AgeClock,
    /// Freshness and revalidation rules computed from the headers.
    pub policy: StoredPolicy,
    /// Scheme-less normalised URL, as purges name it.
    pub url: String,
    /// Normalised host, for host purges.
    pub host: String,
    /// Surrogate keys from `Surrogate-Key` / `Cache-Tag`, for tag purges.
    pub tags: Vec<String>,
    /// Purge-log index applied when the fill started: rules with a higher index invalidate it.
    pub purge_index: u64,
    /// Body length in bytes.
    pub size: u64,
    /// Chunk size the body was split with (kept per object so a config change cannot misread it).
    pub chunk_size: u32,
    /// Distinguishes this fill's chunks from any earlier or later body stored under the same
    /// key, so a metadata entry can never be combined with another response's chunks.
    pub generation: u64,
    /// Small bodies live in the metadata entry itself: one lookup per hit.
    pub inline: Option<Bytes>,
    /// For an object stored in part (filled by ranges): the chunks stored when this entry was
    /// written. A chunk missing from storage is fetched, whatever this says; `None` when the
    /// whole body is stored.
    pub present: Option<ChunkSet>,
}

impl ObjectMeta {
    /// Number of chunks the body occupies (0 when inline or empty).
    pub fn chunk_count(&self) -> u64 {
        if self.inline.is_some() || self.chunk_size == 0 {
            0
        } else {
            self.size.div_ceil(u64::from(self.chunk_size))
        }
    }

    /// Bytes of memory this entry holds, for the memory tier's weigher: every heap field plus
    /// the fixed costs of one cache entry, so `--memory-cache` bounds what the process holds,
    /// not just the bodies (a tag-heavy or header-heavy object weighs what it costs).
    pub fn weight(&self) -> usize {
        ENTRY_OVERHEAD
            + std::mem::size_of::<ObjectMeta>()
            + headers_weight(&self.headers)
            + vary_weight(&self.vary)
            + self.url.capacity()
            + self.host.capacity()
            + strings_weight(&self.tags)
            + strings_weight(&self.policy.no_cache_fields)
            + self.inline.as_ref().map_or(0, Bytes::len)
            + self.present.as_ref().map_or(0, ChunkSet::weight)
    }
}

/// What one cache entry costs besides its value's own fields: foyer's record and index slot,
/// the `Arc`, the 32-byte key and the allocator's headers of the value's allocations (measured:
/// see `memory_bounds.rs`).
pub const ENTRY_OVERHEAD: usize = 256;

/// Bytes a header section holds: per field the map's bucket and index slot, the value's own
/// allocation and the name when it is not a standard (static) one.
pub fn headers_weight(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| 96 + n.as_str().len() + v.len())
        .sum()
}

/// Bytes a Vary list holds.
pub fn vary_weight(vary: &VarySpec) -> usize {
    match vary {
        VarySpec::Fields(fields) => strings_weight(fields),
        _ => 0,
    }
}

fn strings_weight(list: &[String]) -> usize {
    list.iter()
        .map(|s| std::mem::size_of::<String>() + 16 + s.capacity())
        .sum()
}

/// A copy of `headers` whose values live in one exact-size buffer of their own, behind an
/// `Arc` (the fill's head and the stored object share it). Header values parsed by hyper are
/// slices of its read buffer: stored as they are, each would keep that whole buffer
/// (kilobytes, shared with the body) alive for as long as the object is cached. One buffer for
/// all of them rather than one each: two allocations instead of two per field (a copied
/// value's first clone allocates its shared count).
pub fn owned_headers(headers: &HeaderMap) -> std::sync::Arc<HeaderMap> {
    let mut buf = Vec::with_capacity(headers.values().map(HeaderValue::len).sum());
    for value in headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let buf = bytes::Bytes::from(buf);
    // The map's structure cloned as it is (no field hashed again), then each value swapped for
    // its copy: `values_mut` walks the lines in the order `values` did.
    let mut out = headers.clone();
    let mut at = 0;
    for value in out.values_mut() {
        let end = at + value.len();
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(buf.slice(at..end)) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
        at = end;
    }
    std::sync::Arc::new(out)
}

/// The serialised form of [`ObjectMeta`]; header fields as (name, raw value bytes) pairs.
#[derive(Serialize, Deserialize)]
pub(crate) struct MetaWire {
    key: [u8; 32],
    variant: VariantId,
    vary: VarySpec,
    head_epoch: u64,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    age: AgeClock,
    policy: StoredPolicy,
    url: String,
    host: String,
    tags: Vec<String>,
    purge_index: u64,
    size: u64,
    chunk_size: u32,
    generation: u64,
    inline: Option<Vec<u8>>,
    present: Option<ChunkSet>,
}

impl From<&ObjectMeta> for MetaWire {
    fn from(m: &ObjectMeta) -> Self {
        MetaWire {
            key: m.key,
            variant: m.variant,
            vary: m.vary.clone(),
            head_epoch: m.head_epoch,
            status: m.status.as_u16(),
            headers: m
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            age: m.age,
            policy: m.policy.clone(),
            url: m.url.clone(),
            host: m.host.clone(),
            tags: m.tags.clone(),
            purge_index: m.purge_index,
            size: m.size,
            chunk_size: m.chunk_size,
            generation: m.generation,
            inline: m.inline.as_ref().map(|b| b.to_vec()),
            present: m.present.clone(),
        }
    }
}

/// A stored metadata entry that cannot be turned back into an [`ObjectMeta`].
#[derive(Debug, thiserror::Error)]
#[error("corrupt metadata entry: {0}")]
pub struct CorruptMeta(pub &'static str);

impl TryFrom<MetaWire> for ObjectMeta {
    type Error = CorruptMeta;

    fn try_from(w: MetaWire) -> Result<Self, CorruptMeta> {
        let status = StatusCode::from_u16(w.status).map_err(|_| CorruptMeta("status"))?;
        let mut headers = HeaderMap::with_capacity(w.headers.len());
        for (name, value) in w.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| CorruptMeta("header name"))?;
            let value = HeaderValue::from_bytes(&value).map_err(|_| CorruptMeta("header value"))?;
            headers.append(name, value);
        }
        let inline_len = w.inline.as_ref().map(|b| b.len() as u64);
        match inline_len {
            Some(len) if len != w.size => return Err(CorruptMeta("inline length")),
            None if w.chunk_size == 0 => return Err(CorruptMeta("chunk layout")),
            _ => {}
        }
        if let Some(p) = &w.present {
            let chunks = w.size.div_ceil(u64::from(w.chunk_size.max(1)));
            if w.inline.is_some() || !p.is_valid() || u64::from(p.len()) != chunks {
                return Err(CorruptMeta("chunk set"));
            }
        }
        Ok(ObjectMeta {
            key: w.key,
            variant: w.variant,
            vary: w.vary,
            head_epoch: w.head_epoch,
            status,
            headers: std::sync::Arc::new(headers),
            age: w.age,
            policy: w.policy,
            url: w.url,
            host: w.host,
            tags: w.tags,
            purge_index: w.purge_index,
            size: w.size,
            chunk_size: w.chunk_size,
            generation: w.generation,
            // Exact size: a decoded Vec may have grown past its length.
            inline: w.inline.map(|b| Bytes::copy_from_slice(&b)),
            present: w.present,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_headers_copy_every_line_in_order_with_its_sensitivity() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-b", HeaderValue::from_static(""));
        h.append("x-a", HeaderValue::from_static("two, 2"));
        let mut secret = HeaderValue::from_static("s3cr3t");
        secret.set_sensitive(true);
        h.append("set-cookie", secret);
        // Values that are slices of one read buffer, as hyper hands them out.
        let read = bytes::Bytes::from_static(b"..........abc..........xyz..........");
        h.append(
            "x-c",
            HeaderValue::from_maybe_shared(read.slice(10..13)).unwrap(),
        );
        h.append(
            "x-d",
            HeaderValue::from_maybe_shared(read.slice(23..26)).unwrap(),
        );
        let owned = owned_headers(&h);
        // None of the copies points into the read buffer.
        let within = read.as_ptr_range();
        for v in owned.values() {
            assert!(
                !within.contains(&v.as_bytes().as_ptr()),
                "{v:?} is not a copy"
            );
        }
        let lines = |m: &HeaderMap| -> Vec<(String, Vec<u8>, bool)> {
            m.iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
                .collect()
        };
        assert_eq!(lines(&owned), lines(&h));
        assert!(owned_headers(&HeaderMap::new()).is_empty());
    }
}
