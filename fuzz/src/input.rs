//! Turning fuzz bytes into the shapes the parsers take.

use http::{HeaderMap, HeaderName, HeaderValue};

/// A fixed instant, so that a failing input fails the same way every time.
pub const NOW_SECS: u64 = 1_790_000_000;

/// The fixed "now" of every check.
pub fn now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW_SECS)
}

/// Header lines from `data`: one per `\n`-separated line, the line's first byte choosing the
/// name among `names` and the rest being the value. Values hyper would refuse are skipped, as
/// they never reach a handler.
pub fn headers(data: &[u8], names: &[HeaderName]) -> HeaderMap {
    let mut h = HeaderMap::new();
    if names.is_empty() {
        return h;
    }
    for line in data.split(|&b| b == b'\n') {
        let Some((&pick, value)) = line.split_first() else {
            continue;
        };
        let name = &names[usize::from(pick) % names.len()];
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.append(name.clone(), v);
        }
    }
    h
}

/// Splits off the first `n` bytes (fewer when `data` is shorter).
pub fn take(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at(n.min(data.len()))
}

/// A little-endian integer from up to eight bytes.
pub fn uint(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_le_bytes(b)
}
