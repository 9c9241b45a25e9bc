"""Discard (863), daytime (867) and time (868) as pure bytes in, bytes out, with a fixed ``now``."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketkit.protocols.daytime import DaytimeDatagram, DaytimeStream, daytime_line
from socketkit.protocols.discard import DiscardDatagram, DiscardStream
from socketkit.protocols.timeproto import (
    EPOCH_OFFSET,
    TimeDatagram,
    TimeStream,
    decode_time,
    encode_time,
)
from tests.unit.protocols.helpers import drain

# -- discard ----------------------------------------------------------------


def test_discard_is_silent_and_closes_after_the_client_does() -> None:
    proto = DiscardStream(now=1.0)
    for chunk in (b"hello", bytes(range(256)), b"x" * 100_000):
        proto.receive_data(chunk)
        assert proto.data_to_send() == b""
        assert not proto.close_expected()
    proto.receive_eof()
    assert proto.data_to_send() == b""
    assert proto.close_expected()


@given(st.binary(max_size=2000))
def test_discard_datagram_never_answers(data: bytes) -> None:
    assert DiscardDatagram().handle(data, 0.0) == []


# -- time (RFC 868) ---------------------------------------------------------

# RFC 868's own check values: seconds since 1900 for these dates.
RFC868_EXAMPLES = [
    (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), 2_208_988_800),
    (dt.datetime(1976, 1, 1, tzinfo=dt.UTC), 2_398_291_200),
    (dt.datetime(1980, 1, 1, tzinfo=dt.UTC), 2_524_521_600),
    (dt.datetime(1983, 5, 1, tzinfo=dt.UTC), 2_629_584_000),
]
WRAP = dt.datetime(2036, 2, 7, 6, 28, 16, tzinfo=dt.UTC)


@pytest.mark.parametrize(("when", "seconds"), RFC868_EXAMPLES)
def test_time_matches_the_rfc_check_values(when: dt.datetime, seconds: int) -> None:
    assert encode_time(when.timestamp()) == struct.pack("!I", seconds)


def test_time_is_four_bytes_big_endian_unsigned() -> None:
    now = 1_700_000_000.75  # 2023-11-14T22:13:20.75Z
    data = encode_time(now)
    assert len(data) == 4
    assert int.from_bytes(data, "big") == 1_700_000_000 + EPOCH_OFFSET
    assert data == bytes.fromhex("e8fe6f80")  # 3,908,988,800 written out by hand
    # Above 2**31: a signed encoding (Twisted's "!i") could not even pack it.
    assert int.from_bytes(data, "big") > 2**31


def test_time_counts_whole_seconds_rounding_down() -> None:
    assert encode_time(0.999) == encode_time(0.0)
    assert encode_time(-0.5) == struct.pack("!I", EPOCH_OFFSET - 1)


def test_time_wraps_in_2036() -> None:
    wrap = WRAP.timestamp()
    assert encode_time(wrap - 1) == b"\xff\xff\xff\xff"
    assert encode_time(wrap) == b"\x00\x00\x00\x00"
    assert encode_time(wrap + 1) == b"\x00\x00\x00\x01"


@pytest.mark.parametrize(
    "now",
    [0.0, 1_700_000_000.0, WRAP.timestamp() - 1, WRAP.timestamp(), WRAP.timestamp() + 86_400 * 365],
)
def test_time_decodes_in_the_era_nearest_the_local_clock(now: float) -> None:
    data = encode_time(now)
    for skew in (-3 * 86_400, 0.0, 3 * 86_400):
        assert decode_time(data, near=now + skew) == int(now)


def test_time_decode_refuses_a_wrong_length() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        decode_time(b"\x00\x01", near=0.0)


def test_time_stream_sends_four_bytes_then_closes_ignoring_input() -> None:
    proto = TimeStream(now=0.0)
    assert not proto.close_expected()
    proto.receive_data(b"anything at all")
    assert drain(proto, 1) == struct.pack("!I", EPOCH_OFFSET)
    assert proto.close_expected()


@given(st.binary(max_size=100))
def test_time_datagram_answers_any_request_with_four_bytes(data: bytes) -> None:
    assert TimeDatagram().handle(data, 0.0) == [struct.pack("!I", EPOCH_OFFSET)]


# -- daytime (RFC 867) ------------------------------------------------------


def test_daytime_uses_the_rfc_example_syntax_in_utc() -> None:
    # RFC 867's example is "Tuesday, February 22, 1982 17:37:43-PST".
    when = dt.datetime(1982, 2, 22, 17, 37, 43, tzinfo=dt.UTC).timestamp()
    assert daytime_line(when) == b"Monday, February 22, 1982 17:37:43-UTC\r\n"
    assert daytime_line(0.0) == b"Thursday, January 1, 1970 00:00:00-UTC\r\n"


@given(st.integers(min_value=-2_208_988_800, max_value=253_402_300_799))
def test_daytime_agrees_with_the_calendar(seconds: int) -> None:
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    expected = f"{when:%A, %B} {when.day}, {when.year} {when:%H:%M:%S}-UTC\r\n"
    line = daytime_line(seconds + 0.9)
    assert line == expected.encode()
    # One line of printing ASCII, as RFC 867 recommends.
    assert line.count(b"\n") == 1
    assert all(32 <= b < 127 for b in line[:-2])


def test_daytime_stream_sends_one_line_then_closes() -> None:
    proto = DaytimeStream(now=0.0)
    proto.receive_data(b"ignored")
    assert drain(proto, 7) == daytime_line(0.0)
    assert proto.close_expected()
    assert DaytimeDatagram().handle(b"", 0.0) == [daytime_line(0.0)]
