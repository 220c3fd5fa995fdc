//! The HTML page a plain `GET /` returns: what the demo origin understands, with links to try.

/// The index page. Static: it documents the query language of [`super::spec`].
pub(crate) const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tiercel demo origin</title></head>
<body>
<h1>Tiercel demo origin</h1>
<p>Every path serves a deterministic body (it depends on the path and the <code>version</code>
parameter). Query parameters shape the response; all are optional and combine freely.
Unknown parameters are ignored, so <code>?v=2</code> makes a new URL with the same behaviour.</p>
<table border="1" cellpadding="4">
<tr><th>parameter</th><th>effect</th></tr>
<tr><td><code>size=N</code></td><td>body bytes (default 1024)</td></tr>
<tr><td><code>version=V</code></td><td>different body bytes for the same path</td></tr>
<tr><td><code>cc=</code></td><td>Cache-Control value (URL-encoded)</td></tr>
<tr><td><code>cdncc=</code></td><td>CDN-Cache-Control value</td></tr>
<tr><td><code>sc=</code></td><td>Surrogate-Control value</td></tr>
<tr><td><code>expires=SECS</code></td><td>Expires = now + SECS (negative: in the past)</td></tr>
<tr><td><code>etag=V</code></td><td>ETag "V" (<code>W/V</code>: weak); 304 to a matching If-None-Match</td></tr>
<tr><td><code>lm=SECS_AGO</code></td><td>Last-Modified = origin start − SECS; 304 to If-Modified-Since when not modified</td></tr>
<tr><td><code>vary=H</code></td><td>Vary: H; the body then depends on the request's H value(s)</td></tr>
<tr><td><code>status=N</code></td><td>response status (200..=599)</td></tr>
<tr><td><code>delay_ms=N</code></td><td>wait before sending the headers</td></tr>
<tr><td><code>chunk=BYTES</code>, <code>chunk_ms=N</code></td><td>send the body in BYTES-sized pieces (default 65536), pausing N ms between them</td></tr>
<tr><td><code>set_cookie=1</code></td><td>adds a Set-Cookie header</td></tr>
<tr><td><code>age=N</code></td><td>Age: N</td></tr>
<tr><td><code>date_offset=SECS</code></td><td>Date = now + SECS</td></tr>
<tr><td><code>h=Name:Value</code></td><td>extra response header (repeatable; replaces the origin's own)</td></tr>
<tr><td><code>tags=a,b</code></td><td>Surrogate-Key: a b</td></tr>
<tr><td><code>fail=close|hang|midbody</code></td><td>close without answering, never answer, or cut the body in half</td></tr>
<tr><td><code>nolen=1</code></td><td>no Content-Length (chunked in HTTP/1.1)</td></tr>
<tr><td><code>ranges=1</code></td><td>answer a single <code>Range: bytes=…</code> with 206</td></tr>
<tr><td><code>echo=NAME</code></td><td>copy the request's <code>NAME</code> field into <code>x-echo</code>, without <code>Vary</code> (a careless origin)</td></tr>
</table>
<p>Every response carries <code>x-origin-hits</code>: how many requests this exact path and
query has received. HTTP/1.1 and HTTP/2 without TLS (h2c, prior knowledge) are both served.</p>
<h2>Try</h2>
<ul>
<li><a href="/hello?cc=max-age%3D60">/hello?cc=max-age%3D60</a> (cacheable for a minute)</li>
<li><a href="/hello?cc=no-store">/hello?cc=no-store</a> (never cached)</li>
<li><a href="/video.bin?size=104857600&amp;ranges=1&amp;cc=max-age%3D3600">/video.bin</a> (100 MiB, ranges)</li>
<li><a href="/slow?size=1048576&amp;chunk=65536&amp;chunk_ms=100&amp;cc=max-age%3D60">/slow</a> (streams for 1.6 s)</li>
<li><a href="/tagged?tags=news,sport&amp;cc=max-age%3D300">/tagged</a> (purge by tag)</li>
<li><a href="/validated?etag=v1&amp;cc=max-age%3D0">/validated</a> (revalidated on every use)</li>
</ul>
</body>
</html>
"#;
