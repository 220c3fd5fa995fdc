//! Paths and encodings of the Raft RPCs between purge-service nodes.
//!
//! A snapshot chunk travels as `[u32 big-endian header length][JSON header][raw bytes]`, where
//! the header is the `InstallSnapshotRequest` with an empty `data`.

use bytes::{BufMut, Bytes, BytesMut};
use openraft::raft::InstallSnapshotRequest;

use crate::types::TypeConfig;

/// AppendEntries RPC.
pub const APPEND_PATH: &str = "/raft/append";
/// RequestVote RPC.
pub const VOTE_PATH: &str = "/raft/vote";
/// InstallSnapshot RPC (one chunk per call).
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// Why a snapshot chunk could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The body is shorter than its header says.
    #[error("snapshot chunk truncated")]
    Truncated,
    /// The header is not a valid request.
    #[error("snapshot chunk header: {0}")]
    Header(#[from] serde_json::Error),
}

/// Encodes a snapshot chunk.
pub fn encode_snapshot(
    mut rpc: InstallSnapshotRequest<TypeConfig>,
) -> Result<Bytes, serde_json::Error> {
    let data = std::mem::take(&mut rpc.data);
    let header = serde_json::to_vec(&rpc)?;
    let mut out = BytesMut::with_capacity(4 + header.len() + data.len());
    out.put_u32(u32::try_from(header.len()).unwrap_or(u32::MAX));
    out.put_slice(&header);
    out.put_slice(&data);
    Ok(out.freeze())
}

/// Decodes a snapshot chunk.
pub fn decode_snapshot(body: &[u8]) -> Result<InstallSnapshotRequest<TypeConfig>, FrameError> {
    let len_bytes: [u8; 4] = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let header = body.get(4..4 + len).ok_or(FrameError::Truncated)?;
    let mut rpc: InstallSnapshotRequest<TypeConfig> = serde_json::from_slice(header)?;
    rpc.data = body[4 + len..].to_vec();
    Ok(rpc)
}

#[cfg(test)]
mod tests {
    use openraft::{SnapshotMeta, Vote};

    use super::*;

    #[test]
    fn snapshot_chunks_round_trip_and_truncation_is_caught() {
        let rpc = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new(2, 1),
            meta: SnapshotMeta::default(),
            offset: 7,
            data: vec![0, 1, 2, 255],
            done: true,
        };
        let bytes = encode_snapshot(rpc.clone()).unwrap();
        let back = decode_snapshot(&bytes).unwrap();
        assert_eq!(back, rpc);
        for cut in [0, 3, 5, 20] {
            assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut {cut}");
        }
        assert!(matches!(
            decode_snapshot(&[0, 0, 0, 2, b'{', b'x']),
            Err(FrameError::Header(_))
        ));
    }
}
