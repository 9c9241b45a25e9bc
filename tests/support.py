"""Test support: the timeout unit and small socket helpers (all loopback, all with timeouts)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from socketkit.protocols import OutputBuffer, StreamProtocol

TIMEOUT = 10.0 * float(os.environ.get("SOCKETKIT_TEST_TIMEOUT_FACTOR", "1"))
"""Seconds any single network wait in a test may take (scale it on slow machines)."""


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Blocking read of exactly n bytes (the socket must have a timeout)."""
    assert sock.gettimeout() is not None, "a timeout is required"
    out = bytearray()
    while len(out) < n:
        data = sock.recv(min(65536, n - len(out)))
        if not data:
            break
        out += data
    return bytes(out)


def recv_until_eof(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> bytes:
    assert sock.gettimeout() is not None, "a timeout is required"
    out = bytearray()
    while len(out) <= limit:
        data = sock.recv(65536)
        if not data:
            return bytes(out)
        out += data
    raise AssertionError("peer sent more than the limit")


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback TCP port where nobody listens, kept reserved while in use."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


@contextlib.contextmanager
def stalled_listener() -> Iterator[tuple[str, int]]:
    """A listener whose accept queue is full: a new connect() hangs (SYNs are dropped).

    This gives a slow address on loopback, to race against, without sending
    anything anywhere else.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        addr = listener.getsockname()
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(addr)
            fillers.append(s)
        yield addr
    finally:
        for s in fillers:
            s.close()
        listener.close()


def client(addr: tuple[str, int] | str, family: int = socket.AF_INET) -> socket.socket:
    if isinstance(addr, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(addr)
    return sock


class ReplyThenClose(StreamProtocol):
    """A test service that answers at once and is done, whatever the client sends.

    Like daytime; subclass and set ``REPLY`` for another answer.
    """

    REPLY = b"the answer\r\n"

    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._out = OutputBuffer()
        self._out.append(self.REPLY)

    def _on_data(self, data: bytes) -> None:
        pass

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        return not self._out
