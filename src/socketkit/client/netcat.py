"""The netcat-like relay behind ``socketkit send``: input to the peer, the peer to output.

Both directions run at once (a client that writes everything before reading
deadlocks on large transfers). What happens at the ends is explicit, because
it is the most-asked question about netcat-like tools:

- input ends: we half-close (send FIN, ``shutdown(SHUT_WR)``) and keep
  reading until the peer closes; ``half_close=False`` keeps our write side
  open instead; ``quit_after_eof=S`` gives the peer at most S more seconds;
- the peer closes: we stop at once (``exit_on_peer_close``, the default of
  ncat 7.96 and later, socat and OpenBSD nc), or keep sending our input
  until it ends.

UDP has no connection and no FIN: each chunk of input is one datagram, and
after input ends we wait ``quit_after_eof`` seconds (default 1) for replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from socketkit.client.connect import connect_datagram, connect_stream, describe, no_udp_service
from socketkit.endpoints import Endpoint
from socketkit.errors import (
    ConnectionLost,
    OutputClosed,
    SocketkitError,
    TimedOut,
    translate_os_error,
)

__all__ = ["RelayOptions", "RelayResult", "guarded_sink", "read_fd_chunks", "relay"]

log = logging.getLogger("socketkit.client")

READ_SIZE = 65536
MAX_DATAGRAM = 65507
DEFAULT_UDP_WAIT = 1.0

Observer = Callable[[str, bytes], None]
"""``observer(direction, data)`` with direction ``"sent"`` or ``"received"``."""


def guarded_sink(sink: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """Wrap an output sink so a closed stdout reads as OutputClosed, not a network error.

    Sinks run inside code that translates OSError from sockets; a
    BrokenPipeError from *writing our output* must not become "connection lost".
    """

    def write(data: bytes) -> None:
        try:
            sink(data)
        except BrokenPipeError:
            raise OutputClosed("output closed") from None

    return write


@dataclass(frozen=True)
class RelayOptions:
    half_close: bool = True
    """Send FIN when input ends (False: ``--no-shutdown``)."""
    quit_after_eof: float | None = None
    """After input ends, wait at most this long for the peer (UDP default: 1 s)."""
    exit_on_peer_close: bool = True
    """Stop as soon as the peer closes, even if input remains."""
    idle_timeout: float | None = None
    """Fail when nothing arrives from the peer for this long."""
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class RelayResult:
    bytes_sent: int
    bytes_received: int
    connection: str
    peer_closed: bool
    """True when the peer closed (TCP/Unix) before we stopped."""


async def relay(
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], object],
    *,
    udp: bool = False,
    options: RelayOptions | None = None,
    observer: Observer | None = None,
) -> RelayResult:
    """Stream ``source`` to the peer and the peer's bytes to ``sink`` concurrently."""
    opts = options or RelayOptions()
    sink = guarded_sink(sink)
    if udp:
        return await _relay_udp(endpoint, source, sink, opts, observer)
    return await _relay_stream(endpoint, source, sink, opts, observer)


async def _relay_stream(
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], object],
    opts: RelayOptions,
    observer: Observer | None,
) -> RelayResult:
    loop = asyncio.get_running_loop()
    sock = await connect_stream(endpoint, timeout=opts.connect_timeout)
    where = str(endpoint)
    connection = describe(sock)
    sent = received = 0
    peer_closed = input_ended = False

    async def outbound() -> None:
        nonlocal sent, input_ended
        async for chunk in source:
            await loop.sock_sendall(sock, chunk)
            sent += len(chunk)
            if observer:
                observer("sent", chunk)
        input_ended = True
        log.info("input ended after %d bytes", sent)
        if opts.half_close:
            log.info("shutdown(SHUT_WR): sending FIN, still reading")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    async def inbound() -> None:
        nonlocal received, peer_closed
        while True:
            try:
                async with asyncio.timeout(opts.idle_timeout):
                    data = await loop.sock_recv(sock, READ_SIZE)
            except TimeoutError:
                raise TimedOut(
                    f"nothing from {where} for {opts.idle_timeout:g} s (--idle-timeout)"
                ) from None
            if not data:
                peer_closed = True
                log.info("%s closed its side (FIN received)", where)
                return
            received += len(data)
            if observer:
                observer("received", data)
            sink(data)

    out_task = loop.create_task(outbound())
    in_task = loop.create_task(inbound())
    try:
        await _supervise(out_task, in_task, opts)
    except (BrokenPipeError, ConnectionResetError) as exc:
        if opts.exit_on_peer_close or input_ended:
            raise translate_os_error(exc, action="relay", where=where) from exc
        raise ConnectionLost(
            f"{where} closed the connection before our input ended - "
            "--no-exit-on-peer-close needs a peer that only half-closes (shutdown SHUT_WR)"
        ) from exc
    except OSError as exc:
        raise translate_os_error(exc, action="relay", where=where) from exc
    finally:
        for task in (out_task, in_task):
            task.cancel()
        await asyncio.gather(out_task, in_task, return_exceptions=True)
        sock.close()
    return RelayResult(sent, received, connection, peer_closed)


