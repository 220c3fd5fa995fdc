//! Keys and values as foyer stores them, and their on-disk encoding.
//!
//! Every entry lives under a 32-byte [`EntryKey`] derived with blake3 from what it is:
//!
//! ```text
//! head(key)                          -> Entry::Object (no Vary) | Entry::Vary (field names)
//! variant(key, variant)              -> Entry::Object            (responses with Vary)
//! chunk(key, variant, generation, i) -> Entry::Chunk             (body bytes i*chunk_size..)
//! ```
//!
//! On disk every value is `FORMAT, kind, len (u32 LE), blake3(payload), payload`: metadata and
//! Vary heads as postcard, chunks as their bytes. Each entry carries its own hash, so a chunk
//! written long after its object's metadata needs nothing from it to be checked, and a damaged
//! entry of any kind is detected when it is read back from disk ([`Entry::Unreadable`]), never
//! served. Entries of an earlier format read back as `Unreadable` too: misses, not errors.

use std::io::{Read, Write};
use std::sync::Arc;

use foyer::{Code, Error as FoyerError};

use super::chunk::{Chunk, ChunkBuilder, SEGMENT};
use super::meta::{ENTRY_OVERHEAD, MetaWire, ObjectMeta, vary_weight};
use crate::policy::{VariantId, VarySpec};

/// XORed into an object's key to make its head entry's key: blake3("tiercel/head/v2"). A
/// new tag (as a new derivation) leaves entries stored under the old one unread: they age out.
const HEAD_TAG: [u8; 32] = [
    0xbb, 0x8c, 0xd4, 0x5c, 0x94, 0x3a, 0x81, 0xf2, 0xa0, 0xfe, 0xc0, 0xf1, 0x32, 0x2a, 0x91, 0x71,
    0xf5, 0xe4, 0x8e, 0xd4, 0x11, 0x79, 0xde, 0x1a, 0xcf, 0xb8, 0xb6, 0x8e, 0xef, 0x7c, 0x51, 0x1c,
];

/// A foyer key: blake3 of a domain tag and the parts that identify the entry (heads: see
/// [`EntryKey::head`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EntryKey(pub [u8; 32]);

impl EntryKey {
    /// The entry every lookup of a URL starts with: the key with a fixed tag XORed in, not
    /// hashed again. The key is already a blake3 output nobody chooses, so this keeps heads
    /// apart from each other (a bijection) and from variant and chunk entries (blake3 outputs
    /// of other inputs) as surely as a hash would, and every lookup and store saves one
    /// (about 1 000 instructions each).
    pub fn head(key: &[u8; 32]) -> Self {
        let mut out = *key;
        for (b, t) in out.iter_mut().zip(HEAD_TAG) {
            *b ^= t;
        }
        EntryKey(out)
    }

    /// The metadata of one variant of a URL whose responses carry Vary.
    pub fn variant(key: &[u8; 32], variant: &VariantId) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"tiercel/variant/v1");
        h.update(key);
        h.update(variant);
        EntryKey(*h.finalize().as_bytes())
    }

    /// One body chunk of one stored response.
    pub fn chunk(key: &[u8; 32], variant: &VariantId, generation: u64, index: u32) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"tiercel/chunk/v1");
        h.update(key);
        h.update(variant);
        h.update(&generation.to_le_bytes());
        h.update(&index.to_le_bytes());
        EntryKey(*h.finalize().as_bytes())
    }
}

impl Code for EntryKey {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer.write_all(&self.0).map_err(FoyerError::io_error)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut b = [0u8; 32];
        reader.read_exact(&mut b).map_err(FoyerError::io_error)?;
        Ok(EntryKey(b))
    }

    fn estimated_size(&self) -> usize {
        32
    }
}

/// The head of a URL whose responses carry Vary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VaryHead {
    /// What the responses vary on (always `VarySpec::Fields`).
    pub vary: VarySpec,
    /// Variants written under another epoch belong to an earlier head (one since removed by a
    /// purge or an invalidation) and are not served.
    pub epoch: u64,
    /// Variants stored under this epoch, as counted by the fills that stored them (concurrent
    /// fills of new variants may undercount by how many raced): bounded by `cache.max_variants`.
    #[serde(default)]
    pub variants: u32,
}

