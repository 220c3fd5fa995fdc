//! How a request says where its body ends, checked before anything of it is forwarded.
//!
//! Request smuggling lives in disagreements about message length between two HTTP parsers on
//! one path: a front proxy that reads `Content-Length` and a back end that reads
//! `Transfer-Encoding` see a different second request in the same bytes. hyper already refuses
//! most malformed framing (a list-valued or non-numeric `Content-Length`, an unknown or
//! non-final transfer coding, obs-fold, whitespace before a colon, control bytes in values).
//! What it accepts because RFC 9112 allows it, this module refuses, as the large CDNs do:
//!
//! | request | RFC 9112 | here |
//! |---|---|---|
//! | `Content-Length` and `Transfer-Encoding` | §6.1: MAY reject, else TE wins and the connection closes after | 400, connection closed, nothing forwarded |
//! | two `Content-Length` lines, even equal | §6.3: MAY accept identical values | 400 |
//! | `Transfer-Encoding` other than exactly one `chunked` | §6.1: chunked MUST NOT be applied twice | 400 |
//!
//! Whatever is accepted is re-framed when it is forwarded (`upstream/h1wire.rs` writes the
//! framing from the body itself, and hyper's HTTP/2 client its own), so the origin never sees
//! the client's framing.

use http::{HeaderMap, Version, header};

use super::lists::members;

/// Why a request's framing was refused (always 400, and the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndCoding,
    /// More than one `Content-Length` field line.
    #[error("more than one Content-Length")]
    DuplicateLength,
    /// A `Transfer-Encoding` that is not exactly `chunked`.
    #[error("Transfer-Encoding other than chunked")]
    Coding,
}

/// Checks the framing fields of a request received over `version`.
pub fn check_framing(headers: &HeaderMap, version: Version) -> Result<(), FramingError> {
    let lengths = headers.get_all(header::CONTENT_LENGTH).iter().count();
    let coded = headers.contains_key(header::TRANSFER_ENCODING);
    //= https://www.rfc-editor.org/rfc/rfc9112#section-6.1
    //# A server MAY reject a request that contains both Content-Length and Transfer-Encoding
    //# or process such a request in accordance with the Transfer-Encoding alone.
    if coded && lengths > 0 {
        return Err(FramingError::LengthAndCoding);
    }
    //= https://www.rfc-editor.org/rfc/rfc9112#section-6.3
    //# If a message is received without Transfer-Encoding and with an invalid Content-Length
    //# header field, then the message framing is invalid and the recipient MUST treat it as
    //# an unrecoverable error
    if lengths > 1 {
        return Err(FramingError::DuplicateLength);
    }
    if coded && version == Version::HTTP_11 {
        //= https://www.rfc-editor.org/rfc/rfc9112#section-6.1
        //# A sender MUST NOT apply the chunked transfer coding more than once to a message
        //# body
        let mut codings = members(headers, &header::TRANSFER_ENCODING);
        let only_chunked = matches!(codings.next(), Some(c) if c.eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none();
        if !only_chunked {
            return Err(FramingError::Coding);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn h(fields: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in fields {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn framing_table() {
        use FramingError::*;
        let v11 = Version::HTTP_11;
        type Case = (
            &'static [(&'static str, &'static str)],
            Result<(), FramingError>,
        );
        let table: &[Case] = &[
            (&[], Ok(())),
            (&[("content-length", "5")], Ok(())),
            (&[("transfer-encoding", "chunked")], Ok(())),
            (&[("transfer-encoding", "Chunked")], Ok(())),
            (
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
                Err(LengthAndCoding),
            ),
            (
                &[("content-length", "5"), ("content-length", "5")],
                Err(DuplicateLength),
            ),
            (
                &[
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                Err(Coding),
            ),
            (&[("transfer-encoding", "chunked, chunked")], Err(Coding)),
            (&[("transfer-encoding", "gzip, chunked")], Err(Coding)),
            (&[("transfer-encoding", "identity")], Err(Coding)),
        ];
        for (fields, want) in table {
            assert_eq!(check_framing(&h(fields), v11), *want, "{fields:?}");
        }
    }
}
