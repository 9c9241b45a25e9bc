"""runtime/mmsg.py under an event loop: many sources, many datagrams, every reply right.

A minimal echo built on ``MmsgSocket`` the way the UDP adapter uses it
(``add_reader``; receive, serve, queue, flush) runs under asyncio and uvloop
(``arun``). Sixteen client sockets (sixteen source ports) each keep a window
of datagrams in flight, so wake-ups find several at once and the batched
calls are exercised, then the load drops to one client and one datagram at a
time (the plain start). Every wait is bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit.runtime import mmsg
from socketkit.runtime.mmsg import MmsgSocket
from tests.support import TIMEOUT

pytestmark = pytest.mark.skipif(
    not mmsg.available(), reason="recvmmsg/sendmmsg exist on Linux only"
)

Run = Callable[[Callable[[], Awaitable[Any]]], Any]

CLIENTS = 16
PER_CLIENT = 40
WINDOW = 8


class BatchedEcho:
    """Echo every datagram with the primitive; counts what it saw."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.batcher = MmsgSocket(sock, slots=16)
        self.received = 0
        self.sent = 0
        self.largest_batch = 0

    def on_readable(self) -> None:
        batcher = self.batcher
        for _ in range(8):  # bounded per wake-up
            got = batcher.receive()
            self.received += len(got.payloads)
            self.largest_batch = max(self.largest_batch, len(got.payloads))
            for data, addr in zip(got.payloads, got.addresses, strict=True):
                batcher.queue(data, addr)
            flushed = batcher.flush()
            self.sent += flushed.sent
            assert not flushed.dropped
            if got.drained:
                break


async def client(loop: asyncio.AbstractEventLoop, sock: socket.socket, tag: int) -> list[bytes]:
    """Send PER_CLIENT numbered datagrams, at most WINDOW unanswered; return the replies."""
    replies: list[bytes] = []
    sent = 0
    while len(replies) < PER_CLIENT:
        while sent < PER_CLIENT and sent - len(replies) < WINDOW:
            await loop.sock_sendall(sock, b"%d:%d:" % (tag, sent) + bytes(sent % 50))
            sent += 1
        replies.append(await asyncio.wait_for(loop.sock_recv(sock, 65536), TIMEOUT))
    return replies


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_many_sources_many_datagrams(arun: Run, family: int, host: str) -> None:
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    server.setblocking(False)
    echo = BatchedEcho(server)
    clients: list[socket.socket] = []
    for _ in range(CLIENTS):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        sock.connect(server.getsockname())
        sock.setblocking(False)
        clients.append(sock)

    async def main() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        loop.add_reader(server.fileno(), echo.on_readable)
        try:
            busy = await asyncio.gather(*(client(loop, s, i) for i, s in enumerate(clients)))
            hot_calls = echo.batcher.batched_calls
            # then quiet: one client, one datagram at a time
            quiet = []
            for i in range(5):
                await loop.sock_sendall(clients[0], b"quiet %d" % i)
                quiet.append(await asyncio.wait_for(loop.sock_recv(clients[0], 100), TIMEOUT))
            assert quiet == [b"quiet %d" % i for i in range(5)]
            # quiet load: at most the first quiet wake-up still starts batched
            assert echo.batcher.batched_calls <= hot_calls + 1
            assert not echo.batcher.hot
            return busy
        finally:
            loop.remove_reader(server.fileno())

    try:
        results = arun(main)
    finally:
        server.close()
        for sock in clients:
            sock.close()
    for tag, replies in enumerate(results):
        assert sorted(replies) == sorted(
            b"%d:%d:" % (tag, n) + bytes(n % 50) for n in range(PER_CLIENT)
        )
    total = CLIENTS * PER_CLIENT + 5
    assert echo.received == echo.sent == total
    assert echo.batcher.batched_calls > 0
    assert echo.largest_batch > 1
