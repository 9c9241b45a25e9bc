"""Clients for the small services and sum: daytime, time, qotd, chargen, discard, sum.

Each speaks TCP (or a Unix socket) and UDP, maps OS errors to our error
classes at this edge, and bounds every wait with a timeout.

Over UDP the request datagram is padded to the size of the reply we expect
(``request_size``): the services ignore what a request holds, and a server
with an amplification budget (ours, by default, for sources that are not
loopback) then has room to answer in full. ``request_size=0`` sends the empty
datagram RFC 868 describes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from socketkit.client.connect import connect_datagram, connect_stream, describe, no_udp_service
from socketkit.display import escape_payload
from socketkit.endpoints import Endpoint
from socketkit.errors import (
    ConnectionLost,
    OutputClosed,
    RemoteProtocolError,
    TimedOut,
    UsageError,
    translate_os_error,
)
from socketkit.protocols.timeproto import decode_time

__all__ = [
    "DEFAULT_REQUEST_SIZE",
    "ChargenResult",
    "DiscardResult",
    "ServiceReply",
    "SumSession",
    "TimeResult",
    "chargen",
    "discard",
    "fetch",
    "query_time",
    "sum_lines",
    "sum_numbers",
]

T = TypeVar("T")

log = logging.getLogger("socketkit.client")

MAX_DATAGRAM = 65507
MAX_REPLY = 64 * 1024
"""The most we read from a service that should send one short reply (daytime, qotd)."""
DEFAULT_REQUEST_SIZE = {"daytime": 64, "time": 4, "qotd": 512, "chargen": 512}
"""UDP request sizes that leave room for the whole reply under a 1x budget."""
READ_SIZE = 65536


@dataclass(frozen=True)
class ServiceReply:
    """What a one-reply service (daytime, qotd) sent."""

    data: bytes
    connection: str
    seconds: float


@dataclass(frozen=True)
class TimeResult:
    raw: bytes
    """The 4 bytes as received."""
    seconds_since_1900: int
    server_time: int
    """Unix seconds, in the 2**32-second era closest to our clock."""
    local_time: float
    """Our clock halfway through the exchange."""
    connection: str
    round_trip: float

    @property
    def offset(self) -> float:
        """Server minus local clock, in seconds (RFC 868 counts whole seconds: +-1 s)."""
        return self.server_time - self.local_time


@dataclass(frozen=True)
class ChargenResult:
    bytes_received: int
    lines: int
    connection: str
    seconds: float


@dataclass(frozen=True)
class DiscardResult:
    bytes_sent: int
    datagrams: int
    """UDP: datagrams sent (0 over TCP)."""
    connection: str
    seconds: float
    confirmed: bool
    """TCP/Unix: the server read everything and closed; UDP cannot tell."""

    @property
    def throughput(self) -> float:
        """Bytes per second."""
        return self.bytes_sent / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SumSession:
    requests: int
    replies: list[str]
    connection: str


# -- the edges: one stream read, one datagram exchange -----------------------------


def _where(endpoint: Endpoint) -> str:
    return str(endpoint)


def _no_reply(endpoint: Endpoint, timeout: float, udp: bool) -> TimedOut:
    more = (
        " - UDP reports no error when nobody listens or the server chose not to answer "
        "(is it running? is our source refused by its guards?)"
        if udp
        else ""
    )
    return TimedOut(f"no reply from {endpoint} within {timeout:g} s{more}")


async def _read_until_close(endpoint: Endpoint, timeout: float, limit: int) -> ServiceReply:
    """Connect, read until the server closes (at most ``limit`` bytes), close."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    sock = await connect_stream(endpoint, timeout=timeout)
    connection = describe(sock)
    data = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while len(data) <= limit:
                chunk = await loop.sock_recv(sock, READ_SIZE)
                if not chunk:
                    break
                log.info("recv returned %d bytes: %s", len(chunk), escape_payload(chunk))
                data += chunk
            else:
                raise RemoteProtocolError(
                    f"{endpoint} sent more than {limit} bytes without closing - "
                    "is this the right service?"
                )
    except TimeoutError:
        raise _no_reply(endpoint, timeout, udp=False) from None
    except OSError as exc:
        raise translate_os_error(exc, action="read from", where=_where(endpoint)) from exc
    finally:
        sock.close()
    return ServiceReply(bytes(data), connection, time.perf_counter() - started)


