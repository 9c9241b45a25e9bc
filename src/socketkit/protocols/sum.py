"""The sum service (DESIGN.md section 4): the lecture's homework, a server that adds two numbers.

Stream form: UTF-8 lines ending in LF (CRLF accepted), each holding exactly
two numbers separated by spaces or tabs; the reply is their exact sum and LF,
in request order, and the connection stays open for more lines. Errors are
one ``ERR <reason>`` line and the connection stays usable, except for a line
longer than ``max_line`` bytes, which is answered ``ERR line too long`` and
closes the connection (we cannot know where the next request starts).

Datagram form: one request per datagram (a trailing newline is optional),
one reply datagram. A datagram that holds a newline before its end carries
more than one request and is answered ``ERR one request per datagram``.

Arithmetic is exact decimal, never binary floating point, and the result is
written in plain notation with the larger count of fraction digits of the
two numbers (``1.50 1.50`` -> ``3.00``). Numbers whose plain form would
exceed ``max_digits`` digits are refused *before* any arithmetic, so
``1e999999999`` costs nothing.

Pipelining is answered in bounded batches: ``data_to_send`` answers at most
``batch_lines`` requests per call, so one client sending a megabyte of lines
cannot keep the others waiting (the runtime calls it again when there is
room).
"""

from __future__ import annotations

import decimal
import re
from typing import Final

from socketkit.protocols.base import DatagramService, OutputBuffer, StreamProtocol
from socketkit.protocols.lines import TOO_LONG, LineBuffer

__all__ = [
    "MAX_DIGITS",
    "MAX_LINE",
    "SumDatagram",
    "SumStream",
    "add_numbers",
    "answer_line",
]

MAX_LINE: Final = 8 * 1024
"""Bytes in one request line, not counting its LF or CRLF."""
MAX_DIGITS: Final = 4000
"""Digits in one number's plain form (``1e3`` is ``1000``: 4 digits)."""
BATCH_LINES: Final = 64
"""Requests answered per ``data_to_send`` call before other clients get a turn."""
MAX_PENDING: Final = 64 * 1024
"""Unanswered request bytes past which we ask the runtime to stop reading."""

_NUMBER = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?")
_SEPARATORS = re.compile(r"[ \t]+")
_SURROUNDING = " \t\r\n\x0b\x0c"
_EXPONENT_DIGITS = 7
"""Exponents with more significant digits than this make any non-zero number too long."""

ERR_TWO = "ERR expected two numbers"
ERR_LONG_NUMBER = "ERR number too long"
ERR_UTF8 = "ERR invalid UTF-8"
ERR_LONG_LINE = "ERR line too long"
ERR_ONE_PER_DATAGRAM = "ERR one request per datagram"


class _TooLong(Exception):
    pass


def _parse(token: str, max_digits: int) -> decimal.Decimal | None:
    """A Decimal for a number token, None if it is not one; _TooLong if its plain form is too long.

    Built from its parts, so no huge exponent ever reaches the decimal module
    and no long digit string goes through ``int()`` (which Python limits).
    """
    match = _NUMBER.fullmatch(token)
    if match is None:
        return None
    sign, whole, fraction, exp_sign, exp_digits = match.groups()
    fraction = fraction or ""
    digits = (whole + fraction).lstrip("0")
    exponent_text = (exp_digits or "0").lstrip("0") or "0"
    if len(exponent_text) > _EXPONENT_DIGITS:
        if not digits and exp_sign != "-":
            return decimal.Decimal(f"{sign}0")  # 0e999999999 is plain "0"
        raise _TooLong
    exponent = int(exponent_text) * (-1 if exp_sign == "-" else 1) - len(fraction)
    if not digits:
        # Zero: "0" for a non-negative exponent, else "0." and -exponent zeros.
        plain = 1 + max(0, -exponent)
        if plain > max_digits:
            raise _TooLong
        # A positive exponent changes nothing in the plain form of zero.
        return decimal.Decimal(f"{sign}0E{min(exponent, 0)}")
    # Digits before the point (at least the "0" of "0.001"), plus those after it.
    plain = len(digits) + exponent if exponent >= 0 else max(len(digits) + exponent, 1) - exponent
    if plain > max_digits:
        raise _TooLong
    return decimal.Decimal(f"{sign}{digits}E{exponent}")


