//! Entity tags (RFC 9110 §8.8.3) and the `If-Match` / `If-None-Match` lists built from them.
//!
//! These are parsed from client input on every conditional request, so the parser is strict
//! (exactly the ABNF), never panics, and borrows from the field value instead of allocating.

use http::{HeaderMap, HeaderName, header};

use super::lists::{split_list, trim_ows};

/// One entity tag: the opaque tag (without its quotes) and whether it was marked weak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// `W/` prefix present.
    pub weak: bool,
    /// The characters between the quotes.
    pub tag: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parses exactly one entity tag; anything else (missing quotes, `w/`, a quote inside,
    /// control characters, trailing bytes) is `None`.
    //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3
    //# entity-tag = [ weak ] opaque-tag
    //# weak       = %s"W/"
    //# opaque-tag = DQUOTE *etagc DQUOTE
    //# etagc      = %x21 / %x23-7E / obs-text
    pub fn parse(s: &'a [u8]) -> Option<Self> {
        let (weak, rest) = match s.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let inner = rest.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        if !inner.iter().all(|&b| is_etagc(b)) {
            return None;
        }
        Some(EntityTag { weak, tag: inner })
    }

    /// Strong comparison: both strong and the opaque tags identical.
    //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
    //# Strong comparison: two entity tags are equivalent if both are not weak and their
    //# opaque-tags match character-by-character.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }

    /// Weak comparison: the opaque tags identical, whatever the weakness.
    //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
    //# Weak comparison: two entity tags are equivalent if their opaque-tags match
    //# character-by-character, regardless of either or both being tagged as "weak".
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.tag == other.tag
    }
}

fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// The entity tag of a response: its single `ETag` line, if that parses.
///
/// Several `ETag` lines, or one that does not parse, leave the response without a usable
/// validator: guessing which one the origin meant could turn a changed object into a 304.
pub fn response_etag(resp: &HeaderMap) -> Option<EntityTag<'_>> {
    let mut lines = resp.get_all(header::ETAG).into_iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    EntityTag::parse(trim_ows(first.as_bytes()))
}

/// Which comparison function a condition uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `If-Match`, `If-Range`.
    Strong,
    /// `If-None-Match`.
    Weak,
}

