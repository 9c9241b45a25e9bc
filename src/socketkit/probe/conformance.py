"""Conformance checks: what RFC 862-868 (and our sum specification) ask of a server.

Each function takes a target and the options and returns an ``Outcome``;
which services and transports it applies to is written once, in
``checks.CHECKS``. The expected bytes come from socketkit's sans-I/O
protocol code (the chargen ring, the RFC 868 epoch, the sum rules), so the
probe and the server cannot drift apart.
"""

from __future__ import annotations

import random
import socket
import time

from socketkit.probe.model import Outcome, ProbeOptions, Target, Verdict
from socketkit.probe.wire import ask, datagram, exchange, recv_until, send, show, stream
from socketkit.protocols.chargen import LINE_LENGTH, MAX_UDP_REPLY, RING
from socketkit.protocols.sum import answer_line
from socketkit.protocols.timeproto import decode_time

__all__ = [
    "ECHO_CHUNKS",
    "chargen_ring",
    "chargen_stream",
    "chargen_udp",
    "check_chargen_lines",
    "daytime_stream",
    "daytime_udp",
    "discard_stream",
    "discard_udp",
    "echo_half_close",
    "echo_order",
    "echo_stays_open",
    "echo_udp",
    "empty_datagram",
    "one_shot_closes",
    "qotd_stream",
    "qotd_udp",
    "sum_errors",
    "sum_rules",
    "sum_udp",
    "time_stream",
    "time_udp",
    "validate_line",
    "validate_quote",
    "validate_time",
]

ECHO_CHUNKS = (1, 2, 3, 7, 100, 1460, 4096, 16384, 65536)
"""Write sizes for the echo order check: tiny to larger than a socket buffer."""
SUM_CASES = (b"2 3", b"0.1 0.2", b"99999999999999999999 1", b"1e3 1", b"1.50 1.50", b"-12 +0.5E-2")
SUM_ERRORS = (b"x 1", b"1", b"", b"1 2 3")
PADDED = b"probe " * 10 + b"\r\n"
"""A 62-byte request: servers with a reply budget (1x) can still answer in full."""
SENT_PADDED = "62 B text"
_PRINTABLE = frozenset(range(32, 127))
_TEXT = _PRINTABLE | {9, 10, 13}


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


# -- echo, RFC 862 ---------------------------------------------------------------------------


async def echo_order(target: Target, options: ProbeOptions) -> Outcome:
    data = _payload(sum(ECHO_CHUNKS), 862)
    chunks, at = [], 0
    for size in ECHO_CHUNKS:
        chunks.append(data[at : at + size])
        at += size
    async with stream(target, options) as sock:
        got = await exchange(sock, chunks, expect=len(data), timeout=options.timeout)
    sent = f"{len(data)} B in {len(chunks)} writes of 1-64K"
    if got.data == data:
        return Outcome(Verdict.PASS, sent, f"{len(got.data)} B, identical")
    at = _first_difference(got.data, data)
    why = "closed" if got.eof else "stopped"
    return Outcome(
        Verdict.FAIL,
        sent,
        show(got.data[at:]),
        f"the echo differs from byte {at} on ({len(got.data)} of {len(data)} B back; "
        f"the server {why})",
    )


