"""A bounded line splitter for line-based stream services (sum).

It keeps at most one line's worth of unfinished bytes: a peer that never
sends a newline is told "too long" as soon as its line can no longer fit,
instead of growing our memory until the newline comes. The verdict never
depends on how the bytes were split into reads.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TOO_LONG", "LineBuffer"]

TOO_LONG: Final = object()
"""Returned by ``next_line`` for a line longer than the limit; nothing follows it."""


class LineBuffer:
    """Bytes in, complete lines out (without their LF or CRLF).

    ``max_line`` counts the bytes before the line ending, so a line of exactly
    ``max_line`` bytes is accepted with LF or CRLF after it.
    """

    __slots__ = ("_broken", "_buf", "_max", "_start")

    def __init__(self, max_line: int) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._start = 0
        self._broken = False

    def feed(self, data: bytes) -> None:
        if not self._broken:
            self._buf += data

    @property
    def pending(self) -> int:
        """Bytes received and not yet returned as lines."""
        return len(self._buf) - self._start

    def next_line(self) -> bytes | object | None:
        """The next complete line, ``TOO_LONG``, or ``None`` until more bytes come."""
        if self._broken:
            return None
        buf = self._buf
        end = buf.find(b"\n", self._start)
        if end < 0:
            unfinished = len(buf) - self._start
            # A final CR may still turn out to be half of a CRLF.
            if unfinished > self._max + 1 or (unfinished == self._max + 1 and buf[-1:] != b"\r"):
                return self._break()
            self._compact()
            return None
        stop = end - 1 if end > self._start and buf[end - 1] == 0x0D else end
        if stop - self._start > self._max:
            return self._break()
        line = bytes(buf[self._start : stop])
        self._start = end + 1
        return line

    def take_rest(self) -> bytes | object | None:
        """At end of input: the unterminated last line (if any), else ``None``."""
        if self._broken or not self.pending:
            return None
        rest = bytes(self._buf[self._start :])
        self._buf.clear()
        self._start = 0
        if rest.endswith(b"\r"):
            rest = rest[:-1]
        if len(rest) > self._max:
            self._broken = True
            return TOO_LONG
        return rest

    def _break(self) -> object:
        self._broken = True
        self._buf = bytearray()
        self._start = 0
        return TOO_LONG

    def _compact(self) -> None:
        if self._start:
            del self._buf[: self._start]
            self._start = 0