async def _exchange_datagram(endpoint: Endpoint, request: bytes, timeout: float) -> ServiceReply:
    """Send one datagram, return the first reply datagram."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    sock = await connect_datagram(endpoint, timeout=timeout)
    try:
        connection = describe(sock)
        log.info("send(%d bytes) as one datagram: %s", len(request), escape_payload(request))
        async with asyncio.timeout(timeout):
            await _send_datagram(sock, request)
            data = await loop.sock_recv(sock, MAX_DATAGRAM + 1)
        log.info("recv returned a datagram of %d bytes: %s", len(data), escape_payload(data))
    except TimeoutError:
        raise _no_reply(endpoint, timeout, udp=True) from None
    except ConnectionRefusedError as exc:
        raise no_udp_service(endpoint) from exc
    except OSError as exc:
        raise translate_os_error(exc, action="exchange with", where=_where(endpoint)) from exc
    finally:
        sock.close()
    return ServiceReply(data, connection, time.perf_counter() - started)


async def _send_datagram(sock: socket.socket, data: bytes) -> None:
    """One datagram, even an empty one (a loop's ``sock_sendall`` may skip empty data)."""
    try:
        sock.send(data)
    except BlockingIOError:
        await asyncio.get_running_loop().sock_sendall(sock, data)


def _padding(size: int) -> bytes:
    if not 0 <= size <= MAX_DATAGRAM:
        raise UsageError(f"a UDP request holds 0 to {MAX_DATAGRAM} bytes, not {size}")
    return b"\0" * size


# -- daytime, qotd ---------------------------------------------------------------


async def fetch(
    service: str,
    endpoint: Endpoint,
    *,
    udp: bool = False,
    timeout: float = 10.0,
    request_size: int | None = None,
) -> ServiceReply:
    """The one reply of daytime or qotd (or any service that sends and closes)."""
    if udp:
        size = DEFAULT_REQUEST_SIZE.get(service, 0) if request_size is None else request_size
        return await _exchange_datagram(endpoint, _padding(size), timeout)
    return await _read_until_close(endpoint, timeout, MAX_REPLY)


# -- time ------------------------------------------------------------------------


async def query_time(
    endpoint: Endpoint,
    *,
    udp: bool = False,
    timeout: float = 10.0,
    request_size: int = DEFAULT_REQUEST_SIZE["time"],
    clock: Callable[[], float] = time.time,
) -> TimeResult:
    """Ask an RFC 868 server for the time; decode it in the era nearest our clock."""
    before = clock()
    if udp:
        reply = await _exchange_datagram(endpoint, _padding(request_size), timeout)
    else:
        reply = await _read_until_close(endpoint, timeout, 64)
    after = clock()
    if len(reply.data) != 4:
        raise RemoteProtocolError(
            f"{endpoint} sent {len(reply.data)} bytes, not the 4 of an RFC 868 time "
            f"({escape_payload(reply.data)}) - is this a time server?"
        )
    local = (before + after) / 2
    return TimeResult(
        raw=reply.data,
        seconds_since_1900=int.from_bytes(reply.data, "big"),
        server_time=decode_time(reply.data, near=local),
        local_time=local,
        connection=reply.connection,
        round_trip=after - before,
    )


# -- chargen ---------------------------------------------------------------------


def _cut(data: bytes, lines_left: int | None, bytes_left: int | None) -> bytes:
    """The part of ``data`` within what is still wanted."""
    if bytes_left is not None:
        data = data[:bytes_left]
    if lines_left is not None:
        end = -1
        for _ in range(lines_left):
            end = data.find(b"\n", end + 1)
            if end < 0:
                break
        else:
            data = data[: end + 1]
    return data


async def chargen(
    endpoint: Endpoint,
    sink: Callable[[bytes], object],
    *,
    lines: int | None = None,
    nbytes: int | None = None,
    udp: bool = False,
    timeout: float = 10.0,
    request_size: int = DEFAULT_REQUEST_SIZE["chargen"],
) -> ChargenResult:
    """Receive chargen's stream into ``sink`` until ``lines`` lines or ``nbytes`` bytes.

    With neither, TCP runs until the server closes or the caller is cancelled
    (Ctrl-C); ``timeout`` bounds the connect and each wait for data. UDP
    exchanges one datagram (its reply is 0-512 characters).
    """
    for name, value in (("lines", lines), ("bytes", nbytes)):
        if value is not None and value < 1:
            raise UsageError(f"--{name} takes a number >= 1")
    # A closed stdout (| head) must not pass for a lost connection below.
    sink = _guarded(sink)
    started = time.perf_counter()
    if udp:
        reply = await _exchange_datagram(endpoint, _padding(request_size), timeout)
        data = _cut(reply.data, lines, nbytes)
        sink(data)
        return ChargenResult(len(data), data.count(b"\n"), reply.connection, reply.seconds)
    loop = asyncio.get_running_loop()
    sock = await connect_stream(endpoint, timeout=timeout)
    connection = describe(sock)
    received = seen_lines = 0
    try:
        while True:
            lines_left = None if lines is None else lines - seen_lines
            bytes_left = None if nbytes is None else nbytes - received
            if lines_left == 0 or bytes_left == 0:
                break
            try:
                async with asyncio.timeout(timeout):
                    chunk = await loop.sock_recv(sock, READ_SIZE)
            except TimeoutError:
                raise TimedOut(f"{endpoint} sent nothing for {timeout:g} s") from None
            if not chunk:
                log.info("%s closed the connection", endpoint)
                break
            part = _cut(chunk, lines_left, bytes_left)
            received += len(part)
            seen_lines += part.count(b"\n")
            sink(part)
    except OSError as exc:
        raise translate_os_error(exc, action="read from", where=_where(endpoint)) from exc
    finally:
        # Closing with unread data sends RST: the "rude abort" RFC 864 says to expect.
        log.info("close() after %d bytes", received)
        sock.close()
    return ChargenResult(received, seen_lines, connection, time.perf_counter() - started)


# -- discard ---------------------------------------------------------------------


async def repeat_bytes(total: int, chunk: int = READ_SIZE) -> AsyncIterator[bytes]:
    """``total`` bytes of printable filler, in chunks (for ``discard --bytes N``)."""
    block = (bytes(range(32, 127)) * (chunk // 95 + 1))[:chunk]
    left = total
    while left > 0:
        piece = block[: min(left, chunk)]
        left -= len(piece)
        yield piece


async def discard(
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    *,
    udp: bool = False,
    timeout: float = 10.0,
    datagram_size: int = 1400,
) -> DiscardResult:
    """Send everything from ``source`` to a discard server and time it.

    TCP/Unix: after the last byte we half-close and wait (at most ``timeout``)
    for the server to close, so the time covers the server reading it all.
    Each send must make progress within ``timeout`` (a server that stops
    reading would otherwise hold us forever), and a server that sends
    anything back is not a discard server (an echo or daytime server would
    otherwise pass for one). UDP: each datagram holds at most
    ``datagram_size`` bytes; nothing confirms that any arrived.
    """
    if not 1 <= datagram_size <= MAX_DATAGRAM:
        raise UsageError(f"--datagram-size takes 1 to {MAX_DATAGRAM} bytes")
    where = _where(endpoint)
    sock = await (
        connect_datagram(endpoint, timeout=timeout)
        if udp
        else connect_stream(endpoint, timeout=timeout)
    )
    connection = describe(sock)
    started = time.perf_counter()
    try:
        if udp:
            sent, datagrams = await _discard_udp(sock, source, datagram_size)
        else:
            sent = await _discard_stream(sock, endpoint, source, timeout)
            datagrams = 0
    except ConnectionRefusedError as exc:
        raise no_udp_service(endpoint) from exc
    except OSError as exc:
        raise translate_os_error(exc, action="send to", where=where) from exc
    finally:
        sock.close()
    return DiscardResult(sent, datagrams, connection, time.perf_counter() - started, not udp)


async def _discard_udp(
    sock: socket.socket, source: AsyncIterator[bytes], datagram_size: int
) -> tuple[int, int]:
    sent = datagrams = 0
    async for chunk in source:
        for start in range(0, len(chunk), datagram_size):
            piece = chunk[start : start + datagram_size]
            await _send_datagram(sock, piece)
            sent += len(piece)
            datagrams += 1
    return sent, datagrams


async def _discard_stream(
    sock: socket.socket, endpoint: Endpoint, source: AsyncIterator[bytes], timeout: float
) -> int:
    """Send it all while watching for bytes coming back; return the count once confirmed.

    Returns only when the server has closed after our FIN without sending a
    byte: that, and nothing else, is "the server read them all".
    """
    loop = asyncio.get_running_loop()
    sent = 0

    async def outbound() -> None:
        nonlocal sent
        async for chunk in source:
            try:
                async with asyncio.timeout(timeout):
                    await loop.sock_sendall(sock, chunk)
            except TimeoutError:
                raise TimedOut(
                    f"{endpoint} took none of our next {len(chunk)} bytes for {timeout:g} s "
                    f"after {sent} bytes - the server stopped reading "
                    "(is it a discard server? an echo server stops when we do not read)"
                ) from None
            sent += len(chunk)

    async def inbound() -> None:
        data = await loop.sock_recv(sock, READ_SIZE)
        if data:
            log.info("recv returned %d bytes: %s", len(data), escape_payload(data))
            raise RemoteProtocolError(
                f"the server at {endpoint} sent data back ({escape_payload(data, limit=40)}) - "
                "a discard server never sends anything; is this the right service?"
            )
        log.info("%s closed the connection", endpoint)

    out_task = loop.create_task(outbound())
    in_task = loop.create_task(inbound())
    try:
        await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
        if in_task.done():
            in_task.result()  # bytes came back: RemoteProtocolError
            raise ConnectionLost(
                f"{endpoint} closed the connection before we finished sending (after {sent} "
                "bytes) - it may not have read them all"
            )
        out_task.result()
        log.info("sent %d bytes; shutdown(SHUT_WR) and wait for the server to close", sent)
        sock.shutdown(socket.SHUT_WR)
        try:
            async with asyncio.timeout(timeout):
                await in_task
        except TimeoutError:
            raise TimedOut(
                f"{endpoint} did not close within {timeout:g} s after our last byte"
            ) from None
    finally:
        for task in (out_task, in_task):
            task.cancel()
        await asyncio.gather(out_task, in_task, return_exceptions=True)
    return sent


# -- sum -------------------------------------------------------------------------


_SUM_REPLY = re.compile(rb"-?[0-9]+(\.[0-9]+)?|ERR .+", re.DOTALL)
"""What a sum server may answer: a plain decimal number, or ``ERR <reason>``."""


def _reply_text(data: bytes, endpoint: Endpoint) -> str:
    """One reply line as text, or RemoteProtocolError when it is not a sum reply."""
    line = data.removesuffix(b"\n").removesuffix(b"\r")
    if not _SUM_REPLY.fullmatch(line):
        raise RemoteProtocolError(
            f"the server at {endpoint} did not answer like a sum server: "
            f"{escape_payload(line)} - is this the right service?"
        )
    return line.decode("utf-8", errors="backslashreplace")


def _guarded(write: Callable[[T], object]) -> Callable[[T], None]:
    """``write`` (a sink or ``on_reply``) with a closed stdout as OutputClosed.

    Why: sinks run inside code that translates OSError from sockets; a
    BrokenPipeError from *writing our output* must not read as "connection lost".
    """

    def call(item: T) -> None:
        try:
            write(item)
        except BrokenPipeError:
            raise OutputClosed("output closed") from None

    return call


def _check_number(text: str) -> None:
    """A number for ``sum A B`` must be one token: ``2 $'3\\n5'`` would send two requests."""
    if not text or any(c.isspace() for c in text):
        raise UsageError(
            f"bad number {escape_payload(text.encode('utf-8', 'surrogateescape'))}: "
            "each number is one word, without spaces or line breaks"
        )


async def sum_numbers(
    a: str, b: str, endpoint: Endpoint, *, udp: bool = False, timeout: float = 10.0
) -> str:
    """The server's reply line (no LF) for ``A B``: the sum, or ``ERR ...``."""
    _check_number(a)
    _check_number(b)
    request = f"{a} {b}\n".encode("utf-8", "surrogateescape")
    replies: list[str] = []

    async def one() -> AsyncIterator[bytes]:
        yield request

    session = await sum_lines(endpoint, one(), replies.append, udp=udp, timeout=timeout)
    if not session.replies:
        raise ConnectionLost(f"{endpoint} closed the connection without answering")
    return session.replies[0]


async def _lines(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Request lines (with their LF) from chunks; a last line without LF gets one."""
    pending = b""
    async for chunk in source:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending + b"\n"


async def sum_lines(
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    on_reply: Callable[[str], object],
    *,
    udp: bool = False,
    timeout: float = 10.0,
) -> SumSession:
    """Send request lines from ``source``; call ``on_reply`` with each reply line as it comes.

    TCP/Unix: requests and replies flow at once (pipelining); after the last
    request we half-close and read until the server closes (at most
    ``timeout`` seconds more). UDP: one datagram per line, each reply awaited.
    A reply that is neither a plain number nor ``ERR <reason>`` raises
    RemoteProtocolError; a connection that ends with requests unanswered
    raises ConnectionLost.
    """
    on_reply = _guarded(on_reply)
    if udp:
        return await _sum_udp(endpoint, source, on_reply, timeout)
    loop = asyncio.get_running_loop()
    where = _where(endpoint)
    sock = await connect_stream(endpoint, timeout=timeout)
    connection = describe(sock)
    replies: list[str] = []
    requests = 0

    async def outbound() -> None:
        nonlocal requests
        async for line in _lines(source):
            try:
                # A server that stops reading (and answering) must not hang us.
                async with asyncio.timeout(timeout):
                    await loop.sock_sendall(sock, line)
            except TimeoutError:
                raise TimedOut(
                    f"{where} took none of request {requests + 1} for {timeout:g} s - "
                    "the server stopped reading (is it stuck? --timeout sets the wait)"
                ) from None
            requests += 1
        log.info("sent %d request line(s); shutdown(SHUT_WR)", requests)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    async def inbound() -> None:
        pending = b""
        while True:
            data = await loop.sock_recv(sock, READ_SIZE)
            if not data:
                if pending:
                    replies.append(_reply_text(pending, endpoint))
                    on_reply(replies[-1])
                return
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                replies.append(_reply_text(line, endpoint))
                on_reply(replies[-1])

    out_task = loop.create_task(outbound())
    in_task = loop.create_task(inbound())
    try:
        done, _ = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        if in_task not in done:
            try:
                async with asyncio.timeout(timeout):
                    await in_task
            except TimeoutError:
                raise TimedOut(
                    f"{endpoint} did not answer every line within {timeout:g} s "
                    f"({len(replies)} of {requests} replies)"
                ) from None
    except OSError as exc:
        raise translate_os_error(exc, action="talk to", where=where) from exc
    finally:
        for task in (out_task, in_task):
            task.cancel()
        await asyncio.gather(out_task, in_task, return_exceptions=True)
        sock.close()
    if len(replies) < requests:
        unanswered = requests - len(replies)
        raise ConnectionLost(
            f"{endpoint} closed the connection with {unanswered} of {requests} "
            f"request{'s' if requests != 1 else ''} unanswered"
        )
    return SumSession(requests, replies, connection)


async def _sum_udp(
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    on_reply: Callable[[str], object],
    timeout: float,
) -> SumSession:
    replies: list[str] = []
    connection = ""
    requests = 0
    async for line in _lines(source):
        requests += 1
        reply = await _exchange_datagram(endpoint, line, timeout)
        connection = reply.connection
        replies.append(_reply_text(reply.data, endpoint))
        on_reply(replies[-1])
    return SumSession(requests, replies, connection)
