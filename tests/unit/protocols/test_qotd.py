"""Quote of the Day (RFC 865): the embedded collection, --quotes files, the 512 limit."""

from __future__ import annotations

import pathlib

import pytest

from socketkit.errors import DataError
from socketkit.protocols.qotd import (
    MAX_QUOTE,
    QotdDatagram,
    QotdStream,
    default_quotes,
    load_quotes_file,
    parse_quotes,
    quote_of_the_day,
)
from tests.unit.protocols.helpers import drain

DAY = 86_400.0


def test_embedded_collection_has_30_attributed_quotes_under_512() -> None:
    quotes = default_quotes()
    assert len(quotes) >= 30
    assert len(set(quotes)) == len(quotes)
    for quote in quotes:
        assert len(quote) < MAX_QUOTE
        assert quote.endswith(b"\r\n")
        last = quote.rstrip(b"\r\n").split(b"\r\n")[-1]
        assert last.startswith(b"-- "), f"no author line in {quote!r}"
        assert len(last) > 5, f"no author in {quote!r}"
        text = quote.decode("ascii")  # printing ASCII, space, CR, LF, as RFC 865 recommends
        assert all(c.isprintable() or c in "\r\n" for c in text)


def test_paragraphs_become_quotes_with_crlf() -> None:
    quotes = parse_quotes("First line\nsecond line  \n-- Someone\n\n\n\nAnother\n-- Else\n")
    assert quotes == (b"First line\r\nsecond line\r\n-- Someone\r\n", b"Another\r\n-- Else\r\n")


def test_a_quote_at_the_limit_is_refused_with_its_number_and_line() -> None:
    ok = "a" * (MAX_QUOTE - 3)  # 509 + CR LF = 511 bytes: allowed
    assert parse_quotes(ok) == (ok.encode() + b"\r\n",)
    too_long = "b" * (MAX_QUOTE - 2)  # 510 + CR LF = 512: not "less than 512"
    with pytest.raises(DataError, match=r"q.txt: quote 2 \(line 3\) is 512 bytes.*under 512"):
        parse_quotes(f"short\n\n{too_long}\n", source="q.txt")


def test_limit_counts_utf8_bytes_and_line_endings() -> None:
    text = "\n".join(["é" * 100] * 3)  # 600 bytes of text
    with pytest.raises(DataError, match="bytes with its CR LF"):
        parse_quotes(text)


def test_control_characters_and_empty_collections_are_refused() -> None:
    with pytest.raises(DataError, match="control characters"):
        parse_quotes("bell\x07 here\n")
    with pytest.raises(DataError, match="no quotes"):
        parse_quotes("\n \n\t\n")


def test_quotes_file_errors_are_clear(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DataError, match="cannot read quotes from"):
        load_quotes_file(str(tmp_path / "missing.txt"))
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe quote\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_quotes_file(str(binary))
    good = tmp_path / "good.txt"
    good.write_text("one\n-- A\n\ntwo\n-- B\n", encoding="utf-8")
    assert load_quotes_file(str(good)) == (b"one\r\n-- A\r\n", b"two\r\n-- B\r\n")


def test_the_quote_changes_with_the_day_not_the_connection() -> None:
    quotes = (b"a\r\n", b"b\r\n", b"c\r\n")
    assert quote_of_the_day(quotes, 0.0) == quote_of_the_day(quotes, DAY - 1) == b"a\r\n"
    assert quote_of_the_day(quotes, DAY) == b"b\r\n"
    assert quote_of_the_day(quotes, 3 * DAY) == b"a\r\n"


def test_stream_sends_one_quote_then_closes_ignoring_input() -> None:
    quotes = (b"one\r\n-- A\r\n", b"two\r\n-- B\r\n")
    proto = QotdStream(now=DAY, quotes=quotes)
    proto.receive_data(b"hello?")
    assert drain(proto, 3) == b"two\r\n-- B\r\n"
    assert proto.close_expected()
    assert drain(QotdStream(now=0.0)) in default_quotes()


def test_datagram_quote_and_budget_cut_at_a_character_boundary() -> None:
    quotes = (b"caf\xc3\xa9 au lait\r\n",)
    svc = QotdDatagram(quotes=quotes)
    assert svc.handle(b"", 0.0) == [quotes[0]]
    assert svc.handle_within(b"", 0.0, 100) == ([quotes[0]], False)
    assert svc.handle_within(b"", 0.0, 4) == ([b"caf"], True)  # not half of the é
    assert svc.handle_within(b"", 0.0, 5) == ([b"caf\xc3\xa9"], True)
    assert svc.handle_within(b"", 0.0, 0) == ([], True)
