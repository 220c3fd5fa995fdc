# Varnish as the benchmark's reverse-proxy cache: the same job as a Tiercel edge with
# `--memory-cache 512MiB` in front of the same demo origin. ../run-peers.sh replaces the @...@
# placeholders and starts Debian's varnish 7.1 by hand (never as a system service) with
#   taskset -c 0 varnishd -F -n RUN_DIR/varnish -f RUN_DIR/varnish.vcl \
#       -a 127.0.0.1:H1_PORT -a 127.0.0.1:H2_PORT -s malloc,256m \
#       -p thread_pools=1 -p feature=+http2
# Equivalence with Tiercel and nginx:
# - objects in RAM (`-s malloc,256m`), one thread pool, pinned to the server core by taskset;
# - freshness from the origin's Cache-Control (the built-in VCL, unchanged, decides what is
#   cacheable; `default_ttl` only applies to answers without any freshness information);
# - no access log (varnishncsa is not started), keep-alive on;
# - h2c with prior knowledge needs `feature=+http2`; Varnish speaks h1 and h2c on every
#   listen address, the second one only mirrors the other servers' two-port layout.

vcl 4.1;

backend origin {
    .host = "@ORIGIN_HOST@";
    .port = "@ORIGIN_PORT@";
}

sub vcl_deliver {
    # The runner asserts the second request for an object is a hit; `Age` is there too.
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
