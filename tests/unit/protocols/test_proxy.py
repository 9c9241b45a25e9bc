"""The PROXY protocol parser: every valid header at every split, every bad input refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketkit.protocols.proxy import (
    PENDING,
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyAccepted,
    ProxyHeaderParser,
    ProxyRejected,
    ProxyResult,
    encode_v1,
    encode_v2,
)

SRC4, DST4 = ("192.0.2.10", 51234), ("198.51.100.7", 7)
SRC6, DST6 = ("2001:db8::1", 40000), ("2001:db8::2", 10007)

VALID: list[tuple[str, bytes, ProxyAccepted]] = [
    ("v1 tcp4", encode_v1(SRC4, DST4), ProxyAccepted(1, "PROXY", "TCP4", SRC4, DST4)),
    ("v1 tcp6", encode_v1(SRC6, DST6), ProxyAccepted(1, "PROXY", "TCP6", SRC6, DST6)),
    ("v1 unknown", encode_v1(), ProxyAccepted(1, "PROXY", "UNKNOWN", None, None)),
    (
        "v1 unknown with addresses",
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        ProxyAccepted(1, "PROXY", "UNKNOWN", None, None),
    ),
    ("v2 tcp4", encode_v2(SRC4, DST4), ProxyAccepted(2, "PROXY", "TCP4", SRC4, DST4)),
    ("v2 tcp6", encode_v2(SRC6, DST6), ProxyAccepted(2, "PROXY", "TCP6", SRC6, DST6)),
    (
        "v2 udp4",
        encode_v2(SRC4, DST4, transport="dgram"),
        ProxyAccepted(2, "PROXY", "UDP4", SRC4, DST4),
    ),
    (
        "v2 unix",
        encode_v2(("/run/a.sock", 0), ("/run/b.sock", 0), unix=True),
        ProxyAccepted(2, "PROXY", "UNIX_STREAM", ("/run/a.sock", 0), ("/run/b.sock", 0)),
    ),
    ("v2 local", encode_v2(command="LOCAL"), ProxyAccepted(2, "LOCAL", "UNKNOWN", None, None)),
    (
        "v2 local with addresses",
        encode_v2(SRC4, DST4, command="LOCAL"),
        ProxyAccepted(2, "LOCAL", "TCP4", None, None),
    ),
    ("v2 proxy unspec", encode_v2(), ProxyAccepted(2, "PROXY", "UNKNOWN", None, None)),
    (
        "v2 tlvs",
        encode_v2(SRC4, DST4, tlvs=[(0x02, b"example.org"), (0x04, b"")]),
        ProxyAccepted(2, "PROXY", "TCP4", SRC4, DST4, ((0x02, b"example.org"), (0x04, b""))),
    ),
]


def _same(result: ProxyResult, expected: ProxyAccepted, rest: bytes, length: int) -> None:
    assert isinstance(result, ProxyAccepted), result
    assert (result.version, result.command, result.family) == (
        expected.version,
        expected.command,
        expected.family,
    )
    assert (result.source, result.destination, result.tlvs) == (
        expected.source,
        expected.destination,
        expected.tlvs,
    )
    assert result.rest == rest
    assert result.header_length == length


@pytest.mark.parametrize(("name", "header", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_header_at_every_split(name: str, header: bytes, expected: ProxyAccepted) -> None:
    payload = b"hello\r\n"
    data = header + payload
    for cut in range(len(data) + 1):
        parser = ProxyHeaderParser()
        first = parser.feed(data[:cut])
        if cut < len(header):
            assert first is PENDING, (cut, first)
        second = parser.feed(data[cut:])
        result = second if first is PENDING else first
        # Bytes after the header: whatever had arrived when it was decided.
        decided_at = cut if cut >= len(header) else len(data)
        _same(result, expected, data[len(header) : decided_at], len(header))
        assert parser.buffered == 0


@pytest.mark.parametrize(("name", "header", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_header_one_byte_at_a_time(name: str, header: bytes, expected: ProxyAccepted) -> None:
    parser = ProxyHeaderParser()
    results = [parser.feed(header[i : i + 1]) for i in range(len(header))]
    assert all(r is PENDING for r in results[:-1])
    _same(results[-1], expected, b"", len(header))


def test_decision_is_sticky_and_keeps_nothing() -> None:
    parser = ProxyHeaderParser()
    first = parser.feed(encode_v1(SRC4, DST4) + b"a")
    assert parser.feed(b"more") is first
    assert parser.result is first
    bad = ProxyHeaderParser()
    rejected = bad.feed(b"GET / HTTP/1.1\r\n")
    assert bad.feed(encode_v1(SRC4, DST4)) is rejected


def _rejected(data: bytes, **kwargs: int) -> str:
    result = ProxyHeaderParser(**kwargs).feed(data)  # type: ignore[arg-type]
    assert isinstance(result, ProxyRejected), result
    return result.reason


V2_TCP4 = encode_v2(SRC4, DST4)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "not a PROXY header"),
        (b"hello", "not a PROXY header"),
        (b"\r\n\r\n\x00\r\nQUIx", "not a PROXY header"),
        (b"PROXY " + b"A" * 200, "v1 line too long"),
        (b"PROXY TCP4 " + b"1" * (V1_MAX_LENGTH - 11), "v1 line too long"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1 line not ended by CRLF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1 malformed"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "v1 malformed"),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "v1 malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "v1 malformed"),
        (b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "bad address"),
        (b"PROXY TCP4 ::1 ::2 1 2\r\n", "bad address"),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "bad address"),
        (b"PROXY TCP6 fe80::1%eth0 ::2 1 2\r\n", "bad address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "bad address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "bad address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "bad address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa1 2\r\n", "v1 not ASCII"),
        (V2_SIGNATURE + b"\x11", "v2 bad version"),
        (V2_SIGNATURE + b"\x22", "v2 bad command"),
        (V2_SIGNATURE + b"\x21\x13", "v2 bad family"),
        (V2_SIGNATURE + b"\x11\x11\x00\x00", "v2 bad version"),
        (V2_SIGNATURE + b"\x22\x11\x00\x00", "v2 bad command"),
        (V2_SIGNATURE + b"\x21\x13\x00\x00", "v2 bad family"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "v2 length exceeds limit"),
        (V2_SIGNATURE + b"\x21\x11\x00\x04" + b"\x00" * 4, "truncated"),
        (V2_SIGNATURE + b"\x21\x21\x00\x0c" + b"\x00" * 12, "truncated"),
        (V2_TCP4[:14] + b"\x00\x0e" + V2_TCP4[16:] + b"\x01\x00", "v2 bad TLV"),
        (V2_TCP4[:14] + b"\x00\x10" + V2_TCP4[16:] + b"\x01\x00\x09\x00", "v2 bad TLV"),
        (
            encode_v2(("/a", 0), ("/b", 0), unix=True).replace(b"/a", b"\xff\xfe"),
            "bad address",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_reason(data: bytes, reason: str) -> None:
    assert _rejected(data) == reason
    # Also one byte at a time: the same decision, never an exception.
    parser = ProxyHeaderParser()
    result: ProxyResult = PENDING
    for i in range(len(data)):
        result = parser.feed(data[i : i + 1])
        if result is not PENDING:
            break
    assert isinstance(result, ProxyRejected)
    assert result.reason == reason


def test_bad_input_is_refused_early() -> None:
    """Garbage is refused at its first byte, an oversized v2 at its length field."""
    assert isinstance(ProxyHeaderParser().feed(b"G"), ProxyRejected)
    parser = ProxyHeaderParser(max_v2_length=64)
    assert parser.feed(V2_SIGNATURE + b"\x21\x11\x00") is PENDING
    assert parser.feed(b"\x41") == ProxyRejected("v2 length exceeds limit")


def test_v2_announcing_more_than_it_sends_stays_pending_within_bound() -> None:
    """The caller's timeout ends it; the parser only holds what was announced."""
    parser = ProxyHeaderParser()
    assert parser.feed(V2_SIGNATURE + b"\x21\x11\x00\x40" + b"\x00" * 12) is PENDING
    assert parser.buffered == 16 + 12


