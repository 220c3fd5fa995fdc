//! From (request, parameters, clock) to what the origin does: a pure plan that the connection
//! code then carries out. Keeping it pure lets the header and status logic be tested without
//! sockets, and keeps the clock an argument.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use super::body::{BLOCK, BodyEnd, Pattern};
use super::conditional::{self, Precondition, Validators};
use super::range::{self, RangeAnswer};
use super::spec::{Fail, Params};

/// The header carrying how many requests the origin has received for this exact target,
/// this one included. Tests behind a cache read it to see whether a response came from the
/// origin afresh.
pub const HITS_HEADER: &str = "x-origin-hits";

/// The request facts the plan depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestView<'a> {
    pub method: &'a Method,
    /// Path without query: with `version`, the seed of the body.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// What to do with one request.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Wait this long before doing anything (`delay_ms`).
    pub delay: Option<Duration>,
    pub action: Action,
}

/// The origin's reaction after the delay.
#[derive(Debug)]
pub(crate) enum Action {
    /// Close the connection without answering.
    Close,
    /// Never answer.
    Hang,
    /// Answer.
    Respond(Answer),
}

/// A response to send.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BodyPlan,
}

/// The body of an [`Answer`].
#[derive(Debug)]
pub(crate) enum BodyPlan {
    /// No body (HEAD, 304, 412, 416, 204).
    Empty,
    /// Stream bytes `[start, end)` of `pattern`.
    Stream {
        pattern: Pattern,
        start: u64,
        end: u64,
        frame: usize,
        pause: Option<Duration>,
        end_mode: BodyEnd,
        announce_len: bool,
    },
}

/// Builds the plan for a request whose merged query gave `params`.
///
/// `now` dates the response; `epoch` (the origin's start, whole seconds) anchors
/// `Last-Modified = epoch - lm` so validators stay stable while the origin runs; `hits` is the
/// target's hit count including this request.
pub(crate) fn plan(
    req: RequestView<'_>,
    params: &Params,
    now: SystemTime,
    epoch: SystemTime,
    hits: u64,
) -> Plan {
    let action = match params.fail {
        Some(Fail::Close) => Action::Close,
        Some(Fail::Hang) => Action::Hang,
        Some(Fail::MidBody) | None => Action::Respond(answer(req, params, now, epoch, hits)),
    };
    Plan {
        delay: params.delay.filter(|d| !d.is_zero()),
        action,
    }
}

