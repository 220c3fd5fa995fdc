//! Age calculation (RFC 9111 §4.2.3), stored with every object.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};

use super::syntax::{MAX_DELTA, first_str, parse_delta_seconds};

/// What is needed to know a stored response's age at any later instant, computed once when the
/// response arrives (and again when a 304 freshens it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgeClock {
    /// When the request that produced the response was sent upstream.
    pub request_time: SystemTime,
    /// When the response arrived.
    pub response_time: SystemTime,
    /// The age the response already had when it arrived.
    pub corrected_initial_age: Duration,
}

impl AgeClock {
    /// From the upstream response's Age and Date, the time the request was sent and the time
    /// the response arrived.
    //= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.3
    //#   apparent_age = max(0, response_time - date_value);
    //#   response_delay = response_time - request_time;
    //#   corrected_age_value = age_value + response_delay;
    //#   corrected_initial_age = max(apparent_age, corrected_age_value);
    pub fn new(
        resp_headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        Self::dated(
            resp_headers,
            date_value(resp_headers),
            request_time,
            response_time,
        )
    }

    /// [`AgeClock::new`] with the response's Date already parsed (what [`ensure_date`]
    /// returned): a miss parses it once.
    pub fn dated(
        resp_headers: &HeaderMap,
        date: Option<SystemTime>,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        let age_value = age_value(resp_headers);
        let apparent_age = date
            .and_then(|date| response_time.duration_since(date).ok())
            .unwrap_or(Duration::ZERO);
        let response_delay = response_time
            .duration_since(request_time)
            .unwrap_or(Duration::ZERO);
        let corrected_age_value = age_value.saturating_add(response_delay);
        Self {
            request_time,
            response_time,
            corrected_initial_age: apparent_age.max(corrected_age_value).min(MAX_DELTA),
        }
    }

    /// current_age at `now` (never negative; a `now` before the response arrived counts as no
    /// resident time).
    //= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.3
    //#   resident_time = now - response_time;
    //#   current_age = corrected_initial_age + resident_time;
    pub fn current_age(&self, now: SystemTime) -> Duration {
        let resident_time = now
            .duration_since(self.response_time)
            .unwrap_or(Duration::ZERO);
        self.corrected_initial_age.saturating_add(resident_time)
    }

    /// The value of the `Age` header to send with a response served at `now`: current_age in
    /// whole seconds, saturated at 2^31.
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.1
    //# Age = delta-seconds
    pub fn age_header_value(&self, now: SystemTime) -> HeaderValue {
        HeaderValue::from(self.current_age(now).min(MAX_DELTA).as_secs())
    }
}

//= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.3
//# The term "age_value" denotes the value of the Age header field (Section 5.1), in a form
//# appropriate for arithmetic operation; or 0, if not available.
/// The Age header's value; an invalid or absent Age counts as 0. Age is a singleton field, but
/// a list (`5, 6`, or several lines) counts as its first member.
//= https://www.rfc-editor.org/rfc/rfc9111#section-5.1
//# Although it is defined as a singleton header field, a cache encountering a message with a
//# list-based Age field value SHOULD use the first member of the field value, discarding
//# subsequent ones.
fn age_value(headers: &HeaderMap) -> Duration {
    first_str(headers, header::AGE)
        .map(|v| {
            v.split(',')
                .next()
                .unwrap_or_default()
                .trim_matches([' ', '\t'])
        })
        .and_then(|v| parse_delta_seconds(v.as_bytes()))
        .unwrap_or(Duration::ZERO)
}

/// The Date header as a time, if present and valid.
pub(crate) fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    first_str(headers, header::DATE).and_then(crate::policy::http_date::parse_http_date)
}

