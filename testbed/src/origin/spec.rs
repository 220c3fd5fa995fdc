//! The demo origin's behaviour language: query parameters (see the crate-level table in
//! [`super`]) parsed into [`Params`], and [`Spec`], the run-time override of a path.

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use percent_encoding::percent_decode_str;

use super::conditional::EntityTag;

/// Run-time behaviour of one path, set with [`Origin::set`](super::Origin::set).
///
/// A spec is a list of query parameters in the same language as the request's query. When a
/// request's path has a spec, every key the spec names replaces all of that key's values in the
/// request's query (so `Spec::new().with("etag", "v2")` turns `/a?etag=v1&size=10` into
/// `/a?size=10&etag=v2`), and the rest of the query still applies. This lets a test change what
/// the origin says about a URL (a new ETag, a new body `version`, an error status) without
/// changing the URL a cache has stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    params: Vec<(String, String)>,
}

impl Spec {
    /// An empty spec: the request's query applies unchanged.
    pub fn new() -> Self {
        Self::default()
    }

    /// A spec from a query string such as `etag=v2&cc=max-age%3D60` (percent-decoded, `+` is a
    /// space).
    pub fn parse(query: &str) -> Self {
        Self {
            params: parse_query(query),
        }
    }

    /// Adds one parameter; call again with the same key for repeatable ones (`h`).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// The request's parameters with this spec's keys replaced.
    pub(crate) fn apply(&self, mut request: Vec<(String, String)>) -> Vec<(String, String)> {
        request.retain(|(k, _)| !self.params.iter().any(|(sk, _)| sk == k));
        request.extend(self.params.iter().cloned());
        request
    }
}

/// Splits a query string into decoded `(key, value)` pairs, in order.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

/// How a request deliberately fails (`fail=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Close the connection without answering.
    Close,
    /// Keep the connection open and never answer.
    Hang,
    /// Send the headers and half the body, then cut the connection (HTTP/1.1) or reset the
    /// stream (HTTP/2).
    MidBody,
}

/// A query parameter the origin cannot use; answered with 400 and this text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad parameter {key}={value:?}: expected {expected}")]
pub(crate) struct ParamError {
    /// The parameter name.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
}

/// Everything a request's (merged) query asks of the origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub size: u64,
    pub version: Option<String>,
    pub cc: Option<HeaderValue>,
    pub cdncc: Option<HeaderValue>,
    pub sc: Option<HeaderValue>,
    pub expires: Option<i64>,
    pub etag: Option<EntityTag>,
    pub lm: Option<u64>,
    pub vary: Option<HeaderValue>,
    pub status: StatusCode,
    pub delay: Option<Duration>,
    pub chunk_pause: Option<Duration>,
    pub chunk: Option<usize>,
    pub set_cookie: bool,
    pub age: Option<u64>,
    pub date_offset: i64,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub tags: Vec<String>,
    pub fail: Option<Fail>,
    pub nolen: bool,
    pub ranges: bool,
    pub echo: Option<HeaderName>,
}

/// The body size when `size=` is absent.
pub(crate) const DEFAULT_SIZE: u64 = 1024;

impl Default for Params {
    fn default() -> Self {
        Self {
            size: DEFAULT_SIZE,
            version: None,
            cc: None,
            cdncc: None,
            sc: None,
            expires: None,
            etag: None,
            lm: None,
            vary: None,
            status: StatusCode::OK,
            delay: None,
            chunk_pause: None,
            chunk: None,
            set_cookie: false,
            age: None,
            date_offset: 0,
            headers: Vec::new(),
            tags: Vec::new(),
            fail: None,
            nolen: false,
            ranges: false,
            echo: None,
        }
    }
}

