"""Verified request/response over one blocking socket: the exchanges behind the Locust users.

Blocking on purpose: Locust runs each user in a gevent greenlet and patches
``socket`` so that a blocking call yields to the other users. Nothing here
imports Locust, so the exchange is testable (and usable) on its own.

- ``echo``: send a message whose first 8 bytes are a per-connection sequence
  number and the rest random bytes; read exactly as many bytes back (TCP,
  Unix) or one datagram (UDP); any difference is a :class:`Mismatch`.
- ``sum``: send ``A B`` with random integers and two-decimal fractions; the
  reply line must be their exact sum, as ``socketkit serve sum`` writes it.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass
from decimal import Decimal

from socketkit.endpoints import Endpoint, parse_endpoint
from socketkit.errors import UsageError

__all__ = ["Mismatch", "Target", "VerifiedConnection", "parse_target", "sum_request"]

_MAX_LINE = 8192


class Mismatch(Exception):
    """The reply differed from what a correct server sends (Locust counts it as a failure)."""


@dataclass(frozen=True)
class Target:
    """Where to send: an endpoint and whether it is UDP."""

    endpoint: Endpoint
    udp: bool

    def __str__(self) -> str:
        scheme = "udp://" if self.udp else "" if self.endpoint.is_unix else "tcp://"
        return f"{scheme}{self.endpoint}"


def parse_target(text: str) -> Target:
    """``tcp://HOST:PORT``, ``udp://HOST:PORT``, ``unix:/path`` or a bare ``HOST:PORT`` (TCP)."""
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Target(parse_endpoint(text), udp=False)
    if scheme not in ("tcp", "udp"):
        raise UsageError(f"bad host {text!r}: write tcp://HOST:PORT, udp://HOST:PORT or unix:/path")
    endpoint = parse_endpoint(rest.rstrip("/"))
    if endpoint.is_unix:
        raise UsageError(f"bad host {text!r}: a Unix socket is written unix:/path")
    return Target(endpoint, udp=scheme == "udp")


def sum_request(rng: random.Random) -> tuple[bytes, str]:
    """One sum request line and the exact reply it must get."""
    a = Decimal(rng.randrange(-(10**9), 10**9)).scaleb(-rng.choice((0, 2)))
    b = Decimal(rng.randrange(-(10**9), 10**9)).scaleb(-rng.choice((0, 2)))
    return f"{a} {b}\n".encode(), f"{a + b:f}"


class VerifiedConnection:
    """One connection (or connected UDP socket) making verified exchanges, one at a time."""

    def __init__(self, target: Target, *, timeout: float = 10.0) -> None:
        self.target = target
        self._seq = 0
        self._buffer = b""
        ep = target.endpoint
        if ep.is_unix:
            assert ep.path is not None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(ep.path)
            except OSError:
                sock.close()
                raise
        elif target.udp:
            info = socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            sock.settimeout(timeout)
            sock.connect(info[4])
        else:
            sock = socket.create_connection((ep.host or "127.0.0.1", ep.port or 0), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def close(self) -> None:
        self.sock.close()

    def echo(self, size: int) -> int:
        """Send ``size`` bytes and check they all come back; the bytes received."""
        head = self._seq.to_bytes(8, "big")[: min(8, size)]
        self._seq += 1
        message = head + os.urandom(size - len(head))
        if self.target.udp:
            self.sock.send(message)
            reply = self.sock.recv(65536)
        else:
            self.sock.sendall(message)
            reply = self._read_exactly(size)
        if reply != message:
            raise Mismatch(f"echo of {size} B came back different ({len(reply)} B)")
        return len(reply)

    def sum(self, rng: random.Random) -> int:
        """One sum request; the reply must be the exact sum. The bytes received."""
        line, expected = sum_request(rng)
        if self.target.udp:
            self.sock.send(line)
            reply = self.sock.recv(65536)
        else:
            self.sock.sendall(line)
            reply = self._read_line()
        text = reply.decode("utf-8", errors="replace").strip()
        if text != expected:
            raise Mismatch(f"sum {line.decode().strip()} answered {text[:60]!r}, not {expected}")
        return len(reply)

    def _read_exactly(self, size: int) -> bytes:
        chunks = []
        got = 0
        while got < size:
            chunk = self.sock.recv(size - got)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-reply")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read_line(self) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > _MAX_LINE:
                raise Mismatch("the reply line is longer than 8 KiB")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-reply")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"