/// Adds `Date: response_time` when the response has no valid Date, as a cache must before
/// storing it; freshness (Expires − Date, heuristics) and age then have a Date to work from.
//= https://www.rfc-editor.org/rfc/rfc9110#section-6.6.1
//# A recipient with a clock that receives a response message without a Date header field MUST
//# record the time it was received and append a corresponding Date header field to the
//# message's header section if it is cached or forwarded downstream.
///
/// Returns the Date the response carries now: `None` only if the one written could not be
/// (never, for a clock after 1970).
pub fn ensure_date(headers: &mut HeaderMap, response_time: SystemTime) -> Option<SystemTime> {
    if let Some(date) = date_value(headers) {
        return Some(date);
    }
    headers.remove(header::DATE);
    let written = HeaderValue::from_str(&httpdate::fmt_http_date(response_time)).ok()?;
    headers.insert(header::DATE, written);
    // What parsing the written field gives: whole seconds.
    let secs = response_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::{at, date, headers, s};
    use proptest::prelude::*;

    /// (response headers, request_time, response_time, now) → (corrected_initial_age, current_age)
    #[test]
    fn age_table() {
        type Row = (
            &'static str,
            Vec<(&'static str, String)>,
            i64,
            i64,
            i64,
            u64,
            u64,
        );
        let rows: Vec<Row> = vec![
            ("no Age, no Date", vec![], 0, 0, 0, 0, 0),
            ("resident time counts", vec![], 0, 0, 100, 0, 100),
            ("response delay counts", vec![], 0, 3, 3, 3, 3),
            (
                "Age adds delay",
                vec![("age", "10".into())],
                0,
                2,
                2,
                12,
                12,
            ),
            (
                "Date in the past",
                vec![("date", date(-30))],
                0,
                0,
                0,
                30,
                30,
            ),
            (
                "Date in the future is 0",
                vec![("date", date(50))],
                0,
                0,
                10,
                0,
                10,
            ),
            (
                "max of apparent and corrected",
                vec![("date", date(-30)), ("age", "5".into())],
                0,
                1,
                1,
                31,
                31,
            ),
            (
                "Age beats Date when larger",
                vec![("date", date(-5)), ("age", "100".into())],
                0,
                0,
                20,
                100,
                120,
            ),
            (
                "invalid Age is 0",
                vec![("age", "abc".into())],
                0,
                0,
                7,
                0,
                7,
            ),
            (
                "negative Age is 0",
                vec![("age", "-5".into())],
                0,
                0,
                0,
                0,
                0,
            ),
            (
                "Age list uses its first member",
                vec![("age", "5, 6".into())],
                0,
                0,
                0,
                5,
                5,
            ),
            (
                "huge Age saturates",
                vec![("age", "99999999999".into())],
                0,
                0,
                0,
                1 << 31,
                1 << 31,
            ),
            (
                "invalid Date ignored",
                vec![("date", "yesterday".into())],
                0,
                0,
                0,
                0,
                0,
            ),
            (
                "now before response_time",
                vec![("age", "4".into())],
                0,
                0,
                -10,
                4,
                4,
            ),
            ("request after response (clock step)", vec![], 5, 0, 0, 0, 0),
        ];
        for (name, h, req, resp, now, want_initial, want_current) in rows {
            let pairs: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let clock = AgeClock::new(&headers(&pairs), at(req), at(resp));
            assert_eq!(
                clock.corrected_initial_age,
                s(want_initial),
                "{name}: initial"
            );
            assert_eq!(
                clock.current_age(at(now)),
                s(want_current),
                "{name}: current"
            );
            assert_eq!(clock.request_time, at(req), "{name}");
            assert_eq!(clock.response_time, at(resp), "{name}");
        }
    }

    #[test]
    fn age_header_is_whole_seconds() {
        let clock = AgeClock::new(&headers(&[("age", "3")]), at(0), at(0));
        let now = at(2) + Duration::from_millis(900);
        assert_eq!(clock.age_header_value(now), HeaderValue::from_static("5"));
    }

    #[test]
    fn ensure_date_table() {
        let mut h = headers(&[]);
        ensure_date(&mut h, at(0));
        assert_eq!(
            h.get("date").map(|v| v.as_bytes()),
            Some(date(0).as_bytes())
        );

        let mut h = headers(&[("date", &date(-100))]);
        ensure_date(&mut h, at(0));
        assert_eq!(
            h.get("date").map(|v| v.as_bytes()),
            Some(date(-100).as_bytes())
        );

        let mut h = headers(&[("date", "garbage")]);
        ensure_date(&mut h, at(0));
        assert_eq!(h.get_all("date").iter().count(), 1);
        assert_eq!(
            h.get("date").map(|v| v.as_bytes()),
            Some(date(0).as_bytes())
        );
    }

    proptest! {
        /// What `ensure_date` returns is what parsing the Date it leaves gives (so the age
        /// clock need not parse it again), for a Date kept, replaced or written, at any
        /// sub-second response time.
        #[test]
        fn ensure_date_returns_the_date_it_leaves(
            millis in 0u64..4_000_000_000_000,
            kept in proptest::option::of(-100_000i64..100_000),
            garbage in any::<bool>(),
        ) {
            let response_time = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
            let mut h = match (kept, garbage) {
                (_, true) => headers(&[("date", "garbage")]),
                (Some(d), false) => headers(&[("date", &date(d))]),
                (None, false) => headers(&[]),
            };
            let returned = ensure_date(&mut h, response_time);
            prop_assert!(returned.is_some());
            prop_assert_eq!(returned, date_value(&h));
            let clock = AgeClock::dated(&h, returned, response_time, response_time);
            prop_assert_eq!(clock, AgeClock::new(&h, response_time, response_time));
        }
    }

    #[test]
    fn serde_roundtrip() {
        let clock = AgeClock::new(&headers(&[("age", "9")]), at(0), at(1));
        let json = serde_json::to_string(&clock).unwrap_or_default();
        let back: AgeClock = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, clock);
    }

    proptest! {
        #[test]
        fn current_age_is_monotonic(age in 0u64..100_000, delay in 0i64..100, a in 0i64..1_000_000, b in 0i64..1_000_000) {
            let h = headers(&[("age", &age.to_string())]);
            let clock = AgeClock::new(&h, at(0), at(delay));
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(clock.current_age(at(lo)) <= clock.current_age(at(hi)));
            prop_assert!(clock.current_age(at(hi)) >= s(age));
        }
    }
}