async def _supervise(
    out_task: asyncio.Task[None], in_task: asyncio.Task[None], opts: RelayOptions
) -> None:
    """Wait for the end the options describe; re-raise the first real failure."""
    done, _ = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        task.result()  # raises a failure of that direction
    if in_task in done:
        if opts.exit_on_peer_close:
            return
        await out_task
        return
    # Input ended first: wait for the peer, perhaps only for a while.
    if opts.quit_after_eof is None:
        await in_task
        return
    finished, _ = await asyncio.wait({in_task}, timeout=opts.quit_after_eof)
    for task in finished:
        task.result()
    if not finished:
        log.info("quitting %g s after input ended (--quit-after-eof)", opts.quit_after_eof)


async def _relay_udp(
    endpoint: Endpoint,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], object],
    opts: RelayOptions,
    observer: Observer | None,
) -> RelayResult:
    loop = asyncio.get_running_loop()
    sock = await connect_datagram(endpoint, timeout=opts.connect_timeout)
    where = str(endpoint)
    connection = describe(sock)
    sent = received = 0

    async def outbound() -> None:
        nonlocal sent
        async for chunk in source:
            for start in range(0, len(chunk), MAX_DATAGRAM):
                datagram = chunk[start : start + MAX_DATAGRAM]
                await loop.sock_sendall(sock, datagram)
                sent += len(datagram)
                if observer:
                    observer("sent", datagram)

    async def inbound() -> None:
        nonlocal received
        while True:
            data = await loop.sock_recv(sock, MAX_DATAGRAM + 1)
            received += len(data)
            if observer:
                observer("received", data)
            sink(data)

    in_task = loop.create_task(inbound())
    try:
        await outbound()
        wait = DEFAULT_UDP_WAIT if opts.quit_after_eof is None else opts.quit_after_eof
        log.info("input ended; waiting %g s for more datagrams", wait)
        finished, _ = await asyncio.wait({in_task}, timeout=wait)
        for task in finished:
            task.result()
    except ConnectionRefusedError as exc:
        raise no_udp_service(where) from exc
    except OSError as exc:
        raise translate_os_error(exc, action="relay", where=where) from exc
    finally:
        in_task.cancel()
        await asyncio.gather(in_task, return_exceptions=True)
        sock.close()
    return RelayResult(sent, received, connection, False)


async def read_fd_chunks(fd: int, size: int = READ_SIZE) -> AsyncIterator[bytes]:
    """Chunks read from a file descriptor (stdin) without blocking the loop.

    A daemon thread does the blocking reads, so this works for terminals,
    pipes and regular files alike, and never keeps the process alive. At most
    a few chunks wait in memory: the thread blocks until there is room.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=4)

    def reader() -> None:
        while True:
            try:
                chunk: bytes | BaseException = os.read(fd, size)
            except OSError as exc:
                chunk = exc
            put = queue.put(chunk)
            try:
                asyncio.run_coroutine_threadsafe(put, loop).result()
            except BaseException:
                put.close()  # never scheduled, or cancelled: no "never awaited" warning
                return  # the loop is closing or gone: nobody wants more input
            if not isinstance(chunk, bytes) or not chunk:
                return

    threading.Thread(target=reader, name="socketkit-stdin", daemon=True).start()
    while True:
        item = await queue.get()
        if isinstance(item, BaseException):
            raise SocketkitError(f"cannot read input: {item}") from item
        if not item:
            return
        yield item
