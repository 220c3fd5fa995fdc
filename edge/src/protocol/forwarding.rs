//! What a proxy does to header sections on the way through: drop what belongs to one
//! connection, and say who forwarded the message and for whom.
//!
//! Request path: `strip_hop_by_hop` → `add_forwarding_headers` → `HopIdentity::add_cdn_loop`
//! (after checking `cdn_loop_count`) → upstream. Response path: `strip_hop_by_hop` →
//! `HopIdentity::add_via` → client.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header};
use tiercel_cluster::urlnorm::Scheme;

use super::lists::{append_value, members, split_list, trim_ows};
use super::{
    CDN_LOOP, KEEP_ALIVE, PROXY_CONNECTION, X_FORWARDED_FOR, X_FORWARDED_PROTO, is_tchar, is_token,
    value_from,
};

/// Removes the connection-specific fields of a message about to be forwarded (either way).
///
/// Removed: `Connection` and every field it names, `Proxy-Connection`, `Keep-Alive`, `TE`,
/// `Transfer-Encoding`, `Upgrade`, and `Trailer` (the cache neither stores nor forwards trailer
/// fields, so announcing them would be false).
///
/// Kept: `Proxy-Authenticate` and `Proxy-Authorization`. RFC 9110 no longer lists them as
/// hop-by-hop; they are end-to-end fields whose *semantics* address a proxy (§11.7.1,
/// §11.7.2). Tiercel is a gateway, not a proxy its clients chose, so it neither consumes nor
/// answers proxy credentials; §11.7.2 lets an intermediary relay them when that is how the
/// proxies on a path cooperate, and dropping them would silently break such setups behind us.
//= https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
//# Intermediaries MUST parse a received Connection header field before a message is
//# forwarded and, for each connection-option in this field, remove any header or trailer
//# field(s) from the message with the same name as the connection-option, and then remove the
//# Connection header field itself (or replace it with the intermediary's own control options
//# for the forwarded message).
//= https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
//# Furthermore, intermediaries SHOULD remove or replace fields that are known to require
//# removal before forwarding, whether or not they appear as a connection-option, after
//# applying those fields' semantics. This includes but is not limited to:
//# *  Proxy-Connection (Appendix C.2.2 of [HTTP/1.1])
//# *  Keep-Alive (Section 19.7.1 of [RFC2068])
//# *  TE (Section 10.1.4)
//# *  Transfer-Encoding (Section 6.1 of [HTTP/1.1])
//# *  Upgrade (Section 7.8)
//= https://www.rfc-editor.org/rfc/rfc9110#section-11.7.2
//# A proxy MAY relay the credentials from the client request to the next proxy if that is
//# the mechanism by which the proxies cooperatively authenticate a given request.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_named(headers) {
        headers.remove(name);
    }
    // One pass over the names present (mostly none of these) rather than seven lookups.
    if headers.keys().any(is_hop_by_hop) {
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
    }
}

/// The fields [`strip_hop_by_hop`] always removes, whatever `Connection` says.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    PROXY_CONNECTION,
    KEEP_ALIVE,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
];

/// Whether `name` is one of the fields every forwarded message loses whatever `Connection`
/// says (see [`strip_hop_by_hop`]). For a caller that copies a header section field by field,
/// together with [`connection_named`].
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// The fields the message's `Connection` names, which a forwarded message loses too (empty,
/// without allocating, when there is no `Connection`).
pub fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    if !headers.contains_key(header::CONNECTION) {
        return Vec::new();
    }
    members(headers, &header::CONNECTION)
        .filter_map(|option| HeaderName::from_bytes(option).ok())
        .collect()
}

/// Who and how the client connected to us, for the forwarding headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientContext {
    /// The address of the TCP/QUIC peer.
    pub peer: IpAddr,
    /// Whether the client reached us over TLS.
    pub scheme: Scheme,
    /// The HTTP version the request was received with.
    pub version: Version,
}

/// Adds `X-Forwarded-For`, `X-Forwarded-Proto`, `Forwarded` and `Via` to a request going
/// upstream. `host` is the request's authority as validated by `request_authority`; it becomes
/// the `host=` parameter of `Forwarded` (omitted when empty).
///
/// IPv4-mapped IPv6 peers (from dual-stack sockets) are written as IPv4, the address the
/// client actually has. Existing `X-Forwarded-For`, `Forwarded` and `Via` lists are extended,
/// folded into one line; `X-Forwarded-Proto` is replaced, since it names one hop's scheme.
pub fn add_forwarding_headers(
    headers: &mut HeaderMap,
    client: &ClientContext,
    host: &str,
    hop: &HopIdentity,
) {
    let peer = client.peer.to_canonical();
    let mut address = Vec::with_capacity(15);
    push_ip(&mut address, peer);
    append_value(headers, X_FORWARDED_FOR, value_from(address));
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(client.scheme.as_str()),
    );
    append_value(
        headers,
        header::FORWARDED,
        value_from(forwarded_element(peer, client.scheme, host)),
    );
    hop.add_via(headers, client.version);
}

