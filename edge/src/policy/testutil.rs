//! Helpers for the policy test tables.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

/// A header map from `(name, value)` pairs; repeated names become repeated lines.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        let name = HeaderName::from_bytes(n.as_bytes()).unwrap_or_else(|e| panic!("{n}: {e}"));
        let value = HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        h.append(name, value);
    }
    h
}

/// A fixed instant for tests: 2024-01-01T00:00:00Z.
pub(crate) fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
}

/// `t0() + secs` (negative goes back).
pub(crate) fn at(secs: i64) -> SystemTime {
    if secs >= 0 {
        t0() + Duration::from_secs(secs.unsigned_abs())
    } else {
        t0() - Duration::from_secs(secs.unsigned_abs())
    }
}

/// The IMF-fixdate of `at(secs)`.
pub(crate) fn date(secs: i64) -> String {
    httpdate::fmt_http_date(at(secs))
}

/// Seconds as a Duration.
pub(crate) fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Header pairs as written in test tables.
pub(crate) type Pairs<'a> = Vec<(&'a str, &'a str)>;
