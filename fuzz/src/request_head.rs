//! The raw HTTP/1 head scanner (`cluster::conn::head`) against httparse, hyper's parser.

use tiercel_cluster::conn::head::{framing_of, head_end};

/// Properties: wherever httparse finds a complete request head, the scanner finds the same
/// end and counts the same `Content-Length` and `Transfer-Encoding` lines; so a head hyper
/// would act on cannot carry ambiguous framing past the scanner, and a clean one is never
/// refused.
pub fn check(data: &[u8]) {
    let end = head_end(data);
    if let Some(end) = end {
        assert!(end <= data.len());
        let _ = framing_of(&data[..end]);
    }
    let mut fields = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(n)) = req.parse(data) else {
        return;
    };
    assert_eq!(end, Some(n), "head end");
    let count = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    let framing = framing_of(&data[..n]);
    assert_eq!(framing.content_lengths, count("content-length"));
    assert_eq!(framing.transfer_encoding, count("transfer-encoding") > 0);
}