/// Writes `ip` as text. IPv4 by hand: it is every request's case, and `Display` goes through
/// the formatting machinery (over a thousand instructions a miss).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

/// The scheme a trusted forwarder says the client used: `X-Forwarded-Proto` holding exactly
/// `http` or `https` (one field line). `None` for anything else.
pub fn forwarded_scheme(headers: &HeaderMap) -> Option<Scheme> {
    let mut lines = headers.get_all(X_FORWARDED_PROTO).iter();
    let value = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    match value.as_bytes() {
        b"http" => Some(Scheme::Http),
        b"https" => Some(Scheme::Https),
        _ => None,
    }
}

/// One RFC 7239 `forwarded-element`: `for=...;proto=...;host=...`.
//= https://www.rfc-editor.org/rfc/rfc7239#section-4
//# Note that as ":" and "[]" are not valid characters in "token", IPv6 addresses are written
//# as "quoted-string".
//= https://www.rfc-editor.org/rfc/rfc7239#section-6
//# nodename = IPv4address / "[" IPv6address "]" /
//#            "unknown" / obfnode
fn forwarded_element(peer: IpAddr, scheme: Scheme, host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + host.len());
    match peer {
        IpAddr::V4(_) => {
            out.extend_from_slice(b"for=");
            push_ip(&mut out, peer);
        }
        IpAddr::V6(_) => {
            out.extend_from_slice(b"for=\"[");
            push_ip(&mut out, peer);
            out.extend_from_slice(b"]\"");
        }
    }
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(scheme.as_str().as_bytes());
    //= https://www.rfc-editor.org/rfc/rfc7239#section-5.3
    //# The "host" parameter is used to forward the original value of the "Host" header field.
    if can_be_value(host) {
        out.extend_from_slice(b";host=");
        push_token_or_quoted(&mut out, host);
    }
    out
}

