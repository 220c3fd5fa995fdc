//! One value of the disk tier as foyer hands it back: whatever the file held.

use tiercel_edge::storage::Entry;

/// The format byte of `storage/entry.rs`: an envelope with any other first byte is an earlier
/// format.
const FORMAT: u8 = 0xB2;

/// Properties: reading any bytes never panics; a payload in a correct envelope (the right
/// length and blake3, so the fuzzer reaches the postcard decoders behind the hash gate) is
/// either unreadable or an entry that, written again, reads back the same.
pub fn check(data: &[u8]) {
    use foyer::Code;
    let _ = Entry::decode(&mut &data[..]);
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let Ok(len) = u32::try_from(payload.len()) else {
        return;
    };
    let mut framed = vec![FORMAT, kind % 4];
    framed.extend_from_slice(&len.to_le_bytes());
    framed.extend_from_slice(blake3::hash(payload).as_bytes());
    framed.extend_from_slice(payload);
    let entry = Entry::decode(&mut framed.as_slice()).unwrap_or_else(|e| panic!("{e}"));
    if let Entry::Unreadable(why) = entry {
        assert_ne!(
            why, "earlier format",
            "the envelope drifted from storage/entry.rs"
        );
        assert_ne!(why, "blake3 mismatch");
        return;
    }
    let mut again = Vec::new();
    entry
        .encode(&mut again)
        .unwrap_or_else(|e| panic!("{entry:?}: {e}"));
    let back = Entry::decode(&mut again.as_slice()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(format!("{entry:?}"), format!("{back:?}"));
}