def _context(max_digits: int) -> decimal.Context:
    """Enough precision that every sum of two admitted numbers is exact."""
    return decimal.Context(
        prec=2 * max_digits + 10,
        Emax=decimal.MAX_EMAX,
        Emin=decimal.MIN_EMIN,
        traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow],
    )


def add_numbers(a: str, b: str, *, max_digits: int = MAX_DIGITS) -> str:
    """The reply text (no LF) for two tokens: their exact sum, or ``ERR ...``."""
    numbers: list[decimal.Decimal] = []
    for token in (a, b):  # the first bad token is the one reported
        try:
            number = _parse(token, max_digits)
        except _TooLong:
            return ERR_LONG_NUMBER
        if number is None:
            return f"ERR not a number: {token}"
        numbers.append(number)
    total = _context(max_digits).add(numbers[0], numbers[1])
    text = format(total, "f")
    if total.is_zero() and text.startswith("-"):
        text = text[1:]  # -0 + -0 is zero, written "0"
    return text


def answer_line(line: bytes, *, max_digits: int = MAX_DIGITS) -> str:
    """The reply text (no LF) for one request line (without its line ending)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return ERR_UTF8
    stripped = text.strip(_SURROUNDING)
    tokens = _SEPARATORS.split(stripped) if stripped else []
    if len(tokens) != 2:
        return ERR_TWO
    return add_numbers(tokens[0], tokens[1], max_digits=max_digits)


class SumStream(StreamProtocol):
    """One connection: one reply line per request line, in order, pipelining welcome.

    After the peer half-closes, an unterminated last line is answered too
    (``printf '2 3' | nc`` gets its 5), then the connection closes.
    """

    def __init__(
        self,
        *,
        now: float = 0.0,
        max_line: int = MAX_LINE,
        max_digits: int = MAX_DIGITS,
        batch_lines: int = BATCH_LINES,
        max_pending: int = MAX_PENDING,
    ) -> None:
        super().__init__(now=now)
        self._lines = LineBuffer(max_line)
        self._max_digits = max_digits
        self._batch = max(1, batch_lines)
        self._max_pending = max(max_pending, max_line + 2)
        self._out = OutputBuffer()
        self._done = False
        """True after ``ERR line too long`` or the last line after EOF: no more requests."""

    def _on_data(self, data: bytes) -> None:
        if self._done:
            return
        self._lines.feed(data)

    def wants_input(self) -> bool:
        # Answering happens in bounded batches in data_to_send; past the cap,
        # reading stops until the backlog is worked off (memory and fairness).
        return self._lines.pending <= self._max_pending

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        if len(self._out) < (max_bytes or 1):
            self._answer(self._batch, max_bytes)
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        if not self._done and self.eof_received:
            # Everything buffered was answered once no line is left.
            return False
        return self._done and not self._out

    def _answer(self, budget: int, max_bytes: int | None = None) -> bool:
        """Answer up to ``budget`` complete lines; True if more may be waiting."""
        if self._done:
            return False
        for _ in range(budget):
            line = self._lines.next_line()
            if line is None:
                if self.eof_received:
                    self._finish()
                return False
            if line is TOO_LONG:
                self._out.append(ERR_LONG_LINE.encode() + b"\n")
                self._done = True
                return False
            assert isinstance(line, bytes)
            self._reply(line)
            if max_bytes is not None and len(self._out) >= max_bytes:
                return True
        return True

    def _finish(self) -> None:
        rest = self._lines.take_rest()
        if rest is TOO_LONG:  # pragma: no cover - next_line refused it first (kept for safety)
            self._out.append(ERR_LONG_LINE.encode() + b"\n")
        elif isinstance(rest, bytes):
            self._reply(rest)
        self._done = True

    def _reply(self, line: bytes) -> None:
        self._out.append(answer_line(line, max_digits=self._max_digits).encode("utf-8") + b"\n")


class SumDatagram(DatagramService):
    """One request per datagram, one reply datagram; the same rules as the stream form."""

    def __init__(self, *, max_line: int = MAX_LINE, max_digits: int = MAX_DIGITS) -> None:
        self._max_line = max_line
        self._max_digits = max_digits

    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        request = datagram
        if request.endswith(b"\n"):
            request = request[:-1]
        if request.endswith(b"\r"):
            request = request[:-1]
        if len(request) > self._max_line:
            reply = ERR_LONG_LINE
        elif b"\n" in request:
            reply = ERR_ONE_PER_DATAGRAM
        else:
            reply = answer_line(request, max_digits=self._max_digits)
        return [reply.encode("utf-8") + b"\n"]
