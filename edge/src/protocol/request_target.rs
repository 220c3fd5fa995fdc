//! The target of a request: which authority it is for (RFC 9112 §3.2, RFC 9113 §8.3.1,
//! RFC 9114 §4.3.1) and whether its method is one we handle.
//!
//! The authority picks the service and goes into the cache key, so anything ambiguous (two
//! Host lines, Host disagreeing with `:authority`, userinfo) is rejected rather than guessed:
//! two components that guess differently are how request smuggling and cache poisoning start.

use std::net::Ipv6Addr;

use http::{HeaderMap, Method, StatusCode, Uri, Version, header};

use super::lists::trim_ows;

/// Why a request's target or method was rejected; each maps to a status via [`Self::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// An HTTP/1.1 (or later) request without a Host field and without an authority in the
    /// request target.
    #[error("missing Host header")]
    MissingHost,
    /// An HTTP/1.0 request with neither a Host field nor an absolute-form target: legal, but
    /// it names no site, so only a default service can answer it.
    #[error("request names no host")]
    NoAuthority,
    /// More than one Host field line.
    #[error("more than one Host header")]
    MultipleHosts,
    /// The Host field is not a valid `uri-host [ ":" port ]`.
    #[error("invalid Host header")]
    InvalidHost,
    /// The authority of the request target (absolute-form or `:authority`) is invalid.
    #[error("invalid authority in request target")]
    InvalidAuthority,
    /// The Host field names a different authority than `:authority` (HTTP/2 and HTTP/3).
    #[error("Host header does not match :authority")]
    HostMismatch,
    /// The target URI has a scheme other than http or https.
    #[error("unsupported URI scheme")]
    UnsupportedScheme,
    /// A method we do not handle (CONNECT, TRACE).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A method name that is not a valid token.
    #[error("malformed method")]
    MalformedMethod,
}

impl TargetError {
    /// The status code to answer with: 405 for [`TargetError::MethodNotAllowed`], else 400.
    pub fn status(&self) -> StatusCode {
        match self {
            TargetError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The authority a request is for, as `host[:port]`: host lower-cased without a trailing dot,
/// IPv6 literals in brackets, the port without leading zeros and only when one was given.
///
/// The scheme's default port is deliberately not removed here (the scheme is not known for a
/// Host-only request); `tiercel_cluster::urlnorm::normalize` does that when the cache key is
/// built.
pub fn request_authority(
    uri: &Uri,
    headers: &HeaderMap,
    version: Version,
) -> Result<String, TargetError> {
    if let Some(scheme) = uri.scheme_str()
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return Err(TargetError::UnsupportedScheme);
    }
    let target = match uri.authority() {
        Some(a) => Some(normalize_authority(a.as_str()).ok_or(TargetError::InvalidAuthority)?),
        None => None,
    };
    //= https://www.rfc-editor.org/rfc/rfc9112#section-3.2
    //# A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
    //# message that lacks a Host header field and to any request message that contains more
    //# than one Host header field line or a Host header field with an invalid field value.
    let mut lines = headers.get_all(header::HOST).into_iter();
    let host = match (lines.next(), lines.next()) {
        (None, _) => None,
        (Some(line), None) => Some(
            std::str::from_utf8(trim_ows(line.as_bytes()))
                .ok()
                .and_then(normalize_authority)
                .ok_or(TargetError::InvalidHost)?,
        ),
        (Some(_), Some(_)) => return Err(TargetError::MultipleHosts),
    };
    let h2_or_h3 = version == Version::HTTP_2 || version == Version::HTTP_3;
    match (target, host) {
        (Some(target), Some(host)) => {
            //= https://www.rfc-editor.org/rfc/rfc9113#section-8.3.1
            //# A server SHOULD treat a request as malformed if it contains a Host header
            //# field that identifies an entity that differs from the entity in the
            //# ":authority" pseudo-header field.
            if h2_or_h3 && target != host {
                return Err(TargetError::HostMismatch);
            }
            //= https://www.rfc-editor.org/rfc/rfc9112#section-3.2.2
            //# When an origin server receives a request with an absolute-form of
            //# request-target, the origin server MUST ignore the received Host header field
            //# (if any) and instead use the host information of the request-target.
            Ok(target)
        }
        // h2/h3 carry the authority in `:authority`; HTTP/1.1 in absolute-form still needs
        // a Host line, per the §3.2 text above.
        (Some(target), None) if h2_or_h3 || version == Version::HTTP_10 => Ok(target),
        (Some(_), None) => Err(TargetError::MissingHost),
        (None, Some(host)) => Ok(host),
        (None, None) if version == Version::HTTP_10 || version == Version::HTTP_09 => {
            Err(TargetError::NoAuthority)
        }
        (None, None) => Err(TargetError::MissingHost),
    }
}

/// Rejects the methods the engine cannot serve or pass on.
///
/// CONNECT asks for a tunnel, which a CDN does not offer. TRACE is refused too: it would
/// reflect the request as we forward it, including the client address headers we add, and
/// browsers' cross-site tracing defences are the only thing standing between it and cookie
/// theft. Every other valid method is served from cache or forwarded.
//= https://www.rfc-editor.org/rfc/rfc9110#section-9.1
//# An origin server that receives a request method that is unrecognized or not implemented
//# SHOULD respond with the 501 (Not Implemented) status code. An origin server that receives
//# a request method that is recognized and implemented, but not allowed for the target
//# resource, SHOULD respond with the 405 (Method Not Allowed) status code.
pub fn check_method(method: &Method) -> Result<(), TargetError> {
    //= https://www.rfc-editor.org/rfc/rfc9110#section-9.1
    //# method = token
    if !super::is_token(method.as_str().as_bytes()) {
        return Err(TargetError::MalformedMethod);
    }
    if method == Method::CONNECT || method == Method::TRACE {
        return Err(TargetError::MethodNotAllowed);
    }
    Ok(())
}

/// Validates and normalises `uri-host [ ":" port ]`; `None` if invalid.
//= https://www.rfc-editor.org/rfc/rfc9110#section-7.2
//# Host = uri-host [ ":" port ] ; Section 4
//= https://www.rfc-editor.org/rfc/rfc9110#section-4.2.4
//# Before making use of an "http" or "https" URI reference received from an untrusted
//# source, a recipient SHOULD parse for userinfo and treat its presence as an error
fn normalize_authority(authority: &str) -> Option<String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let literal = &rest[..end];
        let after = &rest[end + 1..];
        // Zone identifiers and IPvFuture are not acceptable in a request's authority.
        literal.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", literal.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || !valid_reg_name(host) {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let mut out = host;
    //= https://www.rfc-editor.org/rfc/rfc3986#section-3.2.3
    //# port = *DIGIT
    match port {
        None | Some("") => {}
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u16 = p.parse().ok()?;
            if n == 0 {
                return None;
            }
            out.push(':');
            out.push_str(&n.to_string());
        }
    }
    Some(out)
}

/// RFC 3986 §3.2.2 `reg-name = *( unreserved / pct-encoded / sub-delims )`, which also covers
/// IPv4 literals. `@` (userinfo), `/`, `?`, `#`, `:` and whitespace are excluded by the ABNF.
fn valid_reg_name(host: &str) -> bool {
    let b = host.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests;
