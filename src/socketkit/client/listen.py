"""The listening side of the netcat relay (``socketkit listen``, nc's ``-l``).

It reuses the client's half-close relay (:func:`relay_socket`) on an accepted
socket, so ``send`` and ``listen`` end the same way. Safe by default: the
CLI binds loopback unless the user names another address, one connection at
a time (``keep`` accepts the next once one ends), and nothing is ever run
for a peer (no ``--exec``).

Input is read once for the whole session (:class:`SharedInput`): with
``keep``, what one connection did not take goes to the next, and once input
has ended later connections get FIN at once.

UDP has no connection: every datagram from anyone goes to the output, and
input goes to whoever sent the *last* datagram (input waits until someone
has sent one, as with ``ncat -l -u``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from socketkit.client.netcat import (
    MAX_DATAGRAM,
    IdleWatch,
    Observer,
    RelayOptions,
    Sink,
    first_of,
    guarded_sink,
    relay_socket,
    split_lines,
)
from socketkit.endpoints import Endpoint, format_sockaddr, numeric_sockaddrs
from socketkit.errors import OutputClosed, SocketkitError, TimedOut, UsageError, translate_os_error
from socketkit.runtime.timers import LoopTimers, Timers

__all__ = ["ListenResult", "SharedInput", "bind_listener", "listen"]

log = logging.getLogger("socketkit.client")


@dataclass
class ListenResult:
    connections: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    peers: list[str] = field(default_factory=list)


class SharedInput:
    """One input for many connections in turn: a pump task and a one-slot queue.

    A connection that stops reading mid-input (the peer closed) loses
    nothing: the chunk it had not taken yet stays for the next one.
    """

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._task = asyncio.get_running_loop().create_task(self._pump(source))

    async def _pump(self, source: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in source:
                if chunk:
                    await self._queue.put(chunk)
        except Exception as exc:  # handed to the reader, who reports it
            self._error = exc
        await self._queue.put(b"")

    async def chunks(self) -> AsyncIterator[bytes]:
        """This connection's view: chunks until input ends (at once if it already has)."""
        while True:
            chunk = await self._queue.get()
            if not chunk:
                self._queue.put_nowait(b"")  # the end stays visible to the next one
                if self._error is not None:
                    raise self._error
                return
            yield chunk

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def bind_listener(
    endpoint: Endpoint, kind: int, family: int, numeric_only: bool
) -> socket.socket:
    """A bound (and for streams listening) non-blocking socket for ``endpoint``."""
    if endpoint.path is not None:
        sock = socket.socket(socket.AF_UNIX, kind)
        where = f"unix:{endpoint.path}"
        try:
            sock.bind(endpoint.path)
        except OSError as exc:
            sock.close()
            raise translate_os_error(exc, action="bind", where=where) from exc
    else:
        host = endpoint.host or "127.0.0.1"
        port = endpoint.port or 0
        infos = numeric_sockaddrs(host, port, kind, family)
        if infos is None:
            if numeric_only:
                raise UsageError(f"{host!r} is a name and -n allows only IP addresses")
            try:
                infos = list(
                    await asyncio.get_running_loop().getaddrinfo(
                        host, port, family=family, type=kind, flags=socket.AI_PASSIVE
                    )
                )
            except OSError as exc:
                raise translate_os_error(exc, action="resolve", where=host) from exc
        if not infos:
            raise UsageError(f"{host} is not an address of the family -4/-6 asks for")
        fam, kind_, proto, _canon, sockaddr = infos[0]
        sock = socket.socket(fam, kind_, proto)
        where = format_sockaddr(sockaddr)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise translate_os_error(exc, action="bind", where=where) from exc
    sock.setblocking(False)
    if kind == socket.SOCK_STREAM:
        sock.listen(1)
    log.info("bound %s", format_sockaddr(sock.getsockname()))
    return sock


async def listen(
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    sink: Sink,
    *,
    udp: bool = False,
    keep: bool = False,
    family: int = socket.AF_UNSPEC,
    numeric_only: bool = False,
    options: RelayOptions | None = None,
    observer: Observer | None = None,
    on_bound: Callable[[str], None] | None = None,
    on_peer: Callable[[str], None] | None = None,
    timers: Timers | None = None,
    drain: Callable[[], Awaitable[None]] | None = None,
) -> ListenResult:
    """Wait for a peer on ``endpoint`` and relay ``source``/``sink`` with it.

    ``drain()`` (with ``keep``) runs after each connection: a sink that
    writes from a thread reports there that its reader left, and listening
    stops (``OutputClosed``) instead of accepting peers it could only cut.

    ``on_bound(address)`` is called once the socket is bound (port 0 gives
    the real port); ``on_peer(address)`` for each connection (or new UDP
    sender). Stream: one connection, or with ``keep`` one after another
    until cancelled. Raises the socketkit error of a failed bind or, without
    ``keep``, of the relay.
    """
    opts = options or RelayOptions()
    if udp and endpoint.is_unix:
        raise UsageError("UDP needs [HOST:]PORT, not a Unix socket")
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    sock = await bind_listener(endpoint, kind, family, numeric_only)
    bound = endpoint if endpoint.is_unix else None
    try:
        if on_bound:
            on_bound(format_sockaddr(sock.getsockname()))
        if udp:
            return await _listen_udp(sock, source, sink, opts, observer, on_peer, timers)
        return await _listen_stream(
            sock, source, sink, keep, opts, observer, on_peer, timers, drain
        )
    finally:
        sock.close()
        if bound is not None and bound.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(bound.path)