def test_v2_limit_is_a_constructor_argument() -> None:
    header = encode_v2(SRC4, DST4, tlvs=[(0x20, b"x" * 100)])
    assert isinstance(ProxyHeaderParser(max_v2_length=200).feed(header), ProxyAccepted)
    assert _rejected(header, max_v2_length=100) == "v2 length exceeds limit"


def test_versions_can_be_restricted() -> None:
    assert isinstance(ProxyHeaderParser(allow_v1=False).feed(encode_v1(SRC4, DST4)), ProxyRejected)
    assert isinstance(ProxyHeaderParser(allow_v2=False).feed(V2_TCP4), ProxyRejected)
    assert isinstance(ProxyHeaderParser(allow_v1=False).feed(V2_TCP4), ProxyAccepted)


def test_v1_longest_line_is_accepted() -> None:
    src = ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)
    line = encode_v1(src, src)
    assert len(line) == 104  # spec: 104 for the longest TCP6 line; 107 is the bound
    assert isinstance(ProxyHeaderParser().feed(line), ProxyAccepted)


def test_encoders_refuse_mixed_versions() -> None:
    with pytest.raises(ValueError, match="same IP version"):
        encode_v1(SRC4, DST6)
    with pytest.raises(ValueError, match="same IP version"):
        encode_v2(SRC4, DST6)


@settings(max_examples=400, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=20), limit=st.integers(0, 300))
def test_any_bytes_never_raise_and_memory_is_bounded(chunks: list[bytes], limit: int) -> None:
    parser = ProxyHeaderParser(max_v2_length=limit)
    for chunk in chunks:
        result = parser.feed(chunk)
        assert parser.buffered <= max(V1_MAX_LENGTH, 16 + limit) + 64
        if result is PENDING:
            assert parser.buffered < max(V1_MAX_LENGTH, 16 + limit)
        else:
            assert parser.buffered == 0


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from([b"PROXY ", V2_SIGNATURE]), tail=st.binary(max_size=300))
def test_headers_with_random_tails_never_raise(prefix: bytes, tail: bytes) -> None:
    result = ProxyHeaderParser().feed(prefix + tail)
    assert result is PENDING or isinstance(result, ProxyAccepted | ProxyRejected)
