//! Vary (RFC 9111 §4.1): which request fields select among a URL's stored responses, reduced
//! to a 32-byte variant id so a lookup compares ids instead of header values.

use http::{HeaderMap, HeaderName, header};

use super::syntax::{is_token, list_elements, split_list};

/// The request fields a response varies on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VarySpec {
    /// No Vary field (or one naming no field): one variant per URL.
    None,
    /// `Vary: *`: the response never matches a later request (not stored).
    Star,
    /// The named fields: lower-case, sorted, deduplicated.
    Fields(Vec<String>),
}

/// The Vary of a response: all Vary lines combined; `*` anywhere → `Star`.
//= https://www.rfc-editor.org/rfc/rfc9110#section-12.5.5
//# Vary = #( "*" / field-name )
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.1
//# A stored response with a Vary header field value containing a member "*" always fails to
//# match.
pub fn vary_spec(resp_headers: &HeaderMap) -> VarySpec {
    let mut fields = Vec::new();
    for e in list_elements(resp_headers, header::VARY) {
        if e == b"*" {
            return VarySpec::Star;
        }
        // A member that is not a field-name can name no request field: ignore it.
        if is_token(e) {
            fields.push(String::from_utf8_lossy(e).to_ascii_lowercase());
        }
    }
    fields.sort();
    fields.dedup();
    if fields.is_empty() {
        VarySpec::None
    } else {
        VarySpec::Fields(fields)
    }
}

/// The id of a request's variant: equal ids ⇔ the requests match for this Vary.
pub type VariantId = [u8; 32];

/// The variant id of every request when the response has no Vary.
pub const NO_VARY_VARIANT: VariantId = [0; 32];

/// blake3 over the normalised values (multiple lines combined, OWS normalised) of each field in
/// order, absent distinguished from empty. Equal ids ⇔ the request matches the variant (§4.1).
/// VarySpec::None → [`NO_VARY_VARIANT`]. `Star` gets a fixed id too, but such responses are
/// never stored, so it matches nothing stored.
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.1
//# The header fields from two requests are defined to match if and only if those in the first
//# request can be transformed to those in the second request by applying any of the
//# following:
//#  *  adding or removing whitespace, where allowed in the header field's syntax
//#  *  combining multiple header field lines with the same field name (see Section 5.2 of
//#     [HTTP])
//#  *  normalizing both header field values in a way that is known to have identical
//#     semantics, according to the header field's specification (e.g., reordering field values
//#     when order is not significant; case-normalization, where values are defined to be
//#     case-insensitive)
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.1
//# If (after any normalization that might take place) a header field is absent from a
//# request, it can only match another request if it is also absent there.
pub fn variant_id(spec: &VarySpec, req_headers: &HeaderMap) -> VariantId {
    let fields = match spec {
        VarySpec::None => return NO_VARY_VARIANT,
        VarySpec::Star => return *blake3::hash(b"tiercel-vary-star").as_bytes(),
        VarySpec::Fields(f) => f,
    };
    let mut h = blake3::Hasher::new();
    h.update(b"tiercel-vary-v1");
    for name in fields {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        match normalized_value(name, req_headers) {
            None => {
                h.update(&[0]);
            }
            Some(v) => {
                h.update(&[1]);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(&v);
            }
        }
    }
    *h.finalize().as_bytes()
}

/// Fields whose values are case-insensitive by definition: content codings (RFC 9110 §8.4.1),
/// charsets (§8.3.2) and language tags (RFC 4647 §2).
const CASE_INSENSITIVE: [&str; 3] = ["accept-encoding", "accept-charset", "accept-language"];

