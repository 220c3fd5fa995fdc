//! W3C Trace Context (`traceparent` / `tracestate`) propagation for requests going upstream.
//!
//! We take part in the trace as one more span: the trace-id and flags of a valid incoming
//! `traceparent` are kept, and the parent-id becomes ours, so edge → shield → origin show up
//! as one trace. Invalid input starts a new trace rather than propagating garbage.

use http::{HeaderMap, HeaderValue};

use super::lists::trim_ows;
use super::{TRACEPARENT, TRACESTATE, value_from};

/// The fields of a `traceparent` we carry forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parent {
    trace_id: [u8; 16],
    flags: u8,
}

/// The `traceparent` to send upstream: the incoming trace continued with a new parent-id
/// (`random[16..24]`), or, when `incoming` is absent or invalid, a new trace (trace-id
/// `random[..16]`, flags `00`: we make no sampling decision of our own).
///
/// All-zero random ids (which the specification forbids) are nudged to a valid value.
pub fn next_traceparent(incoming: Option<&HeaderValue>, random: [u8; 24]) -> HeaderValue {
    let parent = incoming.and_then(|v| parse(v.as_bytes()));
    build(parent, random)
}

/// Rewrites the trace headers of a request going upstream in place and reports whether the
/// incoming trace was continued.
///
/// A request with exactly one valid `traceparent` line keeps its `tracestate` lines; otherwise
/// a new trace starts and `tracestate` is dropped.
//= https://www.w3.org/TR/trace-context/#tracestate-header
//# If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate.
pub fn propagate_trace(headers: &mut HeaderMap, random: [u8; 24]) -> bool {
    let mut lines = headers.get_all(TRACEPARENT).into_iter();
    let parent = match (lines.next(), lines.next()) {
        (Some(only), None) => parse(only.as_bytes()),
        _ => None,
    };
    if parent.is_none() {
        headers.remove(TRACESTATE);
    }
    headers.insert(TRACEPARENT, build(parent, random));
    parent.is_some()
}

fn build(parent: Option<Parent>, random: [u8; 24]) -> HeaderValue {
    let mut new_trace = [0u8; 16];
    new_trace.copy_from_slice(&random[..16]);
    let mut parent_id = [0u8; 8];
    parent_id.copy_from_slice(&random[16..]);
    non_zero(&mut new_trace);
    non_zero(&mut parent_id);
    let (trace_id, flags) = match parent {
        Some(p) => (p.trace_id, p.flags),
        None => (new_trace, 0),
    };
    let mut out = Vec::with_capacity(55);
    out.extend_from_slice(b"00-");
    push_hex(&mut out, &trace_id);
    out.push(b'-');
    push_hex(&mut out, &parent_id);
    out.push(b'-');
    push_hex(&mut out, &[flags]);
    value_from(out)
}

//= https://www.w3.org/TR/trace-context/#trace-id
//# All bytes as zero (00000000000000000000000000000000) is considered an invalid value.
//= https://www.w3.org/TR/trace-context/#parent-id
//# All bytes as zero (0000000000000000) is considered an invalid value.
fn non_zero(id: &mut [u8]) {
    if id.iter().all(|&b| b == 0)
        && let Some(last) = id.last_mut()
    {
        *last = 1;
    }
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Parses a `traceparent` value, `None` if it is not valid.
//= https://www.w3.org/TR/trace-context/#traceparent-header-field-values
//# version-format   = trace-id "-" parent-id "-" trace-flags
//# trace-id         = 32HEXDIGLC  ; 16 bytes array identifier. All zeroes forbidden
//# parent-id        = 16HEXDIGLC  ; 8 bytes array identifier. All zeroes forbidden
//# trace-flags      = 2HEXDIGLC   ; 8 bit flags. Currently, only one bit is used.
fn parse(value: &[u8]) -> Option<Parent> {
    let v = trim_ows(value);
    //= https://www.w3.org/TR/trace-context/#versioning-of-traceparent
    //# If the size of the header is shorter than 55 characters, the vendor should not parse
    //# the header and should restart the trace.
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    //= https://www.w3.org/TR/trace-context/#version
    //# version = 2HEXDIGLC   ; this document assumes version 00. Version ff is forbidden
    if version == 0xff {
        return None;
    }
    if version == 0 {
        // Version 00 is exactly 55 characters: extra data makes it invalid.
        if v.len() != 55 {
            return None;
        }
    } else if v.len() > 55 && v[55] != b'-' {
        //= https://www.w3.org/TR/trace-context/#versioning-of-traceparent
        //# Vendors MUST check that the 2 characters are either the end of the string or a
        //# dash.
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, out) in trace_id.iter_mut().enumerate() {
        *out = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
    }
    let mut parent_id = [0u8; 8];
    for (i, out) in parent_id.iter_mut().enumerate() {
        *out = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
    }
    if trace_id.iter().all(|&b| b == 0) || parent_id.iter().all(|&b| b == 0) {
        return None;
    }
    let flags = hex_byte(&v[53..55])?;
    //= https://www.w3.org/TR/trace-context/#versioning-of-traceparent
    //# Parse the sampled bit of flags (2 characters from the third dash).
    // A higher version may define the other bits differently; we only know "sampled".
    let flags = if version == 0 { flags } else { flags & 0x01 };
    Some(Parent { trace_id, flags })
}

/// Two lower-case hex digits; upper case is invalid in `traceparent`.
fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match two {
        [h, l] => Some(digit(*h)? << 4 | digit(*l)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
