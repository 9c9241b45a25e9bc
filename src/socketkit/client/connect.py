"""Opening client sockets: every address, both families, raced (Happy Eyeballs).

``getaddrinfo`` may return several addresses (``localhost`` is ``::1`` and
``127.0.0.1``). Trying them one by one makes a dead first address cost a full
timeout, so we race them as RFC 8305 says: families interleaved, the next
attempt started 250 ms after the previous one (or at once when it fails), the
first to connect wins, the others are cancelled. uvloop cannot do this itself
(no ``happy_eyeballs_delay``), so it lives here, the same for every loop.

OS errors become socketkit errors at this edge.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
from collections.abc import Sequence
from typing import Any

from socketkit.endpoints import Endpoint, format_sockaddr, join_host_port, numeric_sockaddrs
from socketkit.errors import (
    ConnectionRefused,
    SocketkitError,
    TimedOut,
    UsageError,
    translate_os_error,
)

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "Source",
    "connect_datagram",
    "connect_stream",
    "interleave",
    "no_udp_service",
    "sock_connect",
]

log = logging.getLogger("socketkit.client")

HAPPY_EYEBALLS_DELAY = 0.25
"""RFC 8305's recommended "Connection Attempt Delay"."""

AddrInfo = tuple[int, int, int, str, Any]

_FAMILY_NAMES: dict[int, str] = {
    socket.AF_INET: "IPv4",
    socket.AF_INET6: "IPv6",
    socket.AF_UNIX: "Unix",
}


Source = tuple[str | None, int]
"""A local address to bind before connecting (``-s ADDR``, ``-p PORT``): host or None, port."""


def interleave(infos: Sequence[AddrInfo]) -> list[AddrInfo]:
    """Alternate address families, starting with the resolver's first (RFC 8305 4)."""
    if not infos:
        return []
    first = infos[0][0]
    primary = [i for i in infos if i[0] == first]
    other = [i for i in infos if i[0] != first]
    out: list[AddrInfo] = []
    for idx in range(max(len(primary), len(other))):
        if idx < len(primary):
            out.append(primary[idx])
        if idx < len(other):
            out.append(other[idx])
    return out


def _where(endpoint: Endpoint) -> str:
    return str(endpoint)


async def connect_stream(
    endpoint: Endpoint,
    *,
    timeout: float = 10.0,
    family: int = socket.AF_UNSPEC,
    delay: float = HAPPY_EYEBALLS_DELAY,
    numeric_only: bool = False,
    source: Source | None = None,
) -> socket.socket:
    """A connected, non-blocking stream socket (TCP, or Unix when ``endpoint.path``).

    ``numeric_only`` refuses names (``-n``: no DNS); ``source`` binds the
    local side first (``-s``/``-p``); ``family`` keeps one family (``-4``/``-6``).
    """
    where = _where(endpoint)
    try:
        async with asyncio.timeout(timeout):
            if endpoint.path is not None:
                return await _connect_unix(endpoint.path)
            infos = await _resolve(endpoint, socket.SOCK_STREAM, family, numeric_only)
            infos = _match_source(infos, source, where)
            return await _race(interleave(infos), delay, where, source)
    except TimeoutError:
        raise TimedOut(
            f"connecting to {where} timed out after {timeout:g} s - "
            "is the host up, or is a firewall dropping packets?"
        ) from None


async def connect_datagram(
    endpoint: Endpoint,
    *,
    timeout: float = 10.0,
    family: int = socket.AF_UNSPEC,
    numeric_only: bool = False,
    source: Source | None = None,
) -> socket.socket:
    """A connected UDP socket: ``send``/``recv`` to one peer, and ICMP errors reach us.

    Connecting a UDP socket sends nothing; it only fixes the peer, so the
    kernel reports "port unreachable" as ECONNREFUSED on the next recv.
    """
    where = _where(endpoint)
    if endpoint.path is not None:
        raise UsageError("UDP needs HOST:PORT, not a Unix socket path")
    try:
        async with asyncio.timeout(timeout):
            infos = await _resolve(endpoint, socket.SOCK_DGRAM, family, numeric_only)
    except TimeoutError:
        raise TimedOut(f"resolving {where} timed out after {timeout:g} s") from None
    infos = _match_source(infos, source, where)
    fam, kind, proto, _canon, sockaddr = infos[0]
    sock = socket.socket(fam, kind, proto)
    try:
        sock.setblocking(False)
        _bind_source(sock, source)
        log.info(
            "UDP socket %s: connect() to %s (no packet is sent)", _FAMILY_NAMES.get(fam), where
        )
        sock.connect(sockaddr)
    except OSError as exc:
        sock.close()
        raise translate_os_error(exc, action="connect", where=where) from exc
    return sock


async def _resolve(
    endpoint: Endpoint, kind: int, family: int, numeric_only: bool = False
) -> list[AddrInfo]:
    """Addresses for ``endpoint``: literals without any resolver (zones kept), names by DNS."""
    loop = asyncio.get_running_loop()
    host = endpoint.host or "127.0.0.1"
    port = endpoint.port or 0
    try:
        numeric = numeric_sockaddrs(host, port, kind, family)
        if numeric is None:
            if numeric_only:
                raise UsageError(
                    f"{host!r} is a name and -n (no DNS) allows only numeric addresses - "
                    "give an IP address, or leave out -n"
                )
            log.info("getaddrinfo(%r, %s): resolving", host, port)
            infos: list[AddrInfo] = list(
                await loop.getaddrinfo(host, port, family=family, type=kind)
            )
        else:
            log.info("%s is numeric: no resolver needed", host)
            infos = numeric
    except OSError as exc:
        raise translate_os_error(exc, action="resolve", where=host) from exc
    if not infos and family != socket.AF_UNSPEC:
        wanted = "IPv4 (-4)" if family == socket.AF_INET else "IPv6 (-6)"
        raise UsageError(f"{host} is not an {wanted} address - drop -4/-6 or give another address")
    found: list[AddrInfo] = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        raise translate_os_error(
            socket.gaierror(socket.EAI_NONAME, "no IPv4 or IPv6 address"),
            action="resolve",
            where=host,
        )
    log.info(
        "getaddrinfo returned %d address(es): %s",
        len(found),
        ", ".join(f"{format_sockaddr(i[4])} ({_FAMILY_NAMES.get(i[0])})" for i in found),
    )
    return found