impl Params {
    /// Interprets decoded query pairs. Unknown keys are ignored (cache busters like `?v=3` are
    /// welcome); for a repeated non-repeatable key the last value wins.
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        let mut p = Self::default();
        for (key, value) in pairs {
            let err = |expected| ParamError {
                key: key.clone(),
                value: value.clone(),
                expected,
            };
            let header_value =
                |v: &str| HeaderValue::from_str(v).map_err(|_| err("a valid header value"));
            match key.as_str() {
                "size" => p.size = value.parse().map_err(|_| err("a byte count"))?,
                "version" => p.version = Some(value.clone()),
                "cc" => p.cc = Some(header_value(value)?),
                "cdncc" => p.cdncc = Some(header_value(value)?),
                "sc" => p.sc = Some(header_value(value)?),
                "expires" => p.expires = Some(value.parse().map_err(|_| err("seconds"))?),
                "etag" => {
                    p.etag =
                        Some(EntityTag::from_param(value).ok_or_else(|| err("an entity tag"))?);
                }
                "lm" => p.lm = Some(value.parse().map_err(|_| err("seconds ago"))?),
                "vary" => p.vary = Some(header_value(value)?),
                "status" => {
                    p.status = value
                        .parse::<u16>()
                        .ok()
                        .filter(|s| (200..=599).contains(s))
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .ok_or_else(|| err("a status code 200..=599"))?;
                }
                "delay_ms" => p.delay = Some(millis(value).ok_or_else(|| err("milliseconds"))?),
                "chunk_ms" => {
                    p.chunk_pause = Some(millis(value).ok_or_else(|| err("milliseconds"))?);
                }
                "chunk" => {
                    p.chunk = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|c| *c > 0)
                            .ok_or_else(|| err("a positive byte count"))?,
                    );
                }
                "set_cookie" => p.set_cookie = flag(value).ok_or_else(|| err("0 or 1"))?,
                "age" => p.age = Some(value.parse().map_err(|_| err("seconds"))?),
                "date_offset" => p.date_offset = value.parse().map_err(|_| err("seconds"))?,
                "h" => {
                    let (name, v) = value.split_once(':').ok_or_else(|| err("Name:Value"))?;
                    let name = HeaderName::from_bytes(name.trim().as_bytes())
                        .map_err(|_| err("Name:Value with a valid header name"))?;
                    p.headers.push((name, header_value(v.trim())?));
                }
                "tags" => {
                    p.tags = value
                        .split([',', ' '])
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "fail" => {
                    p.fail = Some(match value.as_str() {
                        "close" => Fail::Close,
                        "hang" => Fail::Hang,
                        "midbody" => Fail::MidBody,
                        _ => return Err(err("close, hang or midbody")),
                    });
                }
                "nolen" => p.nolen = flag(value).ok_or_else(|| err("0 or 1"))?,
                "ranges" => p.ranges = flag(value).ok_or_else(|| err("0 or 1"))?,
                "echo" => {
                    p.echo = Some(
                        HeaderName::from_bytes(value.as_bytes())
                            .map_err(|_| err("a header name"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

fn millis(v: &str) -> Option<Duration> {
    v.parse::<u64>().ok().map(Duration::from_millis)
}

fn flag(v: &str) -> Option<bool> {
    match v {
        "1" | "true" | "yes" | "" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Result<Params, ParamError> {
        Params::from_pairs(&parse_query(query))
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query("cc=max-age%3D60%2C%20public&h=X-A:1&h=X-B:2&&nolen&a+b=c+d"),
            vec![
                ("cc".into(), "max-age=60, public".into()),
                ("h".into(), "X-A:1".into()),
                ("h".into(), "X-B:2".into()),
                ("nolen".into(), "".into()),
                ("a b".into(), "c d".into()),
            ]
        );
        // An unencoded `=` inside a value is kept.
        assert_eq!(
            parse_query("cc=max-age=5"),
            vec![("cc".into(), "max-age=5".into())]
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(params(""), Ok(Params::default()));
        assert_eq!(params("unknown=1&v=3"), Ok(Params::default()));
        assert_eq!(Params::default().size, 1024);
    }

    #[test]
    fn every_parameter_parses() {
        let p = params(
            "size=10&version=2&cc=max-age%3D60&cdncc=max-age%3D10&sc=max-age%3D5&expires=-30\
             &etag=W/e1&lm=3600&vary=Accept-Encoding&status=404&delay_ms=5&chunk_ms=7&chunk=100\
             &set_cookie=1&age=9&date_offset=-60&h=X-A:%201&h=x-b:2&tags=a,b%20c&fail=midbody\
             &nolen=1&ranges=1",
        )
        .unwrap();
        let want = Params {
            size: 10,
            version: Some("2".into()),
            cc: Some(HeaderValue::from_static("max-age=60")),
            cdncc: Some(HeaderValue::from_static("max-age=10")),
            sc: Some(HeaderValue::from_static("max-age=5")),
            expires: Some(-30),
            etag: EntityTag::from_param("W/e1"),
            lm: Some(3600),
            vary: Some(HeaderValue::from_static("Accept-Encoding")),
            status: StatusCode::NOT_FOUND,
            delay: Some(Duration::from_millis(5)),
            chunk_pause: Some(Duration::from_millis(7)),
            chunk: Some(100),
            set_cookie: true,
            age: Some(9),
            date_offset: -60,
            headers: vec![
                (
                    HeaderName::from_static("x-a"),
                    HeaderValue::from_static("1"),
                ),
                (
                    HeaderName::from_static("x-b"),
                    HeaderValue::from_static("2"),
                ),
            ],
            tags: vec!["a".into(), "b".into(), "c".into()],
            fail: Some(Fail::MidBody),
            nolen: true,
            ranges: true,
            echo: None,
        };
        assert_eq!(p, want);
        assert_eq!(
            params("echo=X-Forwarded-Host").unwrap().echo,
            Some(HeaderName::from_static("x-forwarded-host"))
        );
        assert_eq!(params("fail=close").unwrap().fail, Some(Fail::Close));
        assert_eq!(params("fail=hang").unwrap().fail, Some(Fail::Hang));
        assert_eq!(params("size=1&size=2").unwrap().size, 2);
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            (
                "size=lots",
                "bad parameter size=\"lots\": expected a byte count",
            ),
            (
                "status=99",
                "bad parameter status=\"99\": expected a status code 200..=599",
            ),
            (
                "status=600",
                "bad parameter status=\"600\": expected a status code 200..=599",
            ),
            (
                "etag=a%20b",
                "bad parameter etag=\"a b\": expected an entity tag",
            ),
            (
                "h=NoColon",
                "bad parameter h=\"NoColon\": expected Name:Value",
            ),
            (
                "h=Bad%20Name:1",
                "bad parameter h=\"Bad Name:1\": expected Name:Value with a valid header name",
            ),
            (
                "cc=a%0Ab",
                "bad parameter cc=\"a\\nb\": expected a valid header value",
            ),
            (
                "fail=boom",
                "bad parameter fail=\"boom\": expected close, hang or midbody",
            ),
            (
                "chunk=0",
                "bad parameter chunk=\"0\": expected a positive byte count",
            ),
            ("nolen=2", "bad parameter nolen=\"2\": expected 0 or 1"),
            (
                "delay_ms=-1",
                "bad parameter delay_ms=\"-1\": expected milliseconds",
            ),
            (
                "expires=soon",
                "bad parameter expires=\"soon\": expected seconds",
            ),
        ];
        for (query, want) in cases {
            assert_eq!(params(query).unwrap_err().to_string(), want, "{query}");
        }
    }

    #[test]
    fn spec_replaces_named_keys_only() {
        let spec = Spec::parse("etag=v2&h=X-New:1").with("h", "X-Other:2");
        let merged = spec.apply(parse_query("etag=v1&size=10&h=X-Old:0"));
        assert_eq!(
            merged,
            vec![
                ("size".into(), "10".into()),
                ("etag".into(), "v2".into()),
                ("h".into(), "X-New:1".into()),
                ("h".into(), "X-Other:2".into()),
            ]
        );
        assert_eq!(Spec::new().apply(parse_query("a=1")), parse_query("a=1"));
    }
}
