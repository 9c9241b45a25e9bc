"""The lab's echo client: send a message, read until exactly as many bytes came back.

The server may return the bytes in any chunking (the lab's server used
16-byte recv calls), so the client counts bytes, not recv calls. Sending and
receiving run concurrently: a client that sends everything before reading
deadlocks once the message outgrows the socket buffers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from socketkit.client.connect import connect_datagram, connect_stream, describe, no_udp_service
from socketkit.display import escape_payload
from socketkit.endpoints import Endpoint
from socketkit.errors import (
    ConnectionLost,
    TimedOut,
    UsageError,
    translate_os_error,
)

__all__ = ["EchoResult", "echo", "generated_message"]

log = logging.getLogger("socketkit.client")

MAX_UDP_PAYLOAD = 65507
"""The largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP header bytes)."""


_PATTERN = bytes(range(33, 127))
"""The 94 printable ASCII characters, the chargen alphabet (RFC 864)."""


def generated_message(size: int) -> bytes:
    """``size`` printable bytes in chargen's rotating order, newline every 72.

    A generated message must be readable when echoed back to a terminal and
    show its position when something is lost or reordered, so it is the
    RFC 864 rotation (each line starts one character later) rather than
    random bytes.
    """
    if size < 0:
        raise UsageError(f"a message size must be 0 or more bytes, not {size}")
    lines = bytearray()
    start = 0
    while len(lines) < size:
        line = (_PATTERN[start:] + _PATTERN[:start])[:72] + b"\n"
        lines.extend(line)
        start = (start + 1) % len(_PATTERN)
    return bytes(lines[:size])


@dataclass(frozen=True)
class EchoResult:
    sent: bytes
    received: bytes
    chunks: list[int] = field(default_factory=list)
    """Size of each recv() that returned data: how the bytes arrived."""
    connection: str = ""
    """``local -> remote`` addresses of the socket."""
    seconds: float = 0.0

    @property
    def matches(self) -> bool:
        return self.sent == self.received


async def echo(
    message: bytes,
    endpoint: Endpoint,
    *,
    udp: bool = False,
    timeout: float = 10.0,
    chunk: int = 65536,
) -> EchoResult:
    """Send ``message`` to an echo server and return what came back.

    Raises TimedOut when the whole exchange takes longer than ``timeout``,
    ConnectionLost when the server closes before echoing everything.
    """
    if chunk < 1:
        raise UsageError("the receive chunk size must be at least 1 byte")
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            if udp:
                result = await _echo_udp(message, endpoint)
            else:
                result = await _echo_stream(message, endpoint, timeout, chunk)
    except TimeoutError:
        hint = (
            "UDP reports no error when nobody listens; is the server running?"
            if udp
            else "is the server up, and is it an echo server?"
        )
        raise TimedOut(
            f"timed out after {timeout:g} s waiting for the echo from {endpoint} - {hint}"
        ) from None
    return EchoResult(
        result.sent,
        result.received,
        result.chunks,
        result.connection,
        time.perf_counter() - started,
    )


async def _echo_stream(
    message: bytes, endpoint: Endpoint, timeout: float, chunk: int
) -> EchoResult:
    loop = asyncio.get_running_loop()
    sock = await connect_stream(endpoint, timeout=timeout)
    where = str(endpoint)
    connection = describe(sock)
    received = bytearray()
    chunks: list[int] = []

    async def send() -> None:
        log.info("sendall(%d bytes): %s", len(message), escape_payload(message))
        await loop.sock_sendall(sock, message)

    async def receive() -> None:
        while len(received) < len(message):
            data = await loop.sock_recv(sock, min(chunk, len(message) - len(received)))
            if not data:
                raise ConnectionLost(
                    f"{where} closed the connection after echoing {len(received)} "
                    f"of {len(message)} bytes"
                )
            chunks.append(len(data))
            received.extend(data)
            log.info("recv returned %d bytes: %s", len(data), escape_payload(data))

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(send())
            group.create_task(receive())
    except* OSError as eg:
        exc = eg.exceptions[0]
        assert isinstance(exc, OSError)
        raise translate_os_error(exc, action="echo", where=where) from exc
    except* ConnectionLost as eg:
        raise eg.exceptions[0] from None
    finally:
        log.info("close()")
        sock.close()
    return EchoResult(message, bytes(received), chunks, connection)


async def _echo_udp(message: bytes, endpoint: Endpoint) -> EchoResult:
    if not message:
        raise UsageError(
            "an empty UDP message cannot be echoed: asyncio-based servers never send "
            "empty datagrams - give a message of at least one byte"
        )
    if len(message) > MAX_UDP_PAYLOAD:
        raise UsageError(
            f"a UDP datagram carries at most {MAX_UDP_PAYLOAD} bytes; this message has "
            f"{len(message)} - use TCP for large messages"
        )
    loop = asyncio.get_running_loop()
    sock = await connect_datagram(endpoint)
    where = str(endpoint)
    try:
        connection = describe(sock)
        log.info("send(%d bytes) as one datagram: %s", len(message), escape_payload(message))
        await loop.sock_sendall(sock, message)
        data = await loop.sock_recv(sock, MAX_UDP_PAYLOAD + 1)
        log.info("recv returned a datagram of %d bytes: %s", len(data), escape_payload(data))
    except OSError as exc:
        if isinstance(exc, ConnectionRefusedError):
            raise no_udp_service(where) from exc
        raise translate_os_error(exc, action="echo", where=where) from exc
    finally:
        sock.close()
    return EchoResult(message, data, [len(data)], connection)