async def _listen_stream(
    listener: socket.socket,
    source: AsyncIterator[bytes],
    sink: Sink,
    keep: bool,
    opts: RelayOptions,
    observer: Observer | None,
    on_peer: Callable[[str], None] | None,
    timers: Timers | None,
    drain: Callable[[], Awaitable[None]] | None = None,
) -> ListenResult:
    loop = asyncio.get_running_loop()
    shared = SharedInput(source)
    result = ListenResult()
    try:
        while True:
            conn, addr = await loop.sock_accept(listener)
            conn.setblocking(False)
            peer = format_sockaddr(addr) if addr else "unix:(unnamed)"
            if not keep:
                listener.close()  # like nc -l: nobody else can connect now
            result.connections += 1
            result.peers.append(peer)
            log.info("connection from %s", peer)
            if on_peer:
                on_peer(peer)
            try:
                done = await relay_socket(
                    conn, peer, shared.chunks(), sink, options=opts, observer=observer,
                    timers=timers,
                )  # fmt: skip
            except OutputClosed:
                raise  # nobody reads what peers send (`listen -k | head`): stop listening
            except SocketkitError as exc:
                if not keep:
                    raise
                log.warning("%s (still listening)", exc)
                continue
            result.bytes_sent += done.bytes_sent
            result.bytes_received += done.bytes_received
            if not keep:
                return result
            if drain is not None:
                await drain()  # OutputClosed ends listening: nobody reads what peers send
    finally:
        await shared.aclose()


class _Inbox(asyncio.DatagramProtocol):
    """Datagrams into a bounded queue (uvloop has no ``sock_recvfrom``/``sock_sendto``).

    A datagram socket cannot pause its peer, so past ``limit`` waiting
    datagrams the newest are dropped (and counted), keeping memory bounded.
    """

    def __init__(self, limit: int = 1024) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any] | OSError] = asyncio.Queue()
        self.limit = limit
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.queue.qsize() >= self.limit:
            self.dropped += 1
            return
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        log.info("UDP error: %s", exc)


async def _listen_udp(
    sock: socket.socket,
    source: AsyncIterator[bytes],
    sink: Sink,
    opts: RelayOptions,
    observer: Observer | None,
    on_peer: Callable[[str], None] | None,
    timers: Timers | None,
) -> ListenResult:
    loop = asyncio.get_running_loop()
    write = guarded_sink(sink)
    result = ListenResult()
    last: Any = None
    known = asyncio.Event()
    chunks = split_lines(source) if opts.lines else source
    transport, inbox = await loop.create_datagram_endpoint(_Inbox, sock=sock)
    watch = (
        IdleWatch(
            opts.idle_timeout,
            timers or LoopTimers(loop),
            lambda: _udp_idle(opts.idle_timeout),
        )
        if opts.idle_timeout is not None
        else None
    )

    async def inbound() -> None:
        nonlocal last
        while True:
            item = await inbox.queue.get()
            if isinstance(item, OSError):
                raise item
            data, addr = item
            if watch:
                watch.touch()
            if addr != last:
                last = addr
                peer = format_sockaddr(addr)
                result.peers.append(peer)
                log.info("datagram from %s: replies go there now", peer)
                if on_peer:
                    on_peer(peer)
            known.set()
            result.bytes_received += len(data)
            if observer:
                observer("received", data)
            await write(data)

    async def outbound() -> None:
        async for chunk in chunks:
            await known.wait()
            for start in range(0, len(chunk), MAX_DATAGRAM):
                datagram = chunk[start : start + MAX_DATAGRAM]
                transport.sendto(datagram, last)
                result.bytes_sent += len(datagram)
                if watch:
                    watch.touch()
                if observer:
                    observer("sent", datagram)
        log.info("input ended; still receiving")
        if opts.quit_after_eof is None:
            await in_task
        else:
            await asyncio.wait({in_task}, timeout=opts.quit_after_eof)

    in_task = loop.create_task(inbound())
    try:
        await first_of(outbound(), [watch.expired] if watch else [])
        if in_task.done():
            in_task.result()
    except OSError as exc:
        raise translate_os_error(exc, action="relay", where="UDP peer") from exc
    finally:
        if watch:
            watch.cancel()
        in_task.cancel()
        await asyncio.gather(in_task, return_exceptions=True)
        transport.close()
        if inbox.dropped:
            log.warning("dropped %d datagrams (output too slow)", inbox.dropped)
    return result


def _udp_idle(timeout: float | None) -> Exception:
    return TimedOut(f"no datagrams either way for {timeout:g} s (--idle-timeout)")
