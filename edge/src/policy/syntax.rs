//! RFC 9110 field syntax shared by the policy parsers: comma lists, tokens, quoted strings and
//! delta-seconds. Everything works on bytes, because a field value may legally carry obs-text
//! (bytes above 0x7F) that `HeaderValue::to_str` refuses, and none of it ever panics.

use std::time::Duration;

use http::HeaderMap;
use http::header::AsHeaderName;

//= https://www.rfc-editor.org/rfc/rfc9111#section-1.2.2
//# If a cache receives a delta-seconds value greater than the greatest integer it can
//# represent, or if any of its subsequent calculations overflows, the cache MUST consider the
//# value to be 2147483648 (2^31) or the greatest positive integer it can conveniently represent.
/// The value every delta-seconds (and every age) saturates at.
pub(crate) const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The saturation value as a `Duration`.
pub(crate) const MAX_DELTA: Duration = Duration::from_secs(MAX_DELTA_SECONDS);

//= https://www.rfc-editor.org/rfc/rfc9110#section-5.6.2
//# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" /
//# "~" / DIGIT / ALPHA
/// Whether `b` may appear in an RFC 9110 token.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty token.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// OWS = *( SP / HTAB ).
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing OWS.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

//= https://www.rfc-editor.org/rfc/rfc9111#section-1.2.2
//# delta-seconds = 1*DIGIT
/// Parses delta-seconds, saturating at 2^31. `None` for anything that is not 1*DIGIT (signs,
/// spaces, decimals, the empty string).
pub(crate) fn parse_delta_seconds(s: &[u8]) -> Option<Duration> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in s {
        v = v.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        if v >= MAX_DELTA_SECONDS {
            return Some(MAX_DELTA);
        }
    }
    Some(Duration::from_secs(v))
}

/// Parses a quoted-string at the start of `s` (which must begin with DQUOTE). Returns the
/// unescaped content and the number of bytes consumed, or `None` when it is unterminated or
/// contains a byte that is neither qdtext nor a quoted-pair.
//= https://www.rfc-editor.org/rfc/rfc9110#section-5.6.4
//# quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//# qdtext         = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//# quoted-pair    = "\" ( HTAB / SP / VCHAR / obs-text )
pub(crate) fn parse_quoted_string(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    if s.first() != Some(&b'"') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some((out, i + 1)),
            b'\\' => {
                let c = *s.get(i + 1)?;
                if c != b'\t' && !(0x20..=0x7e).contains(&c) && c < 0x80 {
                    return None;
                }
                out.push(c);
                i += 2;
            }
            c if c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80 => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    None
}

/// Splits one field line into list elements at commas outside quoted strings, trimming OWS
/// around each and dropping empty elements.
//= https://www.rfc-editor.org/rfc/rfc9110#section-5.6.1.2
//# a recipient MUST parse and ignore a reasonable number of empty list elements
pub(crate) fn split_list(line: &[u8]) -> Vec<&[u8]> {
    list_items(line).collect()
}

/// [`split_list`] without collecting: the elements one by one, with no allocation (the
/// protocol module's list splitter, which follows the same rules).
pub(crate) fn list_items(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    crate::protocol::split_list(line)
}

/// Every list element of every line of field `name`: the combination of field lines that
/// RFC 9110 §5.3 defines for list-based fields.
//= https://www.rfc-editor.org/rfc/rfc9110#section-5.3
//# A recipient MAY combine multiple field lines within a field section that have the same
//# field name into one field line, without changing the semantics of the message, by appending
//# each subsequent field line value to the initial field line value in order, separated by a
//# comma (",") and optional whitespace (OWS, defined in Section 5.6.3).
pub(crate) fn list_elements<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Vec<&[u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| split_list(v.as_bytes()))
        .collect()
}