/// A stored value.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A stored response's metadata (and its body when small).
    Object(Arc<ObjectMeta>),
    /// The URL's responses vary: look up the variant next.
    Vary(Arc<VaryHead>),
    /// A body chunk.
    Chunk(Chunk),
    /// Read back from disk but not usable: damaged (its blake3 does not match), or written by
    /// an earlier format. Treated as missing and removed; never inserted.
    Unreadable(&'static str),
}

impl Entry {
    /// Approximate bytes of memory held, for the memory tier's capacity.
    pub fn weight(&self) -> usize {
        match self {
            Entry::Object(m) => m.weight(),
            Entry::Vary(v) => {
                ENTRY_OVERHEAD + std::mem::size_of::<VaryHead>() + vary_weight(&v.vary)
            }
            Entry::Chunk(b) => ENTRY_OVERHEAD + b.len(),
            Entry::Unreadable(_) => ENTRY_OVERHEAD,
        }
    }
}

/// The on-disk format this build writes. Format 1 (no version byte: JSON metadata, bare
/// chunks) began with a kind byte of 1 to 3, so it can never be mistaken for this one.
const FORMAT: u8 = 0xB2;
const KIND_OBJECT: u8 = 1;
const KIND_VARY: u8 = 2;
const KIND_CHUNK: u8 = 3;
const KIND_UNREADABLE: u8 = 0;

