//! How one member proves to another that it holds the cluster secret, without sending it.
//!
//! Every member request carries
//!
//! ```text
//! x-tiercel-member: v1 <from id> <to id> <unix seconds> <hex MAC>
//! MAC = blake3 keyed hash, key = blake3::derive_key(CONTEXT, secret),
//!       over "v1\n<METHOD>\n<path?query>\n<from>\n<to>\n<seconds>"
//! ```
//!
//! The secret never crosses the network, so a member address an admin token added (or an
//! on-path reader of a plain-HTTP cluster) learns nothing it could forge requests with. The
//! MAC names the receiving member and the request line, so a signed request cannot be replayed
//! to another member or turned into another RPC, and the timestamp bounds replays of the same
//! one to [`MAX_SKEW`]. Pure: `now` is an argument; the MAC compares in constant time.

use std::time::Duration;

use crate::types::NodeId;

/// The request header carrying the proof.
pub const MEMBER_HEADER: &str = "x-tiercel-member";

/// Key-derivation context of the MAC key (blake3 `derive_key`).
const CONTEXT: &str = "tiercel purge-service member authentication v1";

/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// The MAC key derived from the cluster secret.
#[derive(Clone)]
pub struct MemberKey([u8; 32]);

impl std::fmt::Debug for MemberKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberKey(..)")
    }
}

/// Why a member proof was refused (for logs; the client only ever sees 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The header is absent.
    #[error("no member proof")]
    Missing,
    /// The header is not `v1 from to seconds mac`.
    #[error("malformed member proof")]
    Malformed,
    /// The proof is for another member.
    #[error("member proof addressed to member {0}")]
    OtherMember(NodeId),
    /// The timestamp is too far from this member's clock.
    #[error("member proof {0} s away from this member's clock")]
    Skew(u64),
    /// The MAC does not match: the sender does not hold this cluster's secret.
    #[error("member proof does not verify")]
    BadMac,
}

impl MemberKey {
    /// The key for a cluster secret.
    pub fn new(secret: &str) -> Self {
        MemberKey(blake3::derive_key(CONTEXT, secret.as_bytes()))
    }

    fn mac(&self, method: &str, path: &str, from: NodeId, to: NodeId, secs: u64) -> blake3::Hash {
        let msg = format!("v1\n{method}\n{path}\n{from}\n{to}\n{secs}");
        blake3::keyed_hash(&self.0, msg.as_bytes())
    }

    /// The header value proving that member `from` sends `method path` to member `to` at
    /// `now_secs`.
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        from: NodeId,
        to: NodeId,
        now_secs: u64,
    ) -> String {
        let mac = self.mac(method, path, from, to, now_secs);
        format!("v1 {from} {to} {now_secs} {}", mac.to_hex())
    }

    /// Checks a proof received by member `me` at `now_secs`; returns the sender's id.
    pub fn verify(
        &self,
        header: Option<&str>,
        method: &str,
        path: &str,
        me: NodeId,
        now_secs: u64,
    ) -> Result<NodeId, ProofError> {
        let header = header.ok_or(ProofError::Missing)?;
        let parts: Vec<&str> = header.split(' ').collect();
        let [version, from, to, secs, mac] = parts.as_slice() else {
            return Err(ProofError::Malformed);
        };
        if *version != "v1" {
            return Err(ProofError::Malformed);
        }
        let number = |s: &str| s.parse::<u64>().map_err(|_| ProofError::Malformed);
        let (from, to, secs) = (number(from)?, number(to)?, number(secs)?);
        let given = blake3::Hash::from_hex(mac).map_err(|_| ProofError::Malformed)?;
        if to != me {
            return Err(ProofError::OtherMember(to));
        }
        let skew = now_secs.abs_diff(secs);
        if skew > MAX_SKEW.as_secs() {
            return Err(ProofError::Skew(skew));
        }
        // blake3::Hash compares in constant time.
        if self.mac(method, path, from, to, secs) != given {
            return Err(ProofError::BadMac);
        }
        Ok(from)
    }
}

/// This machine's clock in seconds since the epoch.
pub fn now_secs() -> u64 {
    crate::types::unix_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;

    #[test]
    fn a_proof_verifies_only_for_its_request_receiver_and_time() {
        let key = MemberKey::new("cluster-secret-0123456789");
        let proof = key.sign("POST", "/raft/append", 1, 2, T);
        let ok = |h: &str, method: &str, path: &str, me: NodeId, now: u64| {
            key.verify(Some(h), method, path, me, now)
        };
        assert_eq!(ok(&proof, "POST", "/raft/append", 2, T), Ok(1));
        assert_eq!(ok(&proof, "POST", "/raft/append", 2, T + 60), Ok(1));
        assert_eq!(
            ok(&proof, "POST", "/raft/append", 2, T + 61),
            Err(ProofError::Skew(61))
        );
        assert_eq!(
            ok(&proof, "POST", "/raft/append", 3, T),
            Err(ProofError::OtherMember(2))
        );
        assert_eq!(
            ok(&proof, "POST", "/raft/vote", 2, T),
            Err(ProofError::BadMac)
        );
        assert_eq!(
            ok(&proof, "GET", "/raft/append", 2, T),
            Err(ProofError::BadMac)
        );
        // Another secret, or a forged sender, does not verify.
        let other = MemberKey::new("another-secret-0123456789");
        assert_eq!(
            other.verify(Some(&proof), "POST", "/raft/append", 2, T),
            Err(ProofError::BadMac)
        );
        let forged = proof.replacen("v1 1 ", "v1 3 ", 1);
        assert_eq!(
            ok(&forged, "POST", "/raft/append", 2, T),
            Err(ProofError::BadMac)
        );
        // The secret itself, sent as a header, is no proof.
        for bad in [
            "cluster-secret-0123456789",
            "v1 1 2",
            "v2 1 2 3 00",
            "v1 a 2 3 00",
        ] {
            assert_eq!(
                ok(bad, "POST", "/raft/append", 2, T),
                Err(ProofError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            key.verify(None, "POST", "/raft/append", 2, T),
            Err(ProofError::Missing)
        );
    }
}