/// Evaluates an `If-Match` or `If-None-Match` field (all its lines) against the current entity
/// tag of a representation that exists.
///
/// `None` when the field is absent. `Some(true)` when the value is `*` or lists a tag that
/// matches `current` under `cmp`; `Some(false)` when nothing matches, including when the
/// value is not a valid `"*" / #entity-tag` (a malformed list matches nothing, so a garbled
/// `If-None-Match` can never turn into a 304).
//= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.1
//# If-Match = "*" / #entity-tag
pub fn list_matches(
    req: &HeaderMap,
    name: &HeaderName,
    current: Option<&EntityTag<'_>>,
    cmp: Comparison,
) -> Option<bool> {
    let mut lines = req.get_all(name).into_iter().peekable();
    lines.peek()?;
    let mut members = 0usize;
    let mut star = false;
    let mut matched = false;
    for line in lines {
        for member in split_list(line.as_bytes()) {
            members += 1;
            if member == b"*" {
                star = true;
                continue;
            }
            let Some(tag) = EntityTag::parse(member) else {
                return Some(false);
            };
            if let Some(cur) = current {
                matched |= match cmp {
                    Comparison::Strong => tag.strong_eq(cur),
                    Comparison::Weak => tag.weak_eq(cur),
                };
            }
        }
    }
    if star {
        // "*" is only valid as the whole field value.
        return Some(members == 1);
    }
    Some(matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// Input, and the expected (weak, opaque-tag) if it parses.
    type ParseCase = (&'static [u8], Option<(bool, &'static [u8])>);
    /// Field lines, current entity tag, comparison, expected result.
    type ListCase = (
        &'static [&'static str],
        Option<&'static str>,
        Comparison,
        Option<bool>,
    );

    #[test]
    fn parses_entity_tags() {
        let cases: &[ParseCase] = &[
            (b"\"abc\"", Some((false, b"abc"))),
            (b"W/\"abc\"", Some((true, b"abc"))),
            (b"\"\"", Some((false, b""))),
            (b"W/\"\"", Some((true, b""))),
            (b"\"a,b\"", Some((false, b"a,b"))),
            (b"\"\x80\xff\"", Some((false, b"\x80\xff"))),
            (b"w/\"abc\"", None),
            (b"abc", None),
            (b"\"abc", None),
            (b"abc\"", None),
            (b"\"", None),
            (b"W/\"", None),
            (b"W/", None),
            (b"", None),
            (b"\"a\"b\"", None),
            (b"\"a b\"", None),
            (b"\"a\tb\"", None),
            (b"\"abc\" ", None),
            (b" \"abc\"", None),
            (b"W/ \"abc\"", None),
            (b"\"\x7f\"", None),
        ];
        for (input, want) in cases {
            let got = EntityTag::parse(input).map(|t| (t.weak, t.tag));
            assert_eq!(got, *want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn comparison_table_of_rfc_9110() {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
        //# | ETag 1 | ETag 2 | Strong Comparison | Weak Comparison |
        let cases: &[(&[u8], &[u8], bool, bool)] = &[
            (b"W/\"1\"", b"W/\"1\"", false, true),
            (b"W/\"1\"", b"W/\"2\"", false, false),
            (b"W/\"1\"", b"\"1\"", false, true),
            (b"\"1\"", b"\"1\"", true, true),
            (b"\"1\"", b"\"2\"", false, false),
        ];
        for (a, b, strong, weak) in cases {
            let (a, b) = (EntityTag::parse(a).unwrap(), EntityTag::parse(b).unwrap());
            assert_eq!(a.strong_eq(&b), *strong, "{a:?} {b:?}");
            assert_eq!(a.weak_eq(&b), *weak, "{a:?} {b:?}");
        }
    }

    fn eval(lines: &[&str], current: Option<&str>, cmp: Comparison) -> Option<bool> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(header::IF_MATCH, HeaderValue::from_str(l).unwrap());
        }
        let cur = current.map(|c| EntityTag::parse(c.as_bytes()).unwrap());
        list_matches(&h, &header::IF_MATCH, cur.as_ref(), cmp)
    }

    #[test]
    fn lists() {
        use Comparison::{Strong, Weak};
        let cases: &[ListCase] = &[
            (&[], Some("\"a\""), Strong, None),
            (&["*"], Some("\"a\""), Strong, Some(true)),
            (&["*"], None, Weak, Some(true)),
            (&[" * "], None, Weak, Some(true)),
            (&["*, \"a\""], Some("\"a\""), Weak, Some(false)),
            (&["*", "*"], Some("\"a\""), Weak, Some(false)),
            (&["\"a\""], Some("\"a\""), Strong, Some(true)),
            (&["\"b\", \"a\""], Some("\"a\""), Strong, Some(true)),
            (&["\"b\"", "\"a\""], Some("\"a\""), Strong, Some(true)),
            (&["W/\"a\""], Some("\"a\""), Strong, Some(false)),
            (&["W/\"a\""], Some("\"a\""), Weak, Some(true)),
            (&["\"a\""], Some("W/\"a\""), Weak, Some(true)),
            (&["\"a\""], Some("W/\"a\""), Strong, Some(false)),
            (&["\"a\""], None, Weak, Some(false)),
            (&["\"x,a\""], Some("\"a\""), Weak, Some(false)),
            (&["\"x,a\""], Some("\"x,a\""), Weak, Some(true)),
            (&[",, \"a\" ,"], Some("\"a\""), Weak, Some(true)),
            (&["a"], Some("\"a\""), Weak, Some(false)),
            (&["\"a\", garbage"], Some("\"a\""), Weak, Some(false)),
            (&["\"a\" \"b\""], Some("\"a\""), Weak, Some(false)),
            (&[""], Some("\"a\""), Weak, Some(false)),
        ];
        for (lines, cur, cmp, want) in cases {
            assert_eq!(
                eval(lines, *cur, *cmp),
                *want,
                "{lines:?} vs {cur:?} {cmp:?}"
            );
        }
    }

    #[test]
    fn response_etag_needs_exactly_one_valid_line() {
        let mut h = HeaderMap::new();
        assert_eq!(response_etag(&h), None);
        h.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        assert_eq!(
            response_etag(&h),
            Some(EntityTag {
                weak: false,
                tag: b"v1"
            })
        );
        h.append(header::ETAG, HeaderValue::from_static("\"v2\""));
        assert_eq!(response_etag(&h), None);
        h.insert(header::ETAG, HeaderValue::from_static("v1"));
        assert_eq!(response_etag(&h), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = EntityTag::parse(&s);
            if let Ok(v) = HeaderValue::from_bytes(&s) {
                let mut h = HeaderMap::new();
                h.insert(header::IF_NONE_MATCH, v);
                let cur = EntityTag { weak: false, tag: b"x" };
                let _ = list_matches(&h, &header::IF_NONE_MATCH, Some(&cur), Comparison::Weak);
            }
        }

        #[test]
        fn valid_tags_round_trip(weak: bool, tag in "[!#-~]{0,20}") {
            let s = format!("{}\"{}\"", if weak { "W/" } else { "" }, tag);
            let parsed = EntityTag::parse(s.as_bytes());
            proptest::prop_assert_eq!(parsed, Some(EntityTag { weak, tag: tag.as_bytes() }));
        }
    }
}
