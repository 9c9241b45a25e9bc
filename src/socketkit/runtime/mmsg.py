"""Batched UDP I/O: which path the UDP adapter takes, and the native helper.

Why batch: a busy UDP port costs one system call per datagram each way
with ``recvfrom_into``/``sendto``; ``recvmmsg`` reads every ready datagram
(up to ``SLOTS``) in one call and ``sendmmsg`` sends a wake-up's replies in
one. Why native (``_mmsg.c``, built at install where a C compiler is, Linux
only): through ctypes, filling the headers and decoding the addresses cost
more Python per datagram than the calls saved (BENCHMARKS.md). Where the
helper is missing, the adapter keeps its plain path and says so at debug
level; ``SOCKETKIT_UDP_IO`` or ``serve --udp-io`` choose a path by hand.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Final, Literal

from socketkit.errors import UsageError

if TYPE_CHECKING:
    from socketkit.runtime._mmsg import Batch

__all__ = ["ENV", "IO_CHOICES", "SLOTS", "UdpIo", "available", "batcher", "chosen_io"]

_Batch: type[Batch] | None
try:  # built by setup.py where a compiler exists (optional=True)
    from socketkit.runtime._mmsg import Batch as _Batch
except ImportError:  # pragma: no cover - only where the helper was not built
    _Batch = None

UdpIo = Literal["auto", "batched", "plain"]
IO_CHOICES: Final[tuple[UdpIo, ...]] = ("auto", "batched", "plain")
ENV: Final = "SOCKETKIT_UDP_IO"
SLOTS: Final = 64
"""Datagrams per system call: the C yardstick server's drain bound."""


def available(sock: socket.socket | None = None) -> bool:
    """Is the helper built, and (given a socket) can it serve this one?"""
    if _Batch is None:
        return False
    if sock is None:
        return True
    return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_DGRAM


def chosen_io(requested: UdpIo | None) -> UdpIo:
    """The path asked for: the argument, else ``$SOCKETKIT_UDP_IO``, else auto."""
    if requested is not None:
        return requested
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in IO_CHOICES:
        raise UsageError(f"{ENV}={value!r}: expected one of {', '.join(IO_CHOICES)}")
    return value


def batcher(sock: socket.socket, slots: int = SLOTS) -> Batch:
    """A ``_mmsg.Batch`` for ``sock`` (``recv()``, ``send(replies)``); see ``_mmsg.c``."""
    if _Batch is None or not available(sock):
        raise OSError("batched UDP needs socketkit's native helper on Linux (an IP socket)")
    return _Batch(sock.fileno(), int(sock.family), slots)