/// The field's lines combined as one list: elements trimmed, empty ones dropped, joined with
/// ","; lower-cased for the case-insensitive fields. `None` when the field is absent; a
/// present field with an empty value is `Some(empty)`.
fn normalized_value(name: &str, req_headers: &HeaderMap) -> Option<Vec<u8>> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let mut lines = req_headers.get_all(&name).iter().peekable();
    lines.peek()?;
    let lower = CASE_INSENSITIVE.contains(&name.as_str());
    let mut out = Vec::new();
    for e in lines.flat_map(|v| split_list(v.as_bytes())) {
        if !out.is_empty() {
            out.push(b',');
        }
        if lower {
            out.extend(e.iter().map(u8::to_ascii_lowercase));
        } else {
            out.extend_from_slice(e);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::headers;
    use proptest::prelude::*;

    fn f(names: &[&str]) -> VarySpec {
        VarySpec::Fields(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn vary_spec_table() {
        let cases: Vec<(Vec<(&str, &str)>, VarySpec)> = vec![
            (vec![], VarySpec::None),
            (vec![("vary", "")], VarySpec::None),
            (vec![("vary", " , ")], VarySpec::None),
            (vec![("vary", "Accept-Encoding")], f(&["accept-encoding"])),
            (vec![("vary", "b, A"), ("vary", "a")], f(&["a", "b"])),
            (vec![("vary", "accept, *")], VarySpec::Star),
            (vec![("vary", "accept"), ("vary", "*")], VarySpec::Star),
            (vec![("vary", "\"*\"")], VarySpec::None),
            (vec![("vary", "x y, origin")], f(&["origin"])),
        ];
        for (h, want) in cases {
            assert_eq!(vary_spec(&headers(&h)), want, "{h:?}");
        }
    }

    /// (vary fields, request A, request B) → match?
    #[test]
    fn matching_table() {
        type Case<'a> = (
            &'a str,
            &'a [&'a str],
            Vec<(&'a str, &'a str)>,
            Vec<(&'a str, &'a str)>,
            bool,
        );
        let ae = &["accept-encoding"][..];
        let cases: Vec<Case> = vec![
            (
                "identical",
                ae,
                vec![("accept-encoding", "gzip")],
                vec![("accept-encoding", "gzip")],
                true,
            ),
            (
                "different",
                ae,
                vec![("accept-encoding", "gzip")],
                vec![("accept-encoding", "br")],
                false,
            ),
            ("both absent", ae, vec![], vec![], true),
            (
                "absent vs empty",
                ae,
                vec![],
                vec![("accept-encoding", "")],
                false,
            ),
            (
                "empty vs empty",
                ae,
                vec![("accept-encoding", "")],
                vec![("accept-encoding", "")],
                true,
            ),
            (
                "ows around commas",
                ae,
                vec![("accept-encoding", "gzip,br")],
                vec![("accept-encoding", " gzip ,  br ")],
                true,
            ),
            (
                "lines combined",
                ae,
                vec![("accept-encoding", "gzip, br")],
                vec![("accept-encoding", "gzip"), ("accept-encoding", "br")],
                true,
            ),
            (
                "empty elements",
                ae,
                vec![("accept-encoding", "gzip,,br,")],
                vec![("accept-encoding", "gzip, br")],
                true,
            ),
            (
                "order matters",
                ae,
                vec![("accept-encoding", "gzip, br")],
                vec![("accept-encoding", "br, gzip")],
                false,
            ),
            (
                "case-insensitive codings",
                ae,
                vec![("accept-encoding", "GZIP")],
                vec![("accept-encoding", "gzip")],
                true,
            ),
            (
                "case-sensitive elsewhere",
                &["x-v"],
                vec![("x-v", "A")],
                vec![("x-v", "a")],
                false,
            ),
            (
                "other fields ignored",
                ae,
                vec![("accept-encoding", "gzip"), ("cookie", "a")],
                vec![("accept-encoding", "gzip"), ("cookie", "b")],
                true,
            ),
            (
                "two fields both match",
                &["accept", "origin"],
                vec![("origin", "o"), ("accept", "a")],
                vec![("accept", "a"), ("origin", "o")],
                true,
            ),
            (
                "two fields one differs",
                &["accept", "origin"],
                vec![("origin", "o"), ("accept", "a")],
                vec![("accept", "a"), ("origin", "p")],
                false,
            ),
            (
                "value cannot shift between fields",
                &["a", "b"],
                vec![("a", "xy")],
                vec![("a", "x"), ("b", "y")],
                false,
            ),
            (
                "quoted comma preserved",
                &["x-q"],
                vec![("x-q", "\"a,b\"")],
                vec![("x-q", "\"a, b\"")],
                false,
            ),
        ];
        for (name, fields, a, b, want) in cases {
            let spec = f(fields);
            let (ia, ib) = (
                variant_id(&spec, &headers(&a)),
                variant_id(&spec, &headers(&b)),
            );
            assert_eq!(ia == ib, want, "{name}");
        }
    }

    #[test]
    fn fixed_ids() {
        let h = headers(&[("accept", "x")]);
        assert_eq!(variant_id(&VarySpec::None, &h), NO_VARY_VARIANT);
        assert_eq!(variant_id(&VarySpec::None, &headers(&[])), NO_VARY_VARIANT);
        assert_eq!(
            variant_id(&VarySpec::Star, &h),
            variant_id(&VarySpec::Star, &headers(&[]))
        );
        assert_ne!(variant_id(&f(&["accept"]), &headers(&[])), NO_VARY_VARIANT);
        // The field list is part of the id.
        assert_ne!(
            variant_id(&f(&["a"]), &headers(&[])),
            variant_id(&f(&["b"]), &headers(&[]))
        );
    }

    #[test]
    fn serde_roundtrip() {
        for spec in [VarySpec::None, VarySpec::Star, f(&["accept", "origin"])] {
            let json = serde_json::to_string(&spec).unwrap_or_default();
            let back: VarySpec =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
            assert_eq!(back, spec);
        }
    }

    proptest! {
        #[test]
        fn whitespace_never_changes_the_id(elems in proptest::collection::vec("[a-z0-9;=.]{1,8}", 1..5), pad in 0usize..3) {
            let spec = f(&["accept-encoding"]);
            let tight = elems.join(",");
            let sp = " ".repeat(pad);
            let loose = elems.join(&format!("{sp},{sp}\t"));
            prop_assert_eq!(
                variant_id(&spec, &headers(&[("accept-encoding", &tight)])),
                variant_id(&spec, &headers(&[("accept-encoding", &loose)]))
            );
        }

        #[test]
        fn spec_is_sorted_and_deduped(names in proptest::collection::vec("[A-Za-z-]{1,6}", 0..6)) {
            let joined = names.join(", ");
            match vary_spec(&headers(&[("vary", &joined)])) {
                VarySpec::Fields(f) => {
                    let mut want: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
                    want.sort();
                    want.dedup();
                    prop_assert_eq!(f, want);
                }
                VarySpec::None => prop_assert!(names.is_empty()),
                VarySpec::Star => prop_assert!(false),
            }
        }
    }
}
