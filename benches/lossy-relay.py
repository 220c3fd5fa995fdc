#!/usr/bin/env python3
"""A user-space lossy link (kernel netem is not available here): two TUN devices, one in a
network namespace where the client runs and one in the root namespace where the server
listens; every IP packet crossing between them is dropped with probability LOSS and otherwise
delivered DELAY ms later (so the round trip is 2 x DELAY).

Usage: lossy-relay.py NETNS CLIENT_TUN SERVER_TUN DELAY_MS LOSS [SEED]
Both TUN devices must exist (ip tuntap add ... mode tun) with their addresses and routes set;
the relay attaches to them and runs until killed.
"""

import ctypes
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def attach(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    netns, client_tun, server_tun = sys.argv[1:4]
    delay = float(sys.argv[4]) / 1000.0
    loss = float(sys.argv[5])
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    server = attach(server_tun)
    libc = ctypes.CDLL(None, use_errno=True)
    ns = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    if libc.setns(ns, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    client = attach(client_tun)
    other = {client: server, server: client}
    queue = []  # (due, seq, fd, packet)
    seq = 0
    dropped = passed = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        ready, _, _ = select.select([client, server], [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if rng.random() < loss:
                    dropped += 1
                    continue
                passed += 1
                seq += 1
                heapq.heappush(queue, (now + delay, seq, other[fd], packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, fd, packet = heapq.heappop(queue)
            try:
                os.write(fd, packet)
            except OSError:
                pass


if __name__ == "__main__":
    main()
