//! Keys and values as foyer stores them, and their on-disk encoding.
//!
//! Every entry lives under a 32-byte [`EntryKey`] derived with blake3 from what it is:
//!
//! ```text
//! head(key)                          -> Entry::Object (no Vary) | Entry::Vary (field names)
//! variant(key, variant)              -> Entry::Object            (responses with Vary)
//! chunk(key, variant, generation, i) -> Entry::Chunk             (body bytes i*chunk_size..)
//! ```

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use foyer::{Code, Error as FoyerError};

use super::meta::{ENTRY_OVERHEAD, MetaWire, ObjectMeta, vary_weight};
use crate::policy::{VariantId, VarySpec};

/// A foyer key: blake3 of a domain tag and the parts that identify the entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EntryKey(pub [u8; 32]);

impl EntryKey {
    /// The entry every lookup of a URL starts with.
    pub fn head(key: &[u8; 32]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"tiercel/head/v1");
        h.update(key);
        EntryKey(*h.finalize().as_bytes())
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
    Chunk(Bytes),
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
        }
    }
}

const TAG_OBJECT: u8 = 1;
const TAG_VARY: u8 = 2;
const TAG_CHUNK: u8 = 3;

fn invalid(msg: &'static str) -> FoyerError {
    FoyerError::io_error(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

fn write_len_prefixed(writer: &mut impl Write, bytes: &[u8]) -> foyer::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| invalid("entry too large"))?;
    writer
        .write_all(&len.to_le_bytes())
        .map_err(FoyerError::io_error)?;
    writer.write_all(bytes).map_err(FoyerError::io_error)
}

fn read_len_prefixed(reader: &mut impl Read) -> foyer::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).map_err(FoyerError::io_error)?;
    let len = u32::from_le_bytes(len) as usize;
    // Entries are at most one disk block; refuse anything absurd rather than allocate it.
    if len > 256 * 1024 * 1024 {
        return Err(invalid("entry length out of range"));
    }
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf).map_err(FoyerError::io_error)?;
    Ok(buf)
}

impl Code for Entry {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        match self {
            Entry::Object(meta) => {
                writer
                    .write_all(&[TAG_OBJECT])
                    .map_err(FoyerError::io_error)?;
                let json = serde_json::to_vec(&MetaWire::from(meta.as_ref()))
                    .map_err(|_| invalid("metadata does not serialise"))?;
                write_len_prefixed(writer, &json)
            }
            Entry::Vary(fields) => {
                writer
                    .write_all(&[TAG_VARY])
                    .map_err(FoyerError::io_error)?;
                let json = serde_json::to_vec(fields.as_ref())
                    .map_err(|_| invalid("vary does not serialise"))?;
                write_len_prefixed(writer, &json)
            }
            Entry::Chunk(bytes) => {
                writer
                    .write_all(&[TAG_CHUNK])
                    .map_err(FoyerError::io_error)?;
                write_len_prefixed(writer, bytes)
            }
        }
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut tag = [0u8; 1];
        reader.read_exact(&mut tag).map_err(FoyerError::io_error)?;
        let body = read_len_prefixed(reader)?;
        match tag[0] {
            TAG_OBJECT => {
                let wire: MetaWire = serde_json::from_slice(&body)
                    .map_err(|_| invalid("metadata does not parse"))?;
                let meta = ObjectMeta::try_from(wire).map_err(|e| invalid(e.0))?;
                Ok(Entry::Object(Arc::new(meta)))
            }
            TAG_VARY => {
                let head: VaryHead =
                    serde_json::from_slice(&body).map_err(|_| invalid("vary does not parse"))?;
                Ok(Entry::Vary(Arc::new(head)))
            }
            TAG_CHUNK => Ok(Entry::Chunk(Bytes::from(body))),
            _ => Err(invalid("unknown entry tag")),
        }
    }

    fn estimated_size(&self) -> usize {
        match self {
            Entry::Chunk(b) => 5 + b.len(),
            other => 5 + other.weight(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn chunk_and_vary_roundtrip() {
        for e in [
            Entry::Chunk(Bytes::from_static(b"hello")),
            Entry::Vary(Arc::new(VaryHead {
                vary: VarySpec::Fields(vec!["accept-encoding".into()]),
                epoch: 7,
                variants: 3,
            })),
        ] {
            let mut buf = Vec::new();
            e.encode(&mut buf).unwrap();
            let back = Entry::decode(&mut buf.as_slice()).unwrap();
            match (e, back) {
                (Entry::Chunk(a), Entry::Chunk(b)) => assert_eq!(a, b),
                (Entry::Vary(a), Entry::Vary(b)) => assert_eq!(a, b),
                _ => panic!("tag changed"),
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            &[9, 0, 0, 0, 0],
            &[1, 3, 0, 0, 0, b'{', b'x', b'}'],
            &[3, 255, 255, 255, 255],
        ] {
            assert!(Entry::decode(&mut &bytes[..]).is_err());
        }
    }
}
