"""The probe's I/O edge: bounded sends and receives on stream and datagram sockets.

Every wait has a deadline and every read a byte limit, so a server that
stalls, floods or never closes costs the probe a known time and memory.
Connections are opened by the clients' own code (``client.connect``), so the
probe reaches a server exactly as ``socketkit echo`` does; only datagram
sockets with a chosen source port (the loop check) are made here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from socketkit.client.connect import connect_datagram, connect_stream, no_udp_service
from socketkit.display import escape_payload
from socketkit.errors import translate_os_error
from socketkit.probe.model import ProbeOptions, Target

__all__ = [
    "Received",
    "SourcePortUnavailable",
    "abort",
    "ask",
    "datagram",
    "datagram_from_port",
    "exchange",
    "recv_until",
    "send",
    "send_datagram",
    "show",
    "stream",
]


def show(data: bytes, limit: int = 32) -> str:
    """Bytes for a table cell: escaped, shortened, with the length."""
    return f"{len(data)} B {escape_payload(data, limit)}"


@dataclass(frozen=True)
class Received:
    data: bytes
    eof: bool
    """The server closed (or half-closed) its side."""
    reset: bool = False
    """The server reset the connection."""


@contextlib.asynccontextmanager
async def stream(target: Target, options: ProbeOptions) -> AsyncIterator[socket.socket]:
    """A connected stream socket to ``target``, closed on exit."""
    sock = await connect_stream(target.endpoint, timeout=options.timeout)
    try:
        if target.transport == "tcp":
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield sock
    finally:
        sock.close()


def abort(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0), as a crashed or hostile client does."""
    with contextlib.suppress(OSError):
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def send(sock: socket.socket, data: bytes, timeout: float) -> bool:
    """Send all of ``data``; False when the server stopped reading or closed."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(sock, data)
    except (TimeoutError, OSError):
        return False
    return True


async def recv_until(
    sock: socket.socket, *, limit: int, timeout: float, until: bytes | None = None
) -> Received:
    """Read until EOF, ``limit`` bytes, ``until`` seen, or ``timeout`` seconds of waiting."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while len(data) < limit:
                chunk = await loop.sock_recv(sock, min(65536, limit - len(data)))
                if not chunk:
                    return Received(bytes(data), eof=True)
                data += chunk
                if until is not None and until in data:
                    break
    except TimeoutError:
        pass
    except ConnectionError:
        return Received(bytes(data), eof=True, reset=True)
    return Received(bytes(data), eof=False)


async def exchange(
    sock: socket.socket,
    chunks: Sequence[bytes],
    *,
    expect: int,
    timeout: float,
    pace: float = 0.0,
) -> Received:
    """Write ``chunks`` one by one while reading, so neither side can deadlock on a full
    buffer; return once ``expect`` bytes came back, or EOF, or the timeout.

    ``pace`` seconds between writes keeps the kernel from joining them into one
    segment, so the server really sees each write on its own.
    """
    loop = asyncio.get_running_loop()

    async def writer() -> None:
        for chunk in chunks:
            await loop.sock_sendall(sock, chunk)
            if pace:
                await asyncio.sleep(pace)

    task = asyncio.ensure_future(writer())
    try:
        got = await recv_until(sock, limit=expect, timeout=timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await task
    return got


async def datagram(target: Target, options: ProbeOptions) -> socket.socket:
    """A connected UDP socket to ``target`` (the clients' own code)."""
    return await connect_datagram(target.endpoint, timeout=options.timeout)


class SourcePortUnavailable(Exception):
    """Binding the wanted source port was not permitted or the port is taken."""


async def datagram_from_port(target: Target, port: int, options: ProbeOptions) -> socket.socket:
    """A UDP socket with source port ``port``, connected to ``target``.

    The source address is loopback when the target is loopback (so nothing
    leaves the machine), else the kernel's choice for the route to the target.
    """
    loop = asyncio.get_running_loop()
    host = target.endpoint.host or "127.0.0.1"
    infos = await loop.getaddrinfo(host, target.endpoint.port, type=socket.SOCK_DGRAM)
    family, kind, proto, _canon, sockaddr = infos[0]
    local = _loopback_for(family) if _is_loopback(str(sockaddr[0])) else ""
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.bind((local, port))
        sock.connect(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise SourcePortUnavailable(
                f"binding source port {port} needs root or CAP_NET_BIND_SERVICE "
                "(or run in a network namespace)"
            ) from exc
        if exc.errno == errno.EADDRINUSE:
            raise SourcePortUnavailable(f"source port {port} is in use on this machine") from exc
        raise translate_os_error(exc, action="bind", where=f"port {port}") from exc
    return sock


def _loopback_for(family: int) -> str:
    return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def send_datagram(sock: socket.socket, payload: bytes) -> None:
    """One datagram, even an empty one.

    Why not ``loop.sock_sendall``: uvloop's returns at once for empty data
    without calling send(), so RFC 868's empty request would never leave.
    """
    try:
        sock.send(payload)
    except BlockingIOError:
        await asyncio.get_running_loop().sock_sendall(sock, payload)
    except ConnectionRefusedError as exc:
        raise no_udp_service(_peer(sock)) from exc


async def ask(
    sock: socket.socket,
    payload: bytes,
    options: ProbeOptions,
    *,
    max_replies: int = 16,
    expect_reply: bool = True,
) -> list[bytes]:
    """Send one datagram; collect the replies until ``quiet_wait`` passes with none.

    The first reply may take up to ``timeout`` when one is expected (a slow
    server is not a silent one), ``quiet_wait`` when silence is the right
    answer; "port unreachable" becomes the clients' refused error (exit 69).
    """
    loop = asyncio.get_running_loop()
    await send_datagram(sock, payload)
    replies: list[bytes] = []
    wait = options.timeout if expect_reply else options.quiet_wait
    while len(replies) < max_replies:
        try:
            async with asyncio.timeout(wait):
                replies.append(await loop.sock_recv(sock, 65536))
        except TimeoutError:
            break
        except ConnectionRefusedError as exc:
            raise no_udp_service(_peer(sock)) from exc
        wait = options.quiet_wait
    return replies


def _peer(sock: socket.socket) -> str:
    from socketkit.endpoints import format_sockaddr

    try:
        return format_sockaddr(sock.getpeername())
    except OSError:
        return "the peer"
