"""Character generator, RFC 864: an endless, recognisable stream of text.

The RFC's recommended pattern, exactly: the 95 printing ASCII characters
(32 space to 126 ``~``) as a ring; line N holds the 72 characters starting
at position N mod 95, then CR LF (74 bytes a line, repeating every 95 lines).
xinetd's ring leaves out space and ``~`` (93 characters); ours has all 95.

TCP: data is produced only when asked (``data_to_send(max_bytes)``), so the
runtime pulls it while the socket is writable and TCP flow control paces us;
the position in the pattern continues across calls; input is thrown away;
we close once the client half-closes.

UDP: each datagram is answered by one datagram of 0 to 512 characters (the
RFC says "a random number"; the length comes from an injected ``random.Random``
so tests can fix it, or from ``reply_size``), the start of the pattern, cut
to the reply budget when the runtime gives one.
"""

from __future__ import annotations

import random
from typing import ClassVar, Final

from socketkit.protocols.base import StreamProtocol
from socketkit.protocols.budget import BudgetedDatagramService

__all__ = [
    "LINE_LENGTH",
    "MAX_UDP_REPLY",
    "PERIOD",
    "RING",
    "ChargenDatagram",
    "ChargenStream",
    "pattern",
]

RING: Final = bytes(range(32, 127))
"""The 95 printing ASCII characters, in order."""
LINE_LENGTH: Final = 72
"""Characters per line, before the CR LF."""
PERIOD: Final = b"".join((RING[n:] + RING[:n])[:LINE_LENGTH] + b"\r\n" for n in range(len(RING)))
"""One full cycle of the pattern: 95 lines of 74 bytes."""
MAX_UDP_REPLY: Final = 512
"""RFC 864: a UDP reply holds "a random number (between 0 and 512) of characters"."""
_DEFAULT_CHUNK: Final = len(PERIOD)


def pattern(offset: int, size: int) -> bytes:
    """``size`` bytes of the endless pattern, starting ``offset`` bytes into it."""
    if size <= 0:
        return b""
    start = offset % len(PERIOD)
    first = PERIOD[start : start + size]
    if len(first) == size:
        return first
    rest = size - len(first)
    whole, part = divmod(rest, len(PERIOD))
    return first + PERIOD * whole + PERIOD[:part]


class ChargenStream(StreamProtocol):
    # Input is discarded, so reading it costs nothing; keep reading to see the FIN.
    input_makes_output: ClassVar[bool] = False

    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._offset = 0

    def _on_data(self, data: bytes) -> None:
        pass  # "any data received is thrown away"

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        if self.eof_received:
            return b""
        size = _DEFAULT_CHUNK if max_bytes is None else max_bytes
        data = pattern(self._offset, size)
        self._offset = (self._offset + len(data)) % len(PERIOD)
        return data

    def close_expected(self) -> bool:
        return self.eof_received


class ChargenDatagram(BudgetedDatagramService):
    """``reply_size=None`` draws each reply's length at random (1-512; the RFC allows 0,
    but an empty datagram is one asyncio and uvloop never send, so the client
    would wait for nothing)."""

    def __init__(self, *, reply_size: int | None = None, rng: random.Random | None = None) -> None:
        if reply_size is not None and not 0 <= reply_size <= MAX_UDP_REPLY:
            raise ValueError(f"reply_size must be 0-{MAX_UDP_REPLY}")
        self._size = reply_size
        self._rng = rng or random.Random()

    def handle_within(
        self, datagram: bytes, now: float, max_bytes: int | None
    ) -> tuple[list[bytes], bool]:
        wanted = self._rng.randint(1, MAX_UDP_REPLY) if self._size is None else self._size
        size = wanted if max_bytes is None else min(wanted, max(max_bytes, 0))
        return ([pattern(0, size)] if size else []), size < wanted
