//! Comma-separated list fields (RFC 9110 §5.6.1) without allocating per member.
//!
//! Several fields we parse or extend (`If-None-Match`, `CDN-Loop`, `Forwarded`, `Via`,
//! `Cache-Status`) are lists whose members may contain quoted strings with commas in them, so a
//! plain `split(',')` is wrong: these helpers split outside quotes only.

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::value_from;

/// Trims RFC 9110 §5.6.3 `OWS` (spaces and horizontal tabs) from both ends.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else {
        return &[];
    };
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &s[start..=end]
}

/// The members of one list field line, trimmed, with empty members skipped.
///
//= https://www.rfc-editor.org/rfc/rfc9110#section-5.6.1.2
//# a recipient MUST parse and ignore a reasonable number of empty list elements
pub(crate) fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    SplitOutsideQuotes {
        rest: Some(value),
        sep: b',',
    }
    .map(trim_ows)
    .filter(|m| !m.is_empty())
}

/// Splits at `sep` wherever it is not inside a quoted string (`"..."` with `\` escapes).
/// An unterminated quoted string runs to the end of the input; the caller's parser then
/// rejects that piece.
pub(crate) struct SplitOutsideQuotes<'a> {
    /// What has not been returned yet; `None` once the last piece was returned.
    pub(crate) rest: Option<&'a [u8]>,
    /// The separator byte, `,` for lists and `;` for parameters.
    pub(crate) sep: u8,
}

impl<'a> Iterator for SplitOutsideQuotes<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest?;
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, &b) in s.iter().enumerate() {
            if in_quotes {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = false;
                }
            } else if b == b'"' {
                in_quotes = true;
            } else if b == self.sep {
                self.rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        self.rest = None;
        Some(s)
    }
}

/// Every member of every line of the field `name`, in order.
pub(crate) fn members<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'h [u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| split_list(v.as_bytes()))
}

/// Appends the list member `value` to the list field `name`, folding any existing lines into
/// one line.
///
/// One line rather than a second field line because several consumers of `X-Forwarded-For` and
/// `Forwarded` read only the first line; RFC 9110 §5.3 makes the two forms equivalent.
//= https://www.rfc-editor.org/rfc/rfc9110#section-5.3
//# A recipient MAY combine multiple field lines within a field section that have the same
//# field name into one field line, without changing the semantics of the message, by
//# appending each subsequent field line value to the initial field line value in order,
//# separated by a comma (",") and optional whitespace (OWS, defined in Section 5.6.3).
pub(crate) fn append_value(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    match headers.entry(name) {
        // The usual case: nothing to extend, the value goes in as it is (no copy).
        Entry::Vacant(vacant) => {
            vacant.insert(value);
        }
        Entry::Occupied(mut lines) => {
            let mut out = Vec::new();
            for line in lines.iter() {
                let line = trim_ows(line.as_bytes());
                if !line.is_empty() {
                    out.extend_from_slice(line);
                    out.extend_from_slice(b", ");
                }
            }
            out.extend_from_slice(value.as_bytes());
            // Replaces every line with the folded one.
            lines.insert(value_from(out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_list(s.as_bytes())
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    #[test]
    fn splits_outside_quotes_only() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("a", &["a"]),
            ("a,b", &["a", "b"]),
            (" a , b ", &["a", "b"]),
            (",,a,, ,b,", &["a", "b"]),
            ("\"a,b\", c", &["\"a,b\"", "c"]),
            ("W/\"x,y\",\"z\"", &["W/\"x,y\"", "\"z\""]),
            ("\"a\\\",b\", c", &["\"a\\\",b\"", "c"]),
            ("\"unterminated, x", &["\"unterminated, x"]),
            ("x; p=\"1,2\", y", &["x; p=\"1,2\"", "y"]),
            ("\t a\t", &["a"]),
        ];
        for (input, want) in cases {
            assert_eq!(split(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn trims_only_ows() {
        assert_eq!(trim_ows(b"  a b \t"), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }

    #[test]
    fn append_folds_lines() {
        let mut h = HeaderMap::new();
        let name = HeaderName::from_static("x-list");
        append_value(&mut h, name.clone(), HeaderValue::from_static("a"));
        assert_eq!(h.get(&name), Some(&HeaderValue::from_static("a")));
        h.append(&name, HeaderValue::from_static(" b "));
        h.append(&name, HeaderValue::from_static(""));
        append_value(&mut h, name.clone(), HeaderValue::from_static("c"));
        let all: Vec<_> = h.get_all(&name).iter().collect();
        assert_eq!(all, vec![&HeaderValue::from_static("a, b, c")]);
    }
}