/// Whether `s` can be an RFC 7239 §4 `value` (`token / quoted-string`): not when empty or
/// when it has characters a quoted-string cannot carry (controls, DEL), so a strange Host
/// never corrupts the field.
fn can_be_value(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Writes `s` (which [`can_be_value`]) as a token when it is one, else as a quoted-string.
fn push_token_or_quoted(out: &mut Vec<u8>, s: &str) {
    if is_token(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// This node as it names itself in the lists a forwarded message carries: its `Via` entry for
/// each protocol version and its `CDN-Loop` member, sanitised and formatted once, at start-up
/// (every miss writes both, every response its `Via`).
#[derive(Debug, Clone)]
pub struct HopIdentity {
    /// `Via` entries for HTTP/0.9, 1.0, 1.1, 2 and 3, in that order.
    via: [HeaderValue; 5],
    /// `cdn-id; node=name`.
    cdn_info: HeaderValue,
}

impl HopIdentity {
    /// The identity of node `node_name` of the CDN `cdn_token` (its `CDN-Loop` cdn-id).
    pub fn new(cdn_token: &str, node_name: &str) -> Self {
        let text = |s: String| value_from(s.into_bytes());
        let via = [
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ]
        .map(|v| text(via_entry(v, node_name)));
        let cdn_info = text(format!(
            "{}; node={}",
            sanitize_pseudonym(cdn_token, true),
            sanitize_pseudonym(node_name, false)
        ));
        HopIdentity { via, cdn_info }
    }

    /// Our `Via` entry for a message received with `version`.
    fn via(&self, version: Version) -> &HeaderValue {
        let i = match version {
            Version::HTTP_09 => 0,
            Version::HTTP_10 => 1,
            Version::HTTP_2 => 3,
            Version::HTTP_3 => 4,
            _ => 2,
        };
        &self.via[i]
    }

    /// Appends our entry to `Via` of a message we forward (for a response: with the version
    /// the upstream response was received with).
    //= https://www.rfc-editor.org/rfc/rfc9110#section-7.6.3
    //# A proxy MUST send an appropriate Via header field, as described below, in each message
    //# that it forwards. An HTTP-to-HTTP gateway MUST send an appropriate Via header field in
    //# each inbound request message and MAY send a Via header field in forwarded response
    //# messages.
    pub fn add_via(&self, headers: &mut HeaderMap, version: Version) {
        append_value(headers, header::VIA, self.via(version).clone());
    }

    /// Appends our `cdn-info` to `CDN-Loop` of a request going upstream: the CDN's `cdn-id`
    /// with a `node` parameter naming this node, so a node recognises a request it forwarded
    /// itself (an edge configured as its own shield) at once, before it could join its own
    /// fill.
    //= https://www.rfc-editor.org/rfc/rfc8586#section-2
    //# Conforming CDNs SHOULD add a cdn-info to this header field in every request they
    //# generate or forward (creating the header field if necessary).
    pub fn add_cdn_loop(&self, headers: &mut HeaderMap) {
        append_value(headers, CDN_LOOP, self.cdn_info.clone());
    }
}

/// `received-protocol RWS received-by`, e.g. `1.1 edge-1` or `2 edge-1`.
//= https://www.rfc-editor.org/rfc/rfc9110#section-7.6.3
//# Via = #( received-protocol RWS received-by [ RWS comment ] )
//#
//# received-protocol = [ protocol-name "/" ] protocol-version
//#                   ; see Section 7.8
//# received-by       = pseudonym [ ":" port ]
//# pseudonym         = token
//= https://www.rfc-editor.org/rfc/rfc9110#section-7.6.3
//# The received-protocol indicates the protocol version of the message received by the
//# server or client along each segment of the request/response chain. The received-protocol
//# version is appended to the Via field value when the message is forwarded so that
//# information about the protocol capabilities of upstream applications remains visible to
//# all recipients.
fn via_entry(version: Version, via_name: &str) -> String {
    let protocol = match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    format!("{protocol} {}", sanitize_pseudonym(via_name, true))
}

/// A configured node name as a token (`:` allowed for `received-by`'s port when `allow_colon`):
/// other bytes become `-`, and an empty name becomes `tiercel`, so a bad `--name` cannot
/// produce an invalid field.
fn sanitize_pseudonym(name: &str, allow_colon: bool) -> String {
    if name.is_empty() {
        return "tiercel".to_string();
    }
    name.bytes()
        .map(|b| {
            if is_tchar(b) || (allow_colon && b == b':') {
                b as char
            } else {
                '-'
            }
        })
        .collect()
}

/// How many times `token` already appears as a `cdn-id` in `CDN-Loop`, over all lines and
/// list members, ignoring parameters and ASCII case (a cdn-id may be a host name). `token` is
/// sanitised exactly as [`HopIdentity::add_cdn_loop`] writes it, so the two always agree.
//= https://www.rfc-editor.org/rfc/rfc8586#section-2
//# CDN-Loop  = #cdn-info
//# cdn-info  = cdn-id *( OWS ";" OWS parameter )
//# cdn-id    = ( uri-host [ ":" port ] ) / pseudonym
//# pseudonym = token
pub fn cdn_loop_count(headers: &HeaderMap, token: &str) -> usize {
    if !headers.contains_key(&CDN_LOOP) {
        return 0;
    }
    let token = sanitize_pseudonym(token, true);
    members(headers, &CDN_LOOP)
        .filter(|member| {
            let id = member.split(|&b| b == b';').next().unwrap_or(member);
            trim_ows(id).eq_ignore_ascii_case(token.as_bytes())
        })
        .count()
}

/// Whether this very node (the CDN's `token`, `node=` our name) already forwarded the request.
pub fn cdn_loop_through(headers: &HeaderMap, token: &str, node: &str) -> bool {
    if !headers.contains_key(&CDN_LOOP) {
        return false;
    }
    let token = sanitize_pseudonym(token, true);
    let node = sanitize_pseudonym(node, false);
    members(headers, &CDN_LOOP).any(|member| {
        let mut parts = member.split(|&b| b == b';');
        let id = parts.next().unwrap_or(member);
        trim_ows(id).eq_ignore_ascii_case(token.as_bytes())
            && parts.any(|p| {
                let p = trim_ows(p);
                let (name, value) = match p.iter().position(|&b| b == b'=') {
                    Some(i) => (&p[..i], &p[i + 1..]),
                    None => return false,
                };
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                name.eq_ignore_ascii_case(b"node") && value == node.as_bytes()
            })
    })
}

/// Applies `Max-Forwards` to a TRACE or OPTIONS request: `false` when it is `0` (we must answer
/// ourselves instead of forwarding), otherwise decrements it and returns `true`. Other methods,
/// and a missing or unparsable value, forward unchanged.
//= https://www.rfc-editor.org/rfc/rfc9110#section-7.6.2
//# Each intermediary that receives a TRACE or OPTIONS request containing a Max-Forwards
//# header field MUST check and update its value prior to forwarding the request. If the
//# received value is zero (0), the intermediary MUST NOT forward the request; instead, the
//# intermediary MUST respond as the final recipient. If the received Max-Forwards value is
//# greater than zero, the intermediary MUST generate an updated Max-Forwards field in the
//# forwarded message with a field value that is the lesser of a) the received value
//# decremented by one (1) or b) the recipient's maximum supported value for Max-Forwards.
pub fn decrement_max_forwards(method: &Method, headers: &mut HeaderMap) -> bool {
    if method != Method::TRACE && method != Method::OPTIONS {
        return true;
    }
    let mut lines = headers.get_all(header::MAX_FORWARDS).into_iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return true;
    };
    let digits = trim_ows(line.as_bytes());
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return true;
    }
    // Saturates: any value above our maximum (u32::MAX) counts as the maximum.
    let n = digits.iter().fold(0u32, |n, &d| {
        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    });
    if n == 0 {
        return false;
    }
    headers.insert(header::MAX_FORWARDS, (n - 1).into());
    true
}

/// Every list member of `Connection`, lower-cased, for callers that act on options such as
/// `close` or `upgrade` before [`strip_hop_by_hop`] removes the field.
pub fn connection_options(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .into_iter()
        .flat_map(|v| split_list(v.as_bytes()))
        .map(|m| String::from_utf8_lossy(m).to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests;
