//! What the load generator asks for: one URL, resolved once before the run, turned into a
//! request per exchange without re-parsing anything on the hot path. A URL holding `{n}` asks
//! for a new URL every exchange (`{n}` becomes this run's nonce and a counter): the miss path.

use std::net::{SocketAddr, ToSocketAddrs};

use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body_util::Empty;

use super::Protocol;

/// Why a target URL or an extra header was refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The URL did not parse as an absolute URI.
    #[error("invalid URL {url:?}: {source}")]
    Url {
        /// The URL as given.
        url: String,
        /// What the parser said.
        source: http::uri::InvalidUri,
    },
    /// Only cleartext `http://` is supported (h2 is spoken with prior knowledge, no TLS).
    #[error("URL {0:?} must start with http:// (cleartext h1 or prior-knowledge h2c)")]
    Scheme(String),
    /// The URL has no host.
    #[error("URL {0:?} has no host")]
    NoHost(String),
    /// The host did not resolve to any address.
    #[error("cannot resolve {authority:?}: {source}")]
    Resolve {
        /// `host:port` that was looked up.
        authority: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A `--header` was not `Name: value` with a valid name and value.
    #[error("invalid header {0:?} (expected `Name: value`)")]
    Header(String),
    /// `{n}` may appear once, in the path or query.
    #[error("URL {0:?}: `{{n}}` may appear once, after the authority")]
    Placeholder(String),
}

/// The two halves of a URL around `{n}`, in absolute and origin form.
#[derive(Debug, Clone)]
struct Unique {
    absolute: (String, String),
    origin: (String, String),
    /// Distinguishes this run's URLs from every earlier run's (a cache keeps those).
    run: u64,
    next: std::cell::Cell<u64>,
    /// With a popularity distribution, `{n}` is a drawn object index (shared by every run and
    /// process, so several load generators ask for the same objects) instead of a new URL.
    zipf: Option<super::zipf::Zipf>,
}

/// A resolved target: where to connect and what to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// The socket address every connection goes to.
    pub addr: SocketAddr,
    /// The absolute URI (h2 sends it as `:scheme`, `:authority`, `:path`).
    uri: Uri,
    /// Origin-form target for HTTP/1.1 (`/path?query`).
    origin_form: Uri,
    /// Headers sent with every request (`Host` for h1, `user-agent`, and any `--header`).
    headers: HeaderMap,
    /// Set when the URL holds `{n}`: every request gets a new URL.
    unique: Option<Unique>,
}