fn answer(
    req: RequestView<'_>,
    params: &Params,
    now: SystemTime,
    epoch: SystemTime,
    hits: u64,
) -> Answer {
    let validators = Validators {
        etag: params.etag.clone(),
        last_modified: params.lm.map(|secs| {
            epoch
                .checked_sub(Duration::from_secs(secs))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }),
    };
    let mut headers = metadata_headers(params, now, &validators, hits);
    if let Some(name) = &params.echo {
        // A careless origin: it lets a request field shape the response without `Vary`.
        let seen = req
            .headers
            .get(name)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("-"));
        headers.insert(HeaderName::from_static(ECHO_HEADER), seen);
    }

    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.1
    //# A server MUST ignore all received preconditions if its response to the same request
    //# without those conditions, prior to processing the request content, would have been a
    //# status code other than a 2xx (Successful) or 412 (Precondition Failed).
    if params.status.is_success() {
        match conditional::evaluate(req.method, req.headers, &validators) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                //= https://www.rfc-editor.org/rfc/rfc9110#section-15.4.5
                //# The server generating a 304 response MUST generate any of the following
                //# header fields that would have been sent in a 200 (OK) response to the same
                //# request: Content-Location, Date, ETag, and Vary; Cache-Control and Expires
                // We also keep the other metadata (CDN-Cache-Control, Last-Modified, `h=`
                // extras...) so tests can check that a 304 freshens a stored response.
                headers.remove(header::SET_COOKIE);
                apply_extra_headers(&mut headers, &params.headers);
                return Answer {
                    status: StatusCode::NOT_MODIFIED,
                    headers,
                    body: BodyPlan::Empty,
                };
            }
            Precondition::Failed => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                return Answer {
                    status: StatusCode::PRECONDITION_FAILED,
                    headers,
                    body: BodyPlan::Empty,
                };
            }
        }
    }

    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    apply_extra_headers(&mut headers, &params.headers);

    let status = params.status;
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Answer {
            status,
            headers,
            body: BodyPlan::Empty,
        };
    }

    let size = params.size;
    let (status, start, end) = match range_answer(req, params, &validators, size) {
        RangeAnswer::Full => (status, 0, size),
        RangeAnswer::Partial { start, end } => {
            //= https://www.rfc-editor.org/rfc/rfc9110#section-14.4
            //# Content-Range = range-unit SP ( range-resp / unsatisfied-range )
            headers.insert(
                header::CONTENT_RANGE,
                value(format!("bytes {start}-{end}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end + 1)
        }
        RangeAnswer::Unsatisfiable => {
            //= https://www.rfc-editor.org/rfc/rfc9110#section-15.5.17
            //# A server that generates a 416 response to a byte-range request SHOULD generate a
            //# Content-Range header field specifying the current length of the selected
            //# representation
            headers.insert(header::CONTENT_RANGE, value(format!("bytes */{size}")));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return Answer {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                body: BodyPlan::Empty,
            };
        }
    };
    if !params.nolen {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    }
    if req.method == Method::HEAD {
        return Answer {
            status,
            headers,
            body: BodyPlan::Empty,
        };
    }
    let end_mode = match params.fail {
        Some(Fail::MidBody) => BodyEnd::FailAt((end - start) / 2),
        _ => BodyEnd::Complete,
    };
    let variant = variant_value(req, params);
    Answer {
        status,
        headers,
        body: BodyPlan::Stream {
            pattern: Pattern::new(
                req.path,
                params.version.as_deref(),
                variant.as_deref(),
                size,
            ),
            start,
            end,
            frame: params.chunk.unwrap_or(BLOCK),
            pause: params.chunk_pause,
            end_mode,
            announce_len: !params.nolen,
        },
    }
}

/// Which part of the body a GET with `ranges=1` gets.
fn range_answer(
    req: RequestView<'_>,
    params: &Params,
    validators: &Validators,
    size: u64,
) -> RangeAnswer {
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.2
    //# A server MUST ignore a Range header field received with a request method that is
    //# unrecognized or for which range handling is not defined. For this specification, GET is
    //# the only method for which range handling is defined.
    if !params.ranges || req.method != Method::GET || params.status != StatusCode::OK {
        return RangeAnswer::Full;
    }
    let range = req.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5
    //# If the condition is false, the server MUST ignore the Range header field.
    if range.is_some() && !conditional::if_range_allows(req.headers, validators) {
        return RangeAnswer::Full;
    }
    range::answer(range, size)
}

/// The headers every answer to this request carries (200, 206, 304, 412...).
fn metadata_headers(
    params: &Params,
    now: SystemTime,
    validators: &Validators,
    hits: u64,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::DATE,
        value(httpdate::fmt_http_date(shift(now, params.date_offset))),
    );
    h.insert(
        header::SERVER,
        HeaderValue::from_static("tiercel-demo-origin"),
    );
    for (name, v) in [
        (header::CACHE_CONTROL, &params.cc),
        (HeaderName::from_static("cdn-cache-control"), &params.cdncc),
        (HeaderName::from_static("surrogate-control"), &params.sc),
        (header::VARY, &params.vary),
    ] {
        if let Some(v) = v {
            h.insert(name, v.clone());
        }
    }
    if let Some(secs) = params.expires {
        h.insert(
            header::EXPIRES,
            value(httpdate::fmt_http_date(shift(now, secs))),
        );
    }
    if let Some(etag) = &validators.etag {
        h.insert(header::ETAG, value(etag.to_header()));
    }
    if let Some(lm) = validators.last_modified {
        h.insert(header::LAST_MODIFIED, value(httpdate::fmt_http_date(lm)));
    }
    if let Some(age) = params.age {
        h.insert(header::AGE, HeaderValue::from(age));
    }
    if params.set_cookie {
        h.insert(
            header::SET_COOKIE,
            HeaderValue::from_static("tiercel_demo=1; Path=/; HttpOnly"),
        );
    }
    if !params.tags.is_empty() {
        // Surrogate-Key is space-separated (Fastly's convention, which Tiercel reads).
        h.insert(
            HeaderName::from_static("surrogate-key"),
            value(params.tags.join(" ")),
        );
    }
    if params.ranges {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    h.insert(
        HeaderName::from_static(HITS_HEADER),
        HeaderValue::from(hits),
    );
    h
}

/// `h=Name:Value` parameters: each named header replaces what the origin set, values in order.
pub(crate) fn apply_extra_headers(headers: &mut HeaderMap, extra: &[(HeaderName, HeaderValue)]) {
    for (name, _) in extra {
        headers.remove(name);
    }
    for (name, v) in extra {
        headers.append(name.clone(), v.clone());
    }
}

/// The response header an `echo=NAME` origin copies the request's `NAME` into.
pub const ECHO_HEADER: &str = "x-echo";

/// The variant value a `vary=` response's body is seeded with: the request's values of the
/// listed headers (lines of one header combined with ", "), joined by ",".
fn variant_value(req: RequestView<'_>, params: &Params) -> Option<String> {
    let vary = params.vary.as_ref()?.to_str().ok()?;
    let parts: Vec<String> = vary
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "*")
        .map(|name| {
            req.headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    Some(parts.join(","))
}

/// `now` moved by `secs` seconds (either direction), clamped at the Unix epoch.
fn shift(now: SystemTime, secs: i64) -> SystemTime {
    let delta = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        now + delta
    } else {
        now.checked_sub(delta).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// A header value from text the origin built itself (dates, numbers, validated tags).
fn value(s: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(s))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
#[path = "respond_tests.rs"]
mod tests;
