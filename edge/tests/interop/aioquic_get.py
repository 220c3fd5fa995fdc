#!/usr/bin/env python3
"""An independent HTTP/3 client (aioquic) for interop tests against the edge.

Usage: aioquic_get.py --ca CERT.der --out BODY_FILE [--server-name NAME] [--header NAME:VALUE]...
                      [--raw] [--data TEXT] URL

Connects over QUIC to URL's host and port, sends one GET, writes the response body to
BODY_FILE and prints the status and header fields as one JSON object on stdout. With --raw, the
--header fields are the whole field section, pseudo-header fields included and in that order
(to send malformed requests), and --data is sent as the body; a stream the server resets is
reported as {"reset": CODE}. Exits 1 with a message on stderr when the exchange fails.
"""

import argparse
import asyncio
import json
import ssl
import sys
from urllib.parse import urlparse

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamReset


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters = {}
        self.responses = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset):
            waiter = self.waiters.pop(event.stream_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result({"reset": event.error_code})
            return
        for ev in self.h3.handle_event(event):
            if isinstance(ev, (HeadersReceived, DataReceived)):
                resp = self.responses.setdefault(
                    ev.stream_id, {"headers": [], "body": bytearray()}
                )
                if isinstance(ev, HeadersReceived):
                    resp["headers"].extend(
                        (k.decode(), v.decode()) for k, v in ev.headers
                    )
                else:
                    resp["body"].extend(ev.data)
                if ev.stream_ended:
                    waiter = self.waiters.pop(ev.stream_id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(self.responses.pop(ev.stream_id))

    async def get(self, authority, path, headers, raw=False, data=None):
        stream_id = self._quic.get_next_available_stream_id()
        extra = [(k.encode(), v.encode()) for k, v in headers]
        if raw:
            fields = extra
        else:
            fields = [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
            ] + [(k.lower(), v) for k, v in extra]
        self.h3.send_headers(stream_id, fields, end_stream=data is None)
        if data is not None:
            self.h3.send_data(stream_id, data.encode(), end_stream=True)
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = waiter
        self.transmit()
        return await asyncio.wait_for(waiter, 30)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca", required=True, help="the server's certificate (DER)")
    parser.add_argument("--out", required=True, help="where to write the body")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--server-name", help="the name to verify (default: the URL's host)")
    parser.add_argument("--raw", action="store_true", help="--header fields are all of them")
    parser.add_argument("--data", help="a request body")
    parser.add_argument("url")
    args = parser.parse_args()
    url = urlparse(args.url)
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    if args.server_name:
        config.server_name = args.server_name
    with open(args.ca, "rb") as f:
        config.load_verify_locations(cadata=ssl.DER_cert_to_PEM_cert(f.read()).encode())
    # ":path:/x" names the pseudo-header ":path": split after the first character.
    headers = [(h[0] + h[1:].split(":", 1)[0], h[1:].split(":", 1)[1]) for h in args.header]
    path = url.path + ("?" + url.query if url.query else "")
    async with connect(
        url.hostname,
        url.port,
        configuration=config,
        create_protocol=Client,
        wait_connected=True,
    ) as client:
        resp = await client.get(url.netloc, path, headers, args.raw, args.data)
    if "reset" in resp:
        print(json.dumps(resp))
        return
    with open(args.out, "wb") as f:
        f.write(resp["body"])
    status = next(v for k, v in resp["headers"] if k == ":status")
    fields = [[k, v] for k, v in resp["headers"] if not k.startswith(":")]
    print(json.dumps({"status": int(status), "headers": fields, "length": len(resp["body"])}))


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    except Exception as e:  # one line for the test's failure message
        print(f"aioquic_get: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