impl Target {
    /// Parses and resolves `url`; `extra_headers` are `Name: value` strings added to every
    /// request (a `Host` among them overrides the URL's authority for h1).
    pub fn new(url: &str, extra_headers: &[String]) -> Result<Target, TargetError> {
        let template = url;
        let url = &url.replacen("{n}", "0", 1);
        if url.contains("{n}") {
            return Err(TargetError::Placeholder(template.to_owned()));
        }
        let uri: Uri = url.parse().map_err(|source| TargetError::Url {
            url: url.to_owned(),
            source,
        })?;
        if uri.scheme_str() != Some("http") {
            return Err(TargetError::Scheme(url.to_owned()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| TargetError::NoHost(url.to_owned()))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let lookup = format!("{host}:{port}");
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|source| TargetError::Resolve {
                authority: lookup.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| TargetError::Resolve {
                authority: lookup,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            })?;
        let origin_form: Uri = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .parse()
            .map_err(|source| TargetError::Url {
                url: url.to_owned(),
                source,
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static("tiercel-load"));
        if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
            headers.insert(HOST, value);
        }
        for line in extra_headers {
            let (name, value) = parse_header(line)?;
            headers.insert(name, value);
        }
        let unique = match template.split_once("{n}") {
            None => None,
            Some((before, after)) => {
                let base = format!("http://{authority}");
                let Some(path_before) = before.strip_prefix(&base) else {
                    return Err(TargetError::Placeholder(template.to_owned()));
                };
                let run = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                Some(Unique {
                    absolute: (before.to_owned(), after.to_owned()),
                    origin: (path_before.to_owned(), after.to_owned()),
                    run,
                    next: std::cell::Cell::new(run | 1),
                    zipf: None,
                })
            }
        };
        Ok(Target {
            addr,
            uri,
            origin_form,
            headers,
            unique,
        })
    }

    /// Makes `{n}` a Zipf-distributed object index over `objects` objects (exponent `s`).
    pub fn with_zipf(mut self, objects: usize, s: f64) -> Result<Target, TargetError> {
        match &mut self.unique {
            Some(u) => u.zipf = Some(super::zipf::Zipf::new(objects, s)),
            None => return Err(TargetError::Placeholder(self.url())),
        }
        Ok(self)
    }

    /// The target of the next exchange: the one URL, or a new one per exchange with `{n}`.
    fn next_uri(&self, protocol: Protocol) -> Uri {
        let Some(u) = &self.unique else {
            return match protocol {
                Protocol::H1 => self.origin_form.clone(),
                Protocol::H2 => self.uri.clone(),
            };
        };
        let n = u.next.get();
        let (before, after) = match protocol {
            Protocol::H1 => &u.origin,
            Protocol::H2 => &u.absolute,
        };
        // Checked in `new` with `0` in its place: digits and `-` keep it valid.
        let text = match &u.zipf {
            None => {
                u.next.set(n + 1);
                format!("{before}{:x}-{}{after}", u.run, n - (u.run | 1))
            }
            Some(z) => {
                // xorshift64: cheap, and good enough to draw popularity ranks.
                let mut x = n;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                u.next.set(x);
                let uniform = (x >> 11) as f64 / (1u64 << 53) as f64;
                format!("{before}{}{after}", z.sample(uniform))
            }
        };
        text.parse().unwrap_or_else(|_| self.uri.clone())
    }

    /// The URL as given (for reports).
    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// A fresh GET for one exchange over `protocol`.
    ///
    /// HTTP/1.1 gets the origin form plus `Host`; h2 gets the absolute URI (hyper turns it into
    /// the pseudo-headers) and no `Host`, which RFC 9113 says to leave out when `:authority` is
    /// there.
    //= https://www.rfc-editor.org/rfc/rfc9113#section-8.3.1
    //# Clients that generate HTTP/2 requests directly MUST use the ":authority" pseudo-header
    //# field to convey authority information, unless there is no authority information to
    //# convey (such as when the request target is in asterisk form).
    pub fn request(&self, protocol: Protocol) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.method_mut() = Method::GET;
        let mut headers = self.headers.clone();
        *req.uri_mut() = self.next_uri(protocol);
        match protocol {
            Protocol::H1 => *req.version_mut() = Version::HTTP_11,
            Protocol::H2 => {
                *req.version_mut() = Version::HTTP_2;
                headers.remove(HOST);
            }
        }
        *req.headers_mut() = headers;
        req
    }
}

/// Splits `Name: value` into a header name and value.
fn parse_header(line: &str) -> Result<(HeaderName, HeaderValue), TargetError> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| TargetError::Header(line.to_owned()))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| TargetError::Header(line.to_owned()))?;
    let value =
        HeaderValue::from_str(value.trim()).map_err(|_| TargetError::Header(line.to_owned()))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h1_requests_use_origin_form_and_host() {
        let t = Target::new("http://127.0.0.1:8080/obj?size=1024", &[]).unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        let req = t.request(Protocol::H1);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri().to_string(), "/obj?size=1024");
        assert_eq!(req.headers()[HOST], "127.0.0.1:8080");
        assert_eq!(req.headers()[USER_AGENT], "tiercel-load");
    }

    #[test]
    fn h2_requests_use_the_absolute_uri_without_host() {
        let t = Target::new("http://127.0.0.1:8080/obj?size=1024", &[]).unwrap();
        let req = t.request(Protocol::H2);
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:8080/obj?size=1024");
        assert!(req.headers().get(HOST).is_none());
    }

    #[test]
    fn default_port_path_and_extra_headers() {
        let t = Target::new(
            "http://[::1]",
            &["Host: example.com".into(), "accept-encoding:  gzip ".into()],
        )
        .unwrap();
        assert_eq!(t.addr, "[::1]:80".parse().unwrap());
        let req = t.request(Protocol::H1);
        assert_eq!(req.uri().to_string(), "/");
        assert_eq!(req.headers()[HOST], "example.com");
        assert_eq!(req.headers()["accept-encoding"], "gzip");
    }

    #[test]
    fn a_placeholder_makes_every_request_a_new_url() {
        let t = Target::new("http://127.0.0.1:8080/miss/{n}?size=1024", &[]).unwrap();
        let a = t.request(Protocol::H1).uri().to_string();
        let b = t.request(Protocol::H1).uri().to_string();
        assert_ne!(a, b);
        assert!(
            a.starts_with("/miss/") && a.ends_with("-0?size=1024"),
            "{a}"
        );
        assert!(b.ends_with("-1?size=1024"), "{b}");
        let c = t.request(Protocol::H2).uri().to_string();
        assert!(c.starts_with("http://127.0.0.1:8080/miss/") && c.ends_with("-2?size=1024"));
        assert!(Target::new("http://127.0.0.1:8080/{n}/{n}", &[]).is_err());
        let z = Target::new("http://127.0.0.1:8080/z/{n}", &[])
            .unwrap()
            .with_zipf(1000, 1.0)
            .unwrap();
        let picks: Vec<String> = (0..200)
            .map(|_| z.request(Protocol::H1).uri().to_string())
            .collect();
        assert!(
            picks
                .iter()
                .all(|p| p.starts_with("/z/") && p[3..].parse::<usize>().unwrap() < 1000)
        );
        assert!(
            picks.iter().filter(|p| *p == "/z/0").count() > 10,
            "rank 1 is the most drawn"
        );
        assert!(
            Target::new("http://127.0.0.1:8080/no-placeholder", &[])
                .unwrap()
                .with_zipf(10, 1.0)
                .is_err()
        );
        assert!(Target::new("http://{n}:8080/", &[]).is_err());
    }

    #[test]
    fn refuses_bad_targets() {
        assert!(matches!(
            Target::new("https://127.0.0.1/", &[]),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::new("/relative", &[]),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::new("http://exa mple/", &[]),
            Err(TargetError::Url { .. })
        ));
        assert!(matches!(
            Target::new("http://127.0.0.1/", &["no colon".into()]),
            Err(TargetError::Header(_))
        ));
        assert!(matches!(
            Target::new("http://127.0.0.1/", &["bad name: x".into()]),
            Err(TargetError::Header(_))
        ));
    }
}
