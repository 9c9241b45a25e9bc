"""Chargen (RFC 864): the exact 95-character ring, 72 characters + CR LF, across any read sizes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketkit.protocols.chargen import (
    MAX_UDP_REPLY,
    PERIOD,
    ChargenDatagram,
    ChargenStream,
    pattern,
)

PRINTABLE = "".join(chr(c) for c in range(32, 127))


def expected_line(n: int) -> bytes:
    """Line n as RFC 864 describes it, computed independently of the module."""
    return "".join(PRINTABLE[(n + i) % 95] for i in range(72)).encode() + b"\r\n"


def test_first_lines_are_the_rfc_pattern() -> None:
    proto = ChargenStream(now=0.0)
    data = proto.data_to_send(74 * 3)
    lines = data.split(b"\r\n")
    assert lines[0] == b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg"
    assert lines[1].startswith(b"!")
    assert lines[1].endswith(b"h")
    assert data == expected_line(0) + expected_line(1) + expected_line(2)


def test_the_ring_has_all_95_printing_characters_and_repeats_every_95_lines() -> None:
    assert len(PERIOD) == 95 * 74
    lines = PERIOD.split(b"\r\n")[:-1]
    assert len(lines) == 95
    assert all(len(line) == 72 for line in lines)
    assert {line[0] for line in lines} == set(range(32, 127))  # space and ~ included
    assert lines == [expected_line(n)[:-2] for n in range(95)]
    assert pattern(0, 2 * len(PERIOD) + 5) == PERIOD + PERIOD + PERIOD[:5]


@given(st.lists(st.integers(min_value=1, max_value=20_000), min_size=1, max_size=30))
def test_pattern_continues_across_arbitrary_read_sizes(sizes: list[int]) -> None:
    proto = ChargenStream(now=0.0)
    out = bytearray()
    for size in sizes:
        data = proto.data_to_send(size)
        assert len(data) == size  # never more than asked, never less (it never runs dry)
        out += data
    total = len(out)
    lines_needed = total // 74 + 1
    reference = b"".join(expected_line(n) for n in range(lines_needed))
    assert bytes(out) == reference[:total]


def test_input_is_thrown_away_and_eof_closes() -> None:
    proto = ChargenStream(now=0.0)
    proto.receive_data(b"stop please\r\n")
    assert proto.data_to_send(74) == expected_line(0)
    assert not proto.close_expected()
    proto.receive_eof()
    assert proto.close_expected()
    assert proto.data_to_send(74) == b""


def test_unbounded_pull_gives_a_bounded_chunk() -> None:
    data = ChargenStream().data_to_send()
    assert 0 < len(data) <= len(PERIOD)


@pytest.mark.parametrize("size", [1, 73, 74, 75, 512])
def test_udp_reply_is_the_pattern_of_the_chosen_size(size: int) -> None:
    svc = ChargenDatagram(reply_size=size)
    assert svc.handle(b"anything", 0.0) == [pattern(0, size)]


def test_a_zero_byte_reply_is_no_datagram_at_all() -> None:
    """asyncio and uvloop never send an empty datagram; we never pretend to."""
    assert ChargenDatagram(reply_size=0).handle(b"anything", 0.0) == []


def test_udp_reply_sizes_are_random_between_1_and_512() -> None:
    svc = ChargenDatagram(rng=random.Random(1234))
    sizes = {len(svc.handle(b"", 0.0)[0]) for _ in range(2000)}
    assert min(sizes) >= 1
    assert max(sizes) <= MAX_UDP_REPLY
    assert len(sizes) > 300  # not a fixed size (xinetd: always 1024, BSD: always 74)


def test_udp_reply_fits_the_budget_and_says_so() -> None:
    svc = ChargenDatagram(reply_size=512)
    assert svc.handle_within(b"x" * 10, 0.0, 10) == ([pattern(0, 10)], True)
    assert svc.handle_within(b"x" * 600, 0.0, 600) == ([pattern(0, 512)], False)
    assert svc.handle_within(b"", 0.0, 0) == ([], True)


def test_udp_reply_size_is_validated() -> None:
    with pytest.raises(ValueError, match="0-512"):
        ChargenDatagram(reply_size=513)
