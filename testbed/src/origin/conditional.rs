//! Conditional requests as an origin server evaluates them (RFC 9110 §13): entity tags,
//! `If-None-Match`, `If-Modified-Since` and `If-Range`. Pure functions; `now` is never read here.

use std::time::SystemTime;

use http::{HeaderMap, Method, header};

/// An entity tag as the origin sends it in `ETag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntityTag {
    /// `W/` prefix.
    pub weak: bool,
    /// The opaque tag, without quotes.
    pub tag: String,
}

impl EntityTag {
    /// Parses the `etag=` query value: `V` is the strong tag `"V"`, `W/V` the weak tag `W/"V"`.
    /// Quotes around `V` are accepted and dropped. `None` when `V` has characters an entity tag
    /// cannot hold.
    pub(crate) fn from_param(value: &str) -> Option<Self> {
        let (weak, rest) = match value.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let tag = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(rest);
        //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3
        //# etagc = %x21 / %x23-7E / obs-text
        let valid = tag.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b));
        valid.then(|| Self {
            weak,
            tag: tag.to_owned(),
        })
    }

    /// The header form: `"V"` or `W/"V"`.
    pub(crate) fn to_header(&self) -> String {
        if self.weak {
            format!("W/\"{}\"", self.tag)
        } else {
            format!("\"{}\"", self.tag)
        }
    }

    /// Parses one entity tag from a header list element such as `W/"x"` or `"x"`.
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (weak, rest) = match s.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let tag = rest.strip_prefix('"')?.strip_suffix('"')?;
        Some(Self {
            weak,
            tag: tag.to_owned(),
        })
    }

    //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
    //# Two entity tags are equivalent if their opaque-tags match character-by-character,
    //# regardless of either or both being tagged as "weak".
    fn weak_eq(&self, other: &Self) -> bool {
        self.tag == other.tag
    }

    //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
    //# Two entity tags are equivalent if both are not weak and their opaque-tags match
    //# character-by-character.
    fn strong_eq(&self, other: &Self) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }
}

/// The validators of the representation the origin is about to send.
#[derive(Clone, Debug, Default)]
pub(crate) struct Validators {
    /// `ETag`, when the response has one.
    pub etag: Option<EntityTag>,
    /// `Last-Modified`, truncated to whole seconds, when the response has one.
    pub last_modified: Option<SystemTime>,
}

/// What the preconditions of a request decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Answer normally.
    Proceed,
    /// Answer `304 Not Modified`.
    NotModified,
    /// Answer `412 Precondition Failed`.
    Failed,
}

/// All values of a header, split on commas.
fn list_values<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// Evaluates `If-None-Match` and `If-Modified-Since` for a response with `validators`.
pub(crate) fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    validators: &Validators,
) -> Precondition {
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if headers.contains_key(header::IF_NONE_MATCH) {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.2
        //# If the field value is "*", the condition is false if the origin server has a current
        //# representation for the target resource.
        //# If the field value is a list of entity tags, the condition is false if one of the
        //# listed tags matches the entity tag of the selected representation.
        //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.2
        //# A recipient MUST use the weak comparison function when comparing entity tags for
        //# If-None-Match
        let values = list_values(headers, &header::IF_NONE_MATCH);
        let matched = values.contains(&"*")
            || validators.etag.as_ref().is_some_and(|current| {
                values
                    .iter()
                    .filter_map(|v| EntityTag::parse(v))
                    .any(|t| t.weak_eq(current))
            });
        if !matched {
            return Precondition::Proceed;
        }
        //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.2
        //# if the field value is false: if the request method is GET or HEAD, respond 304 (Not
        //# Modified); otherwise, respond 412 (Precondition Failed).
        return if get_or_head {
            Precondition::NotModified
        } else {
            Precondition::Failed
        };
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.3
    //# A recipient MUST ignore If-Modified-Since if the request contains an If-None-Match header
    //# field; [...] A recipient MUST ignore the If-Modified-Since header field if the received
    //# field value is not a valid HTTP-date [...] or if the request method is neither GET nor HEAD.
    if !get_or_head {
        return Precondition::Proceed;
    }
    let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return Precondition::Proceed;
    };
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.3
    //# the condition is false if the selected representation's last modification date is
    //# earlier or equal to the date provided in the field value
    match validators.last_modified {
        Some(lm) if lm <= ims => Precondition::NotModified,
        _ => Precondition::Proceed,
    }
}