async def echo_stays_open(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        replies = []
        for word in (b"one\r\n", b"two\r\n"):
            if not await send(sock, word, options.timeout):
                break
            got = await recv_until(sock, limit=len(word), timeout=options.timeout)
            replies.append(got.data)
            if got.eof:
                break
    if replies == [b"one\r\n", b"two\r\n"]:
        return Outcome(Verdict.PASS, '"one\\r\\n", then "two\\r\\n"', "both echoed")
    return Outcome(
        Verdict.FAIL,
        '"one\\r\\n", then "two\\r\\n"',
        " | ".join(show(r) for r in replies) or "nothing",
        "the connection must stay open while the client keeps writing (RFC 862)",
    )


async def echo_half_close(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        await send(sock, b"tail\r\n", options.timeout)
        sock.shutdown(socket.SHUT_WR)
        got = await recv_until(sock, limit=64, timeout=options.timeout)
    sent = '"tail\\r\\n", then FIN'
    if got.data != b"tail\r\n":
        return Outcome(
            Verdict.FAIL, sent, show(got.data), "bytes sent before our FIN were not all echoed"
        )
    if not got.eof:
        return Outcome(
            Verdict.WARN,
            sent,
            "the echo, but no close",
            f"still open {options.timeout:g} s after our FIN: a client that waits for the "
            "close hangs",
        )
    return Outcome(Verdict.PASS, sent, "the echo, then close")


async def echo_udp(target: Target, options: ProbeOptions) -> Outcome:
    data = _payload(512, 768)
    with await datagram(target, options) as sock:
        replies = await ask(sock, data, options)
    sent = "512 random bytes"
    if replies == [data]:
        return Outcome(Verdict.PASS, sent, "one identical datagram")
    return Outcome(
        Verdict.FAIL,
        sent,
        " | ".join(show(r) for r in replies) or "nothing",
        "RFC 862: a datagram is sent back with the data received",
    )


# -- discard, RFC 863 ------------------------------------------------------------------------


async def discard_stream(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        await send(sock, _payload(4096, 863), options.timeout)
        sock.shutdown(socket.SHUT_WR)
        got = await recv_until(sock, limit=4096, timeout=options.timeout)
    sent = "4096 random bytes, then FIN"
    if got.data:
        return Outcome(Verdict.FAIL, sent, show(got.data), "RFC 863: no response is sent")
    if not got.eof:
        return Outcome(
            Verdict.WARN,
            sent,
            "nothing, no close",
            f"still open {options.timeout:g} s after our FIN: it holds a connection nobody uses",
        )
    return Outcome(Verdict.PASS, sent, "nothing, then close")


async def discard_udp(target: Target, options: ProbeOptions) -> Outcome:
    with await datagram(target, options) as sock:
        replies = await ask(sock, b"discard me\r\n", options, expect_reply=False)
    sent = '"discard me\\r\\n"'
    if not replies:
        return Outcome(Verdict.PASS, sent, f"nothing in {options.quiet_wait:g} s")
    return Outcome(
        Verdict.FAIL,
        sent,
        " | ".join(show(r) for r in replies),
        "RFC 863: no response is sent",
    )


# -- daytime, RFC 867 ------------------------------------------------------------------------


def validate_line(data: bytes) -> str | None:
    """None when ``data`` is one line of ASCII text; else why not."""
    if not data.strip():
        return "no date line"
    if any(b not in _TEXT for b in data):
        return "bytes outside ASCII printing characters, space, CR and LF"
    body = data.rstrip(b"\r\n")
    if b"\n" in body or b"\r" in body:
        return "more than one line"
    return None


async def daytime_stream(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        got = await recv_until(sock, limit=1024, timeout=options.timeout)
    return _judge_daytime("connect", got.data)


async def daytime_udp(target: Target, options: ProbeOptions) -> Outcome:
    with await datagram(target, options) as sock:
        replies = await ask(sock, PADDED, options)
    if len(replies) != 1:
        return Outcome(
            Verdict.FAIL,
            SENT_PADDED,
            f"{len(replies)} datagrams",
            "RFC 867: one datagram answers each datagram",
        )
    return _judge_daytime(SENT_PADDED, replies[0])


def _judge_daytime(sent: str, data: bytes) -> Outcome:
    why = validate_line(data)
    if why is not None:
        return Outcome(Verdict.FAIL, sent, show(data), f"RFC 867 asks for a date line: {why}")
    if not data.endswith(b"\n"):
        return Outcome(Verdict.WARN, sent, show(data), "no line end: line-reading clients may wait")
    return Outcome(Verdict.PASS, sent, show(data, 40))


# -- qotd, RFC 865 ---------------------------------------------------------------------------


def validate_quote(data: bytes) -> tuple[Verdict, str]:
    """RFC 865: under 512 characters (a must); ASCII printing, space, CR, LF (a should)."""
    if not data:
        return Verdict.FAIL, "no quote"
    if len(data) >= 512:
        return Verdict.FAIL, f"{len(data)} characters: RFC 865 limits a quote to 511"
    if any(b not in _TEXT for b in data):
        return Verdict.WARN, "characters outside ASCII printing, space, CR and LF"
    return Verdict.PASS, ""


async def qotd_stream(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        got = await recv_until(sock, limit=4096, timeout=options.timeout)
    verdict, why = validate_quote(got.data)
    return Outcome(verdict, "connect", show(got.data), why)


async def qotd_udp(target: Target, options: ProbeOptions) -> Outcome:
    with await datagram(target, options) as sock:
        replies = await ask(sock, PADDED, options)
    if len(replies) != 1:
        return Outcome(Verdict.FAIL, SENT_PADDED, f"{len(replies)} datagrams", "one reply expected")
    verdict, why = validate_quote(replies[0])
    return Outcome(verdict, SENT_PADDED, show(replies[0]), why)


# -- chargen, RFC 864 ------------------------------------------------------------------------


def check_chargen_lines(data: bytes, *, partial_tail: bool) -> str | None:
    """None when ``data`` is rotating lines of 72 printable characters and CR LF.

    The ring is not fixed (the RFC "recommends" all 95 printing characters;
    xinetd uses 93): each line must be the previous one shifted by one.
    ``partial_tail`` allows a cut last line (a UDP reply, a read limit).
    """
    lines = data.split(b"\r\n")
    tail = lines.pop()
    if partial_tail and len(tail) == LINE_LENGTH + 1 and tail.endswith(b"\r"):
        lines.append(tail[:-1])  # cut between CR and LF
        tail = b""
    if tail and not partial_tail:
        return f"{len(tail)} bytes after the last CR LF"
    if partial_tail and any(b not in _PRINTABLE for b in tail):
        return "a character outside the printing ASCII characters"
    previous = None
    for number, line in enumerate(lines, 1):
        if len(line) != LINE_LENGTH:
            return f"line {number} has {len(line)} characters, not {LINE_LENGTH}"
        if any(b not in _PRINTABLE for b in line):
            return f"line {number} holds a character outside the printing ASCII characters"
        if previous is not None and line[:-1] != previous[1:]:
            return f"line {number} does not continue the rotating pattern of line {number - 1}"
        previous = line
    known = min(len(tail), LINE_LENGTH - 1)  # the next line's last character is unknown
    if previous is not None and tail[:known] != previous[1 : 1 + known]:
        return "the last, cut line does not continue the pattern"
    return None


_CHARGEN_READ = 74 * 200


async def chargen_stream(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        got = await recv_until(sock, limit=_CHARGEN_READ, timeout=options.timeout)
    received = f"{len(got.data)} B {show(got.data[:74], 20)}"
    if len(got.data) < _CHARGEN_READ:
        return Outcome(
            Verdict.FAIL,
            "connect",
            received,
            "the stream stopped: RFC 864 sends until the client closes",
        )
    whole = got.data[: got.data.rfind(b"\r\n") + 2]  # the read limit cuts the last line
    why = check_chargen_lines(whole, partial_tail=False)
    if why is not None:
        return Outcome(Verdict.FAIL, "connect", received, why)
    return Outcome(Verdict.PASS, "connect", f"{len(whole) // 74} rotating lines of 72 + CRLF")


async def chargen_ring(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        got = await recv_until(sock, limit=74 * 100, timeout=options.timeout)
    seen = set(got.data) - {13, 10}
    missing = bytes(sorted(set(RING) - seen))
    extra = bytes(sorted(seen - set(RING)))
    if not got.data:
        return Outcome(Verdict.FAIL, "connect", "nothing", "no chargen data")
    if missing or extra:
        what = f"leaves out {show(missing)}" if missing else f"adds {show(extra)}"
        return Outcome(
            Verdict.WARN,
            "connect",
            f"a ring of {len(seen)} characters",
            f"the ring {what}; RFC 864 recommends all 95 printing characters",
        )
    return Outcome(Verdict.PASS, "connect", "all 95 printing characters")


async def chargen_udp(target: Target, options: ProbeOptions) -> Outcome:
    with await datagram(target, options) as sock:
        replies = await ask(sock, PADDED, options)
    if len(replies) != 1:
        return Outcome(Verdict.FAIL, SENT_PADDED, f"{len(replies)} datagrams", "one reply expected")
    data = replies[0]
    if len(data) > MAX_UDP_REPLY:
        return Outcome(
            Verdict.FAIL, SENT_PADDED, f"{len(data)} B", "RFC 864: between 0 and 512 characters"
        )
    why = check_chargen_lines(data, partial_tail=True)
    if why is not None:
        return Outcome(Verdict.FAIL, SENT_PADDED, show(data), why)
    return Outcome(Verdict.PASS, SENT_PADDED, f"{len(data)} B of the pattern")


# -- time, RFC 868 ---------------------------------------------------------------------------


def validate_time(data: bytes, now: float, tolerance: float) -> Outcome:
    """4 bytes, seconds since 1900 (2036-aware), near our clock."""
    if len(data) != 4:
        return Outcome(Verdict.FAIL, "", show(data), f"{len(data)} bytes: RFC 868 sends exactly 4")
    offset = decode_time(data, near=now) - now
    shown = f"{data.hex()} (offset {offset:+.1f} s)"
    if abs(offset) > 60:
        return Outcome(
            Verdict.FAIL,
            "",
            shown,
            "not seconds since 1900 UTC near our clock (a 1970 epoch is 2208988800 s off)",
            offset,
        )
    if abs(offset) > tolerance + 1:  # the value is whole seconds: allow one of rounding
        return Outcome(Verdict.WARN, "", shown, "the server's clock is off", offset)
    return Outcome(Verdict.PASS, "", shown, "", offset)


async def time_stream(target: Target, options: ProbeOptions) -> Outcome:
    async with stream(target, options) as sock:
        got = await recv_until(sock, limit=64, timeout=options.timeout)
    out = validate_time(got.data, time.time(), options.clock_tolerance)
    return Outcome(out.verdict, "connect", out.received, out.detail, out.measure)


async def time_udp(target: Target, options: ProbeOptions) -> Outcome:
    with await datagram(target, options) as sock:
        replies = await ask(sock, PADDED, options)
    if len(replies) != 1:
        return Outcome(Verdict.FAIL, SENT_PADDED, f"{len(replies)} datagrams", "one reply expected")
    out = validate_time(replies[0], time.time(), options.clock_tolerance)
    return Outcome(out.verdict, SENT_PADDED, out.received, out.detail, out.measure)


# -- one-shot services: daytime, qotd, time --------------------------------------------------


async def one_shot_closes(target: Target, options: ProbeOptions) -> Outcome:
    """RFC 865/867/868: the server sends its answer and closes; a second request is not one."""
    async with stream(target, options) as sock:
        first = await recv_until(sock, limit=4096, timeout=options.quiet_wait)
        await send(sock, b"again\r\n", options.timeout)
        rest = await recv_until(sock, limit=4096, timeout=options.timeout)
    sent = 'connect, then "again\\r\\n"'
    if not rest.eof:
        return Outcome(
            Verdict.FAIL,
            sent,
            f"{len(first.data)} B, no close",
            f"still open after {options.timeout:g} s: the RFC closes after one answer",
        )
    if rest.data and not first.eof:
        return Outcome(
            Verdict.FAIL, sent, show(rest.data), "answered a second request on one connection"
        )
    return Outcome(Verdict.PASS, sent, f"{len(first.data + rest.data)} B, then close")


async def empty_datagram(target: Target, options: ProbeOptions) -> Outcome:
    """RFC 868's request is an empty datagram; 864/865/867 answer "any" datagram."""
    with await datagram(target, options) as sock:
        replies = await ask(sock, b"", options)
    if replies:
        return Outcome(Verdict.PASS, "an empty datagram", show(replies[0]))
    verdict = Verdict.FAIL if target.service == "time" else Verdict.WARN
    return Outcome(
        verdict,
        "an empty datagram",
        "nothing",
        "RFC 868's request is an empty datagram"
        if target.service == "time"
        else "clients that send empty requests (as RFC 868's do) get no answer",
    )


# -- sum, our specification (DESIGN.md section 4) --------------------------------------------


async def sum_rules(target: Target, options: ProbeOptions) -> Outcome:
    request = b"".join(line + b"\n" for line in SUM_CASES)
    expected = b"".join(answer_line(line).encode() + b"\n" for line in SUM_CASES)
    async with stream(target, options) as sock:
        got = await exchange(sock, [request], expect=len(expected), timeout=options.timeout)
    sent = f"{len(SUM_CASES)} pipelined lines"
    if got.data == expected:
        return Outcome(Verdict.PASS, sent, f"{len(SUM_CASES)} exact sums, in order")
    return Outcome(
        Verdict.FAIL, sent, show(got.data, 48), f"expected {show(expected, 48)} (exact decimal)"
    )


async def sum_errors(target: Target, options: ProbeOptions) -> Outcome:
    lines = (*SUM_ERRORS, b"2 3")
    request = b"".join(line + b"\n" for line in lines)
    expected = b"".join(answer_line(line).encode() + b"\n" for line in lines)
    async with stream(target, options) as sock:
        got = await exchange(sock, [request], expect=len(expected), timeout=options.timeout)
    sent = f"{len(SUM_ERRORS)} bad lines, then 2 3"
    if got.data == expected:
        return Outcome(Verdict.PASS, sent, "ERR lines, then 5: still usable")
    return Outcome(Verdict.FAIL, sent, show(got.data, 48), f"expected {show(expected, 48)}")


async def sum_udp(target: Target, options: ProbeOptions) -> Outcome:
    with await datagram(target, options) as sock:
        replies = await ask(sock, b"0.1 0.2\n", options)
    if replies == [b"0.3\n"]:
        return Outcome(Verdict.PASS, '"0.1 0.2\\n"', '"0.3\\n"')
    return Outcome(
        Verdict.FAIL,
        '"0.1 0.2\\n"',
        " | ".join(show(r) for r in replies) or "nothing",
        'one reply datagram, "0.3\\n" (exact decimal)',
    )
