//! Single byte-range requests (RFC 9110 §14), as the demo origin answers them with `ranges=1`.
//! Pure: the caller decides whether ranges apply at all (method, status, `If-Range`).

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// Ignore the header and send the whole representation (absent, malformed, several ranges,
    /// or a unit other than bytes).
    Full,
    /// Send bytes `start..=end` in a 206.
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive.
        end: u64,
    },
    /// Answer 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides the answer to `range` (the `Range` field value, if any) for `len` bytes.
pub(crate) fn answer(range: Option<&str>, len: u64) -> RangeAnswer {
    let Some(value) = range else {
        return RangeAnswer::Full;
    };
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.2
    //# A server MAY ignore the Range header field.
    // We honour exactly one range of unit "bytes" and ignore anything else.
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.2
        //# If the selected representation is shorter than the specified suffix-length, the
        //# entire representation is used.
        if !digits(last) {
            return RangeAnswer::Full;
        }
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
        //# a suffix-range with a non-zero suffix-length [is satisfiable]
        if suffix == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: len.saturating_sub(suffix),
            end: len - 1,
        };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeAnswer::Full;
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match last.parse::<u64>() {
            Ok(e) => Some(e),
            Err(_) => return RangeAnswer::Full,
        }
    };
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.2
    //# A range request is invalid if the last-pos value is present and less than the first-pos.
    if end.is_some_and(|e| e < start) {
        return RangeAnswer::Full;
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
    //# an int-range [is satisfiable] with a first-pos that is less than the current length of
    //# the selected representation
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.2
    //# If the last-pos value is absent, or if the value is greater than or equal to the current
    //# length of the representation data, the byte range is interpreted as the remainder of the
    //# representation
    let end = end.map_or(len - 1, |e| e.min(len - 1));
    RangeAnswer::Partial { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use RangeAnswer::*;
        let p = |start, end| Partial { start, end };
        let cases = [
            (None, 100, Full),
            (Some("bytes=0-0"), 100, p(0, 0)),
            (Some("bytes=0-99"), 100, p(0, 99)),
            (Some("bytes=10-19"), 100, p(10, 19)),
            (Some("bytes=10-"), 100, p(10, 99)),
            (Some("bytes=90-1000"), 100, p(90, 99)),
            (Some("bytes=-10"), 100, p(90, 99)),
            (Some("bytes=-1000"), 100, p(0, 99)),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=100-200"), 100, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=20-10"), 100, Full),
            (Some("bytes=0-1,5-6"), 100, Full),
            (Some("items=0-1"), 100, Full),
            (Some("bytes=a-b"), 100, Full),
            (Some("bytes=-"), 100, Full),
            (Some("bytes=1"), 100, Full),
            (Some("bytes=+1-2"), 100, Full),
            (Some("bytes=99999999999999999999-"), 100, Full),
            (Some(" bytes=5-6 "), 100, p(5, 6)),
        ];
        for (header, len, want) in cases {
            assert_eq!(answer(header, len), want, "{header:?} len {len}");
        }
    }
}