/// Whether a `Range` request's `If-Range` (if any) allows a partial response.
pub(crate) fn if_range_allows(headers: &HeaderMap, validators: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let value = value.trim();
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5
    //# If the validator given in the If-Range header field is an entity-tag, the condition is
    //# true if it strongly matches the current entity tag
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse(value), &validators.etag) {
            (Some(given), Some(current)) => given.strong_eq(current),
            _ => false,
        };
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5
    //# If the HTTP-date validator provided exactly matches the Last-Modified field value for
    //# the selected representation, the condition is true.
    match (httpdate::parse_http_date(value), validators.last_modified) {
        (Ok(date), Some(lm)) => date == lm,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // the case tables are tuples by design
mod tests {
    use std::time::Duration;

    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn etag_params() {
        let cases = [
            ("v1", Some((false, "v1"))),
            ("W/v1", Some((true, "v1"))),
            ("\"v1\"", Some((false, "v1"))),
            ("W/\"v1\"", Some((true, "v1"))),
            ("", Some((false, ""))),
            ("a b", None),
            ("a\"b", None),
        ];
        for (input, want) in cases {
            let got = EntityTag::from_param(input).map(|t| (t.weak, t.tag));
            let want = want.map(|(w, t)| (w, t.to_owned()));
            assert_eq!(got, want, "{input:?}");
        }
        assert_eq!(EntityTag::from_param("v1").unwrap().to_header(), "\"v1\"");
        assert_eq!(
            EntityTag::from_param("W/v1").unwrap().to_header(),
            "W/\"v1\""
        );
    }

    #[test]
    fn preconditions_table() {
        let strong = Validators {
            etag: EntityTag::from_param("v1"),
            last_modified: Some(at(1000)),
        };
        let weak = Validators {
            etag: EntityTag::from_param("W/v1"),
            last_modified: None,
        };
        let none = Validators::default();
        let d999 = httpdate::fmt_http_date(at(999));
        let d1000 = httpdate::fmt_http_date(at(1000));
        let d1001 = httpdate::fmt_http_date(at(1001));
        use Precondition::*;
        let cases: Vec<(Method, Vec<(&str, &str)>, &Validators, Precondition)> = vec![
            (Method::GET, vec![], &strong, Proceed),
            (
                Method::GET,
                vec![("if-none-match", "\"v1\"")],
                &strong,
                NotModified,
            ),
            (
                Method::HEAD,
                vec![("if-none-match", "\"v1\"")],
                &strong,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-none-match", "W/\"v1\"")],
                &strong,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-none-match", "\"v1\"")],
                &weak,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-none-match", "\"v2\"")],
                &strong,
                Proceed,
            ),
            (
                Method::GET,
                vec![("if-none-match", "\"v0\", \"v1\"")],
                &strong,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-none-match", "\"v0\""), ("if-none-match", "\"v1\"")],
                &strong,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-none-match", "*")],
                &none,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-none-match", "\"v1\"")],
                &none,
                Proceed,
            ),
            (
                Method::POST,
                vec![("if-none-match", "\"v1\"")],
                &strong,
                Failed,
            ),
            (Method::PUT, vec![("if-none-match", "*")], &strong, Failed),
            // If-None-Match wins over If-Modified-Since.
            (
                Method::GET,
                vec![("if-none-match", "\"v2\""), ("if-modified-since", &d1001)],
                &strong,
                Proceed,
            ),
            (
                Method::GET,
                vec![("if-modified-since", &d1000)],
                &strong,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-modified-since", &d1001)],
                &strong,
                NotModified,
            ),
            (
                Method::GET,
                vec![("if-modified-since", &d999)],
                &strong,
                Proceed,
            ),
            (
                Method::GET,
                vec![("if-modified-since", "garbage")],
                &strong,
                Proceed,
            ),
            (
                Method::GET,
                vec![("if-modified-since", &d1001)],
                &none,
                Proceed,
            ),
            (
                Method::POST,
                vec![("if-modified-since", &d1001)],
                &strong,
                Proceed,
            ),
        ];
        for (method, pairs, validators, want) in cases {
            let got = evaluate(&method, &headers(&pairs), validators);
            assert_eq!(got, want, "{method} {pairs:?}");
        }
    }

    #[test]
    fn if_range_table() {
        let v = Validators {
            etag: EntityTag::from_param("v1"),
            last_modified: Some(at(1000)),
        };
        let weak = Validators {
            etag: EntityTag::from_param("W/v1"),
            last_modified: None,
        };
        let d1000 = httpdate::fmt_http_date(at(1000));
        let d1001 = httpdate::fmt_http_date(at(1001));
        let cases: Vec<(Vec<(&str, &str)>, &Validators, bool)> = vec![
            (vec![], &v, true),
            (vec![("if-range", "\"v1\"")], &v, true),
            (vec![("if-range", "\"v2\"")], &v, false),
            (vec![("if-range", "W/\"v1\"")], &v, false),
            (vec![("if-range", "\"v1\"")], &weak, false),
            (vec![("if-range", &d1000)], &v, true),
            (vec![("if-range", &d1001)], &v, false),
            (vec![("if-range", &d1000)], &weak, false),
            (vec![("if-range", "nonsense")], &v, false),
        ];
        for (pairs, validators, want) in cases {
            assert_eq!(
                if_range_allows(&headers(&pairs), validators),
                want,
                "{pairs:?}"
            );
        }
    }
}