/// Index of the first `needle` in `s` outside a quoted string.
pub(crate) fn find_unquoted(s: &[u8], needle: u8) -> Option<usize> {
    let mut in_quotes = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            c if c == needle && !in_quotes => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A `#field-name` list (the argument of qualified no-cache / private), lower-cased. Elements
/// that are not tokens are dropped.
pub(crate) fn field_name_list(s: &[u8]) -> Vec<String> {
    split_list(s)
        .into_iter()
        .filter(|e| is_token(e))
        .map(|e| String::from_utf8_lossy(e).to_ascii_lowercase())
        .collect()
}

/// The first line of a singleton field as trimmed UTF-8, if it is valid UTF-8.
pub(crate) fn first_str<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&str> {
    let v = headers.get(name)?;
    std::str::from_utf8(trim_ows(v.as_bytes())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delta_seconds_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("60", Some(60)),
            ("0060", Some(60)),
            ("2147483647", Some(2_147_483_647)),
            ("2147483648", Some(MAX_DELTA_SECONDS)),
            ("99999999999999999999999999", Some(MAX_DELTA_SECONDS)),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("1.5", None),
            (" 1", None),
            ("1 ", None),
            ("1a", None),
            ("abc", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_delta_seconds(input.as_bytes()),
                want.map(Duration::from_secs),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn quoted_string_table() {
        let cases: &[(&str, Option<(&str, usize)>)] = &[
            (r#""abc""#, Some(("abc", 5))),
            (r#""""#, Some(("", 2))),
            (r#""a, b" rest"#, Some(("a, b", 6))),
            (r#""a\"b""#, Some(("a\"b", 6))),
            (r#""a\\b""#, Some(("a\\b", 6))),
            (r#""unterminated"#, None),
            (r#""ends in escape\"#, None),
            ("no quote", None),
            ("\"ctl\x01\"", None),
        ];
        for (input, want) in cases {
            let got = parse_quoted_string(input.as_bytes())
                .map(|(v, n)| (String::from_utf8(v).unwrap_or_default(), n));
            assert_eq!(
                got,
                want.map(|(s, n)| (s.to_string(), n)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn split_list_table() {
        let cases: &[(&str, &[&str])] = &[
            ("a,b", &["a", "b"]),
            (" a , b ", &["a", "b"]),
            ("a,,b,", &["a", "b"]),
            (",,,", &[]),
            ("", &[]),
            (
                r#"no-cache="a, b", max-age=1"#,
                &[r#"no-cache="a, b""#, "max-age=1"],
            ),
            (r#"x="a\", b", y"#, &[r#"x="a\", b""#, "y"]),
            ("\ta\t,\tb", &["a", "b"]),
        ];
        for (input, want) in cases {
            let got: Vec<&[u8]> = split_list(input.as_bytes());
            let want: Vec<&[u8]> = want.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(got, want, "input {input:?}");
        }
    }

    /// The splitting rules as first written (collecting into a vector), kept as the
    /// reference the iterator is checked against.
    fn reference_split(line: &[u8]) -> Vec<&[u8]> {
        fn push<'a>(out: &mut Vec<&'a [u8]>, e: &'a [u8]) {
            let e = trim_ows(e);
            if !e.is_empty() {
                out.push(e);
            }
        }
        let mut out = Vec::new();
        let (mut start, mut in_quotes, mut i) = (0, false, 0);
        while i < line.len() {
            match line[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b',' if !in_quotes => {
                    push(&mut out, &line[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        push(&mut out, &line[start.min(line.len())..]);
        out
    }

    proptest::proptest! {
        #[test]
        fn list_items_split_as_the_reference_does(
            line in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'=', b',', b' ', b'\t', b'"', b'\\', b'x']),
                0..40,
            )
        ) {
            let got: Vec<&[u8]> = list_items(&line).collect();
            proptest::prop_assert_eq!(got, reference_split(&line));
        }
    }

    #[test]
    fn field_name_list_lowercases_and_drops_non_tokens() {
        assert_eq!(
            field_name_list(b"Set-Cookie, X-Foo , bad name,"),
            vec!["set-cookie".to_string(), "x-foo".to_string()]
        );
        assert!(field_name_list(b"").is_empty());
    }

    #[test]
    fn find_unquoted_skips_quoted() {
        assert_eq!(find_unquoted(br#"a="x;y";z"#, b';'), Some(7));
        assert_eq!(find_unquoted(br#"a="x;y""#, b';'), None);
        assert_eq!(find_unquoted(b"a;b", b';'), Some(1));
    }

    proptest! {
        #[test]
        fn delta_seconds_roundtrip(n in 0u64..MAX_DELTA_SECONDS) {
            prop_assert_eq!(parse_delta_seconds(n.to_string().as_bytes()), Some(Duration::from_secs(n)));
        }

        #[test]
        fn parsers_never_panic(s in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_delta_seconds(&s);
            let _ = parse_quoted_string(&s);
            let _ = split_list(&s);
            let _ = field_name_list(&s);
            let _ = find_unquoted(&s, b';');
        }

        #[test]
        fn quoted_string_roundtrip(s in "[ -~]{0,20}") {
            let mut q = String::from("\"");
            for c in s.chars() {
                if c == '"' || c == '\\' { q.push('\\'); }
                q.push(c);
            }
            q.push('"');
            let (v, n) = parse_quoted_string(q.as_bytes()).unwrap_or_default();
            prop_assert_eq!(n, q.len());
            prop_assert_eq!(v, s.into_bytes());
        }
    }
}