fn invalid(msg: &'static str) -> FoyerError {
    FoyerError::io_error(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

/// Writes one entry in the current format.
fn write_entry(writer: &mut impl Write, kind: u8, payload: &[u8]) -> foyer::Result<()> {
    write_entry_parts(writer, kind, &[payload])
}

/// Writes one entry whose payload is `parts`, one after the other.
fn write_entry_parts<P: AsRef<[u8]>>(
    writer: &mut impl Write,
    kind: u8,
    parts: &[P],
) -> foyer::Result<()> {
    let total: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    let len = u32::try_from(total).map_err(|_| invalid("entry too large"))?;
    let mut hasher = blake3::Hasher::new();
    for p in parts {
        hasher.update(p.as_ref());
    }
    let mut head = [0u8; 2 + 4 + 32];
    head[0] = FORMAT;
    head[1] = kind;
    head[2..6].copy_from_slice(&len.to_le_bytes());
    head[6..].copy_from_slice(hasher.finalize().as_bytes());
    writer.write_all(&head).map_err(FoyerError::io_error)?;
    for p in parts {
        writer.write_all(p.as_ref()).map_err(FoyerError::io_error)?;
    }
    Ok(())
}

impl Code for Entry {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        match self {
            Entry::Object(meta) => {
                let bytes = postcard::to_stdvec(&MetaWire::from(meta.as_ref()))
                    .map_err(|_| invalid("metadata does not serialise"))?;
                write_entry(writer, KIND_OBJECT, &bytes)
            }
            Entry::Vary(head) => {
                let bytes = postcard::to_stdvec(head.as_ref())
                    .map_err(|_| invalid("vary does not serialise"))?;
                write_entry(writer, KIND_VARY, &bytes)
            }
            Entry::Chunk(chunk) => write_entry_parts(writer, KIND_CHUNK, chunk.segments()),
            Entry::Unreadable(_) => write_entry(writer, KIND_UNREADABLE, &[]),
        }
    }

    /// Errs only when the reader fails; what it reads that cannot be used is
    /// [`Entry::Unreadable`].
    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut start = [0u8; 2];
        reader
            .read_exact(&mut start)
            .map_err(FoyerError::io_error)?;
        if start[0] != FORMAT {
            return Ok(Entry::Unreadable("earlier format"));
        }
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).map_err(FoyerError::io_error)?;
        let len = u32::from_le_bytes(len) as usize;
        // Entries are at most one disk block; refuse anything absurd rather than allocate it.
        if len > 256 * 1024 * 1024 {
            return Ok(Entry::Unreadable("length out of range"));
        }
        let mut hash = [0u8; 32];
        reader.read_exact(&mut hash).map_err(FoyerError::io_error)?;
        if start[1] == KIND_CHUNK {
            // Read straight into segments: no chunk-sized buffer to copy from.
            let mut hasher = blake3::Hasher::new();
            let mut b = ChunkBuilder::with_len(len);
            let mut buf = vec![0u8; SEGMENT.min(len)];
            let mut left = len;
            while left > 0 {
                let piece = &mut buf[..SEGMENT.min(left)];
                reader.read_exact(piece).map_err(FoyerError::io_error)?;
                hasher.update(piece);
                b.extend(piece);
                left -= piece.len();
            }
            if hasher.finalize().as_bytes() != &hash {
                return Ok(Entry::Unreadable("blake3 mismatch"));
            }
            return Ok(Entry::Chunk(b.finish()));
        }
        let mut payload = vec![0u8; len];
        reader
            .read_exact(&mut payload)
            .map_err(FoyerError::io_error)?;
        if blake3::hash(&payload).as_bytes() != &hash {
            return Ok(Entry::Unreadable("blake3 mismatch"));
        }
        Ok(match start[1] {
            KIND_OBJECT => match postcard::from_bytes::<MetaWire>(&payload) {
                Ok(wire) => match ObjectMeta::try_from(wire) {
                    Ok(meta) => Entry::Object(Arc::new(meta)),
                    Err(e) => Entry::Unreadable(e.0),
                },
                Err(_) => Entry::Unreadable("metadata does not parse"),
            },
            KIND_VARY => match postcard::from_bytes::<VaryHead>(&payload) {
                Ok(head) => Entry::Vary(Arc::new(head)),
                Err(_) => Entry::Unreadable("vary does not parse"),
            },
            _ => Entry::Unreadable("unknown kind"),
        })
    }

    fn estimated_size(&self) -> usize {
        match self {
            Entry::Chunk(b) => 38 + b.len(),
            other => 38 + other.weight(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn keys_differ_by_every_part() {
        let k = [1u8; 32];
        let v = [2u8; 32];
        let all = [
            EntryKey::head(&k),
            EntryKey::variant(&k, &v),
            EntryKey::variant(&k, &[3u8; 32]),
            EntryKey::chunk(&k, &v, 1, 0),
            EntryKey::chunk(&k, &v, 1, 1),
            EntryKey::chunk(&k, &v, 2, 0),
            EntryKey::head(&[9u8; 32]),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_head_tag_is_the_documented_hash() {
        assert_eq!(&HEAD_TAG, blake3::hash(b"tiercel/head/v2").as_bytes());
    }

    fn roundtrip(e: &Entry) -> Entry {
        let mut buf = Vec::new();
        e.encode(&mut buf).unwrap();
        Entry::decode(&mut buf.as_slice()).unwrap()
    }

    #[test]
    fn chunk_and_vary_roundtrip() {
        for e in [
            Entry::Chunk(Chunk::copy_from_slice(b"hello")),
            Entry::Vary(Arc::new(VaryHead {
                vary: VarySpec::Fields(vec!["accept-encoding".into()]),
                epoch: 7,
                variants: 3,
            })),
        ] {
            match (&e, roundtrip(&e)) {
                (Entry::Chunk(a), Entry::Chunk(b)) => assert_eq!(a, &b),
                (Entry::Vary(a), Entry::Vary(b)) => assert_eq!(a, &b),
                _ => panic!("kind changed"),
            }
        }
    }

    fn object(inline: Option<Bytes>, size: u64) -> ObjectMeta {
        let now = std::time::SystemTime::now();
        let mut headers = http::HeaderMap::new();
        headers.insert("etag", http::HeaderValue::from_static("\"v1\""));
        ObjectMeta {
            key: [1; 32],
            variant: [2; 32],
            vary: VarySpec::None,
            head_epoch: 0,
            status: http::StatusCode::OK,
            headers: std::sync::Arc::new(headers),
            age: crate::policy::AgeClock::new(&http::HeaderMap::new(), now, now),
            policy: crate::policy::StoredPolicy {
                freshness_lifetime: std::time::Duration::from_secs(60),
                heuristic: false,
                no_cache: false,
                no_cache_fields: Vec::new(),
                must_revalidate: false,
                stale_while_revalidate: None,
                stale_if_error: Some(std::time::Duration::from_secs(5)),
                immutable: false,
            },
            url: "example.com/a".into(),
            host: "example.com".into(),
            tags: vec!["t1".into()],
            purge_index: 9,
            size,
            chunk_size: 1 << 20,
            generation: 3,
            inline,
            present: None,
        }
    }

    #[test]
    fn an_entry_weighs_every_list_it_holds() {
        let plain = object(None, 1 << 20);
        let mut heavy = plain.clone();
        heavy.policy.no_cache_fields = (0..100).map(|i| format!("x-field-{i:04}")).collect();
        heavy.tags = (0..100).map(|i| format!("tag-{i:06}")).collect();
        // Each list counts at least its bytes: a header-heavy `no-cache="…"` or tag list cannot
        // hide from the memory tier's budget.
        assert!(heavy.weight() >= plain.weight() + 100 * 12 + 100 * 10);
    }

    #[test]
    fn metadata_roundtrips_and_an_inline_body_costs_its_own_size() {
        let body = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let meta = object(Some(body.clone()), 10_000);
        let mut buf = Vec::new();
        Entry::Object(Arc::new(meta.clone()))
            .encode(&mut buf)
            .unwrap();
        // JSON wrote each byte as a decimal number and a comma: 3-4 bytes per byte.
        assert!(buf.len() < 10_000 + 400, "{} bytes on disk", buf.len());
        let Entry::Object(back) = Entry::decode(&mut buf.as_slice()).unwrap() else {
            panic!("not an object");
        };
        assert_eq!(back.inline.as_deref(), Some(&body[..]));
        assert_eq!(
            (back.size, back.generation, back.purge_index),
            (10_000, 3, 9)
        );
        assert_eq!(back.headers, meta.headers);
        assert_eq!(back.policy, meta.policy);
        assert_eq!(back.age, meta.age);
        assert_eq!((&back.url, &back.tags), (&meta.url, &meta.tags));

        // A chunked 5 GiB object's metadata holds no per-chunk list: a few hundred bytes.
        let big = object(None, 5 << 30);
        assert_eq!(big.chunk_count(), 5 * 1024);
        let mut buf = Vec::new();
        Entry::Object(Arc::new(big)).encode(&mut buf).unwrap();
        assert!(buf.len() < 400, "{} bytes on disk", buf.len());
    }

    #[test]
    fn a_partly_stored_object_keeps_its_chunk_set() {
        let mut present = crate::storage::ChunkSet::new(16);
        present.insert(5);
        let meta = ObjectMeta {
            present: Some(present.clone()),
            ..object(None, 16 << 20)
        };
        match roundtrip(&Entry::Object(Arc::new(meta))) {
            Entry::Object(back) => assert_eq!(back.present, Some(present)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_flipped_byte_of_a_chunk_is_caught() {
        let mut buf = Vec::new();
        Entry::Chunk(Chunk::copy_from_slice(&[7u8; 300]))
            .encode(&mut buf)
            .unwrap();
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x20;
            match Entry::decode(&mut bad.as_slice()) {
                Ok(Entry::Unreadable(_)) | Err(_) => {}
                Ok(other) => panic!("byte {i} flipped, read back as {other:?}"),
            }
        }
    }

    #[test]
    fn entries_of_the_json_format_are_unreadable_not_errors() {
        // Format 1: a kind byte, a length, then JSON or bare bytes.
        for old in [
            &[1u8, 2, 0, 0, 0, b'{', b'}'][..],
            &[2, 2, 0, 0, 0, b'{', b'}'],
            &[3, 3, 0, 0, 0, b'a', b'b', b'c'],
        ] {
            assert!(matches!(
                Entry::decode(&mut &old[..]),
                Ok(Entry::Unreadable("earlier format"))
            ));
        }
    }

    #[test]
    fn garbage_is_unreadable_or_an_error_never_a_panic() {
        for bytes in [
            &b""[..],
            &[9, 0, 0, 0, 0],
            &[FORMAT, 1, 3, 0, 0, 0, b'{', b'x', b'}'],
            &[FORMAT, 3, 255, 255, 255, 255],
        ] {
            assert!(!matches!(
                Entry::decode(&mut &bytes[..]),
                Ok(Entry::Chunk(_) | Entry::Object(_) | Entry::Vary(_))
            ));
        }
    }
}