async def _connect_unix(path: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        log.info("connecting to unix:%s", path)
        await loop.sock_connect(sock, path)
    except FileNotFoundError as exc:
        sock.close()
        raise ConnectionRefused(
            f"no Unix socket at {path} - is the server running? (socketkit serve --unix {path})"
        ) from exc
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ECONNREFUSED and not _is_socket(path):
            raise UsageError(
                f"{path} is not a Unix socket - give the path `socketkit serve --unix` printed"
            ) from exc
        raise translate_os_error(exc, action="connect", where=f"unix:{path}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


async def sock_connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, addr: Any) -> None:
    """Non-blocking connect to an already resolved address, the same on every loop.

    Why not ``loop.sock_connect``: uvloop resolves the address again and
    drops an IPv6 scope id, so ``fe80::1%eth0`` fails with EINVAL.
    """
    try:
        sock.connect(addr)
        return
    except (BlockingIOError, InterruptedError):
        pass
    fd = sock.fileno()
    ready: asyncio.Future[None] = loop.create_future()

    def writable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, writable)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


def _match_source(infos: list[AddrInfo], source: Source | None, where: str) -> list[AddrInfo]:
    """Keep the destinations a source address of one family can reach."""
    if source is None or source[0] is None:
        return infos
    fam = socket.AF_INET6 if ":" in source[0] else socket.AF_INET
    kept = [i for i in infos if i[0] == fam]
    if not kept:
        raise UsageError(f"source address {source[0]} (-s) and {where} are not the same IP version")
    return kept


def _bind_source(sock: socket.socket, source: Source | None) -> None:
    """Bind the local side before connect (``-s ADDR``, ``-p PORT``), as nc does."""
    if source is None:
        return
    host, port = source
    wildcard = "::" if sock.family == socket.AF_INET6 else "0.0.0.0"
    infos = numeric_sockaddrs(host or wildcard, port, sock.type, sock.family)
    if infos is None:
        raise UsageError(f"source address {host!r} (-s) must be an IP address")
    if port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(infos[0][4])
    except OSError as exc:
        raise translate_os_error(
            exc, action="bind", where=join_host_port(host or wildcard, port)
        ) from exc
    log.info("bound the local side to %s (-s/-p)", format_sockaddr(sock.getsockname()))


async def _attempt(info: AddrInfo, source: Source | None = None) -> socket.socket:
    loop = asyncio.get_running_loop()
    fam, kind, proto, _canon, sockaddr = info
    sock = socket.socket(fam, kind, proto)
    try:
        sock.setblocking(False)
        _bind_source(sock, source)
        log.info("trying %s (%s)", format_sockaddr(sockaddr), _FAMILY_NAMES.get(fam))
        await sock_connect(loop, sock, sockaddr)
    except BaseException:
        sock.close()
        raise
    log.info(
        "connected: local %s -> remote %s",
        format_sockaddr(sock.getsockname()),
        format_sockaddr(sock.getpeername()),
    )
    return sock


async def _race(
    candidates: list[AddrInfo], delay: float, where: str, source: Source | None = None
) -> socket.socket:
    """Staggered attempts; the first socket to connect wins, the rest are closed."""
    loop = asyncio.get_running_loop()
    queue = list(candidates)
    running: set[asyncio.Task[socket.socket]] = set()
    errors: list[OSError] = []
    winner: socket.socket | None = None
    try:
        while queue or running:
            if queue:
                running.add(loop.create_task(_attempt(queue.pop(0), source)))
            done, _ = await asyncio.wait(
                running, timeout=delay if queue else None, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                running.discard(task)
                exc = task.exception()
                if exc is None:
                    if winner is None:
                        winner = task.result()
                    else:
                        task.result().close()
                elif isinstance(exc, OSError):
                    log.info("attempt failed: %s", exc.strerror or exc)
                    errors.append(exc)
                else:
                    raise exc
            if winner is not None:
                return winner
    finally:
        for task in running:
            task.cancel()
        for task in running:
            try:
                (await task).close()
            except (OSError, asyncio.CancelledError):
                pass
    raise _best_error(errors, where)


def no_udp_service(where: object) -> ConnectionRefused:
    """The line for ICMP port unreachable on a UDP socket (Linux reports it on the next call)."""
    return ConnectionRefused(
        f"no UDP service at {where} (the host answered 'port unreachable') - is the server running?"
    )


def _best_error(errors: list[OSError], where: str) -> SocketkitError:
    """Refused anywhere means a host was there but no server: the most useful hint."""
    for exc in errors:
        if isinstance(exc, ConnectionRefusedError):
            return translate_os_error(exc, action="connect", where=where)
    if errors:
        return translate_os_error(errors[0], action="connect", where=where)
    return ConnectionRefused(f"connection refused by {where} - is the server running?")


def describe(sock: socket.socket) -> str:
    """``local -> remote`` for narration."""
    try:
        return f"{format_sockaddr(sock.getsockname())} -> {format_sockaddr(sock.getpeername())}"
    except OSError:
        return join_host_port("?", 0)
