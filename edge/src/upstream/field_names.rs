//! Field names of upstream responses, shared between the objects that store them.
//!
//! A standard name (`content-type`) is a constant in `http`; any other (`x-amz-request-id`,
//! `x-origin-hits`) is parsed into an allocation of its own, and a stored object keeps it for as
//! long as it is cached. An origin sends the same few custom names on every response, so each
//! thread keeps the names it has parsed: a repeat is a lookup and a clone that shares the first
//! one's bytes (one allocation fewer per custom field of every stored object, and none to free
//! when the object is evicted).
//!
//! Bounded: past [`MAX_NAMES`] distinct names (an origin inventing names per response) the table
//! starts afresh, so it never holds more than that.

use std::cell::RefCell;
use std::collections::HashMap;

use http::HeaderName;
use http::header::InvalidHeaderName;

/// Distinct names a thread keeps.
pub(crate) const MAX_NAMES: usize = 256;

type Names = HashMap<Box<[u8]>, HeaderName, foldhash::fast::RandomState>;

thread_local! {
    static NAMES: RefCell<Names> = RefCell::new(Names::default());
}

/// `raw` as a field name, as `HeaderName::from_bytes` would make it, shared with earlier
/// responses that sent the same bytes.
pub(crate) fn field_name(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    NAMES.with_borrow_mut(|names| {
        if let Some(name) = names.get(raw) {
            return Ok(name.clone());
        }
        let name = HeaderName::from_bytes(raw)?;
        if names.len() >= MAX_NAMES {
            names.clear();
        }
        names.insert(raw.into(), name.clone());
        Ok(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_custom_name_shares_its_bytes_and_equals_a_fresh_parse() {
        let first = field_name(b"X-Origin-Hits").unwrap();
        let again = field_name(b"X-Origin-Hits").unwrap();
        assert_eq!(first, HeaderName::from_bytes(b"x-origin-hits").unwrap());
        assert_eq!(first.as_str(), "x-origin-hits");
        assert_eq!(first.as_str().as_ptr(), again.as_str().as_ptr());
        assert_eq!(
            field_name(b"content-type").unwrap(),
            http::header::CONTENT_TYPE
        );
    }

    #[test]
    fn invalid_names_are_refused_and_not_kept() {
        assert!(field_name(b"bad name").is_err());
        assert!(field_name(b"").is_err());
        NAMES.with_borrow(|names| assert!(!names.contains_key(&b"bad name"[..])));
    }

    #[test]
    fn the_table_never_holds_more_than_its_bound() {
        for i in 0..MAX_NAMES * 3 + 7 {
            let raw = format!("x-invented-{i}");
            let name = field_name(raw.as_bytes()).unwrap();
            assert_eq!(name.as_str(), raw);
            NAMES.with_borrow(|names| assert!(names.len() <= MAX_NAMES));
        }
    }
}
