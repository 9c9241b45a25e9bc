"""Quote of the Day, RFC 865: one short message, then close.

"The quote may be just one or up to several lines, but it should be less than
512 characters." Quotes come as text, one quote per paragraph (paragraphs are
separated by blank lines; the author goes on the quote's last line). Each is
sent with CR LF line endings; ``parse_quotes`` refuses a collection with a
quote of 512 bytes or more on the wire, or with control characters, so a bad
``--quotes`` file fails at start-up, not in front of a client.

The quote of the day is chosen from the date (``now``), so every client sees
the same quote all day, as the service's name promises.

TCP: the quote is sent at once, input is thrown away, then we close.
UDP: each datagram is answered with the quote, cut at a character boundary to
the reply budget when the runtime gives one (nothing when nothing fits).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Sequence
from typing import Final

from socketkit.errors import DataError
from socketkit.protocols.base import OutputBuffer, StreamProtocol
from socketkit.protocols.budget import BudgetedDatagramService

__all__ = [
    "MAX_QUOTE",
    "QotdDatagram",
    "QotdStream",
    "default_quotes",
    "parse_quotes",
    "quote_of_the_day",
]

MAX_QUOTE: Final = 512
"""A quote on the wire, CR LF included, must be shorter than this (RFC 865)."""
_DAY: Final = 86_400
_ALLOWED_CONTROLS: Final = frozenset("\t")


def parse_quotes(text: str, *, source: str = "quotes") -> tuple[bytes, ...]:
    """Quotes on the wire (CR LF endings) from paragraphs of text; DataError says what is wrong."""
    quotes: list[bytes] = []
    paragraph: list[str] = []
    start = 0

    def finish() -> None:
        if not paragraph:
            return
        number = len(quotes) + 1
        body = "\r\n".join(paragraph) + "\r\n"
        bad = sorted(
            {c for c in body if c not in "\r\n" and not c.isprintable()} - _ALLOWED_CONTROLS
        )
        where = f"{source}: quote {number} (line {start})"
        if bad:
            shown = ", ".join(repr(c) for c in bad)
            raise DataError(f"{where} holds control characters {shown} - remove them")
        wire = body.encode("utf-8")
        if len(wire) >= MAX_QUOTE:
            raise DataError(
                f"{where} is {len(wire)} bytes with its CR LF line endings; RFC 865 wants "
                f"under {MAX_QUOTE} - shorten it or split it in two"
            )
        quotes.append(wire)
        paragraph.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line:
            finish()
            continue
        if not paragraph:
            start = number
        paragraph.append(line)
    finish()
    if not quotes:
        raise DataError(f"{source}: no quotes found - write one quote per paragraph")
    return tuple(quotes)


def load_quotes_file(path: str) -> tuple[bytes, ...]:
    """``parse_quotes`` for a file given by the operator (``serve --quotes FILE``)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DataError(f"cannot read quotes from {path}: {exc.strerror or exc}") from exc
    return parse_quotes(text, source=path)


@functools.cache
def default_quotes() -> tuple[bytes, ...]:
    """The embedded collection (``socketkit/data/quotes.txt``), read once."""
    resource = importlib.resources.files("socketkit").joinpath("data", "quotes.txt")
    return parse_quotes(resource.read_text(encoding="utf-8"), source="socketkit/data/quotes.txt")


def quote_of_the_day(quotes: Sequence[bytes], now: float) -> bytes:
    """The quote for the UTC day of ``now``."""
    return quotes[int(now // _DAY) % len(quotes)]


def _fit(data: bytes, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of UTF-8 text, never cutting a character in half."""
    if len(data) <= max_bytes:
        return data
    return data[:max_bytes].decode("utf-8", errors="ignore").encode("utf-8")


class QotdStream(StreamProtocol):
    def __init__(self, *, now: float = 0.0, quotes: Sequence[bytes] | None = None) -> None:
        super().__init__(now=now)
        self._out = OutputBuffer()
        self._out.append(quote_of_the_day(quotes or default_quotes(), now))

    def _on_data(self, data: bytes) -> None:
        pass  # "any data received is thrown away"

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        return not self._out


class QotdDatagram(BudgetedDatagramService):
    def __init__(self, *, quotes: Sequence[bytes] | None = None) -> None:
        self._quotes = tuple(quotes) if quotes else default_quotes()

    def handle_within(
        self, datagram: bytes, now: float, max_bytes: int | None
    ) -> tuple[list[bytes], bool]:
        full = quote_of_the_day(self._quotes, now)
        quote = full if max_bytes is None else _fit(full, max(max_bytes, 0))
        return ([quote] if quote else []), len(quote) < len(full)
