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

UDP has no connection and no FIN: each read of input is one datagram
(``lines=True``: one datagram per input line), and after input ends we wait
``quit_after_eof`` seconds (default 1) for replies.

``idle_timeout`` is ncat's ``-i``: no traffic in *either* direction for that
long (an upload that keeps sending is not idle); ``peer_idle_timeout`` is the
older, stricter meaning: nothing *from the peer* for that long.

Output goes through :class:`OutputWriter`, a thread doing the blocking
writes behind a bounded queue: a reader that stops (``| (sleep 30)``) slows
the relay down (back-pressure, bounded memory) but never blocks the event
loop, so Ctrl-C still ends us at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import select
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from socketkit.client.connect import (
    Source,
    connect_datagram,
    connect_stream,
    describe,
    no_udp_service,
)
from socketkit.endpoints import Endpoint
from socketkit.errors import (
    ConnectionLost,
    OutputClosed,
    SocketkitError,
    TimedOut,
    translate_os_error,
)
from socketkit.runtime.timers import LoopTimers, Timers

__all__ = [
    "IdleWatch",
    "OutputWriter",
    "RelayOptions",
    "RelayResult",
    "first_of",
    "guarded_sink",
    "read_fd_chunks",
    "relay",
    "relay_socket",
    "split_lines",
]

log = logging.getLogger("socketkit.client")

READ_SIZE = 65536
MAX_DATAGRAM = 65507
DEFAULT_UDP_WAIT = 1.0

Observer = Callable[[str, bytes], None]
"""``observer(direction, data)`` with direction ``"sent"`` or ``"received"``."""

Sink = Callable[[bytes], object]
"""Where the peer's bytes go; it may return an awaitable, which is awaited (back-pressure)."""


def guarded_sink(sink: Sink) -> Callable[[bytes], Awaitable[None]]:
    """Wrap an output sink so a closed stdout reads as OutputClosed, not a network error.

    Sinks run inside code that translates OSError from sockets; a
    BrokenPipeError from *writing our output* must not become "connection lost".
    """

    async def write(data: bytes) -> None:
        try:
            result = sink(data)
            if isinstance(result, Awaitable):
                await result
        except BrokenPipeError:
            raise OutputClosed("output closed") from None

    return write


class OutputWriter:
    """Writes to a file descriptor (stdout) from a thread, with back-pressure for the loop.

    Why: a blocking ``write()`` on the loop's thread stalls everything when
    the reader stops, Ctrl-C included (the loop never runs its handler).
    Here ``await write(data)`` returns once the chunk is queued; at most
    ``max_pending`` chunks wait, so a slow reader slows the relay down and
    memory stays bounded, and every byte still arrives in order. Works for
    terminals, pipes and regular files, blocking or not. The thread is a
    daemon: an interrupted run exits without waiting for the reader.
    """

    def __init__(self, fd: int, *, max_pending: int = 4) -> None:
        self._fd = fd
        self._jobs: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(max_pending)
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending = 0
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def write(self, data: bytes) -> None:
        """Queue ``data``; wait while ``max_pending`` chunks are already queued."""
        self._raise_error()
        if not data:
            return
        await self._slots.acquire()
        self._raise_error()
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._work, name="socketkit-stdout", daemon=True)
            self._thread.start()
        self._pending += 1
        self._idle.clear()
        self._jobs.put(data)

    async def drain(self) -> None:
        """Wait until everything queued is written; raise a write failure."""
        await self._idle.wait()
        self._raise_error()

    def close(self) -> None:
        """Let the thread end once the queue is empty."""
        self._jobs.put(None)

    def _raise_error(self) -> None:
        if self._error is None:
            return
        if isinstance(self._error, BrokenPipeError):
            raise OutputClosed("output closed") from None
        raise SocketkitError(f"cannot write output: {self._error.strerror}") from self._error

    def _done(self, error: OSError | None) -> None:
        if error is not None and self._error is None:
            self._error = error
        self._pending -= 1
        self._slots.release()
        if not self._pending:
            self._idle.set()

    def _work(self) -> None:
        assert self._loop is not None
        failed = False
        while True:
            data = self._jobs.get()
            if data is None:
                return
            error: OSError | None = None
            if not failed:
                try:
                    _write_all(self._fd, data)
                except OSError as exc:
                    error, failed = exc, True
            try:
                self._loop.call_soon_threadsafe(self._done, error)
            except RuntimeError:
                return  # the loop is closed: nobody waits for us


def _write_all(fd: int, data: bytes) -> None:
    """Blocking write of all of ``data``, even to a descriptor someone made non-blocking."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


class IdleWatch:
    """Fails when no activity was seen for ``timeout`` seconds (ncat's ``-i``).

    ``touch()`` on every chunk in either direction; ``expired`` is a future
    that gets the error. Time comes from ``Timers``, so tests drive it with
    ``ManualTimers`` instead of waiting.
    """

    def __init__(self, timeout: float, timers: Timers, error: Callable[[], Exception]) -> None:
        self._timeout = timeout
        self._timers = timers
        self._error = error
        self._last = timers.now()
        self.expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handle = timers.call_later(timeout, self._check)

    def touch(self) -> None:
        self._last = self._timers.now()

    def cancel(self) -> None:
        self._handle.cancel()
        if not self.expired.done():
            self.expired.cancel()

    def _check(self) -> None:
        left = self._last + self._timeout - self._timers.now()
        if left > 0:
            self._handle = self._timers.call_later(left, self._check)
        elif not self.expired.done():
            self.expired.set_exception(self._error())


async def split_lines(source: AsyncIterator[bytes], limit: int = 65507) -> AsyncIterator[bytes]:
    """Re-chunk ``source`` into lines (each with its LF); a line over ``limit`` is cut."""
    buffer = b""
    async for chunk in source:
        buffer += chunk
        while True:
            end = buffer.find(b"\n", 0, limit)
            if end < 0:
                if len(buffer) < limit:
                    break
                end = limit - 1
            yield buffer[: end + 1]
            buffer = buffer[end + 1 :]
    if buffer:
        yield buffer


@dataclass(frozen=True)
class RelayOptions:
    half_close: bool = True
    """Send FIN when input ends (False: ``--no-shutdown``)."""
    quit_after_eof: float | None = None
    """After input ends, wait at most this long for the peer (UDP default: 1 s)."""
    exit_on_peer_close: bool = True
    """Stop as soon as the peer closes, even if input remains."""
    idle_timeout: float | None = None
    """Fail when no traffic passes in either direction for this long (ncat ``-i``)."""
    peer_idle_timeout: float | None = None
    """Fail when nothing arrives from the peer for this long, whatever we send."""
    connect_timeout: float = 10.0
    lines: bool = False
    """UDP: one datagram per input line instead of one per read."""
    family: int = socket.AF_UNSPEC
    """``AF_INET`` (``-4``) or ``AF_INET6`` (``-6``) to use only that family."""
    numeric_only: bool = False
    """Refuse host names (``-n``: no DNS)."""
    source: Source | None = None
    """Bind the local side to (host or None, port) first (``-s``/``-p``)."""


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
    sink: Sink,
    *,
    udp: bool = False,
    options: RelayOptions | None = None,
    observer: Observer | None = None,
    timers: Timers | None = None,
) -> RelayResult:
    """Stream ``source`` to the peer and the peer's bytes to ``sink`` concurrently.

    ``sink`` may be a coroutine function (``OutputWriter.write``): it is
    awaited, so a slow consumer slows reading from the peer.
    """
    opts = options or RelayOptions()
    if udp:
        return await _relay_udp(endpoint, source, guarded_sink(sink), opts, observer, timers)
    sock = await connect_stream(
        endpoint,
        timeout=opts.connect_timeout,
        family=opts.family,
        numeric_only=opts.numeric_only,
        source=opts.source,
    )
    return await relay_socket(
        sock, str(endpoint), source, sink, options=opts, observer=observer, timers=timers
    )


def _idle_error(where: str, timeout: float, flag: str, what: str) -> Callable[[], Exception]:
    return lambda: TimedOut(f"{what} {where} for {timeout:g} s ({flag})")


async def relay_socket(
    sock: socket.socket,
    where: str,
    source: AsyncIterator[bytes],
    sink: Sink,
    *,
    options: RelayOptions | None = None,
    observer: Observer | None = None,
    timers: Timers | None = None,
) -> RelayResult:
    """The half-close relay over a connected stream socket (``send``, ``listen``); closes it."""
    opts = options or RelayOptions()
    write = guarded_sink(sink)
    loop = asyncio.get_running_loop()
    connection = describe(sock)
    sent = received = 0
    peer_closed = input_ended = False
    clock = timers or LoopTimers(loop)
    watches: list[IdleWatch] = []
    peer_watch: IdleWatch | None = None
    if opts.idle_timeout is not None:
        watches.append(
            IdleWatch(
                opts.idle_timeout,
                clock,
                _idle_error(where, opts.idle_timeout, "--idle-timeout", "no traffic to or from"),
            )
        )
    if opts.peer_idle_timeout is not None:
        peer_watch = IdleWatch(
            opts.peer_idle_timeout,
            clock,
            _idle_error(where, opts.peer_idle_timeout, "--peer-idle-timeout", "nothing from"),
        )
        watches.append(peer_watch)

    def activity(from_peer: bool) -> None:
        for watch in watches:
            if from_peer or watch is not peer_watch:
                watch.touch()

    async def outbound() -> None:
        nonlocal sent, input_ended
        async for chunk in source:
            await loop.sock_sendall(sock, chunk)
            sent += len(chunk)
            activity(False)
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
            data = await loop.sock_recv(sock, READ_SIZE)
            activity(True)
            if not data:
                peer_closed = True
                log.info("%s closed its side (FIN received)", where)
                return
            received += len(data)
            if observer:
                observer("received", data)
            await write(data)

    async def watched() -> None:
        await _supervise(out_task, in_task, opts)

    out_task = loop.create_task(outbound())
    in_task = loop.create_task(inbound())
    try:
        await first_of(watched(), [w.expired for w in watches])
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
        for watch in watches:
            watch.cancel()
        for task in (out_task, in_task):
            task.cancel()
        await asyncio.gather(out_task, in_task, return_exceptions=True)
        sock.close()
    return RelayResult(sent, received, connection, peer_closed)


async def first_of(main: Awaitable[None], deadlines: list[asyncio.Future[None]]) -> None:
    """Run ``main``; an idle deadline that fires first raises its error instead."""
    if not deadlines:
        await main
        return
    task = asyncio.ensure_future(main)
    try:
        await asyncio.wait([task, *deadlines], return_when=asyncio.FIRST_COMPLETED)
        for deadline in deadlines:
            if deadline.done() and not deadline.cancelled():
                deadline.result()
        await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


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
    sink: Callable[[bytes], Awaitable[None]],
    opts: RelayOptions,
    observer: Observer | None,
    timers: Timers | None,
) -> RelayResult:
    loop = asyncio.get_running_loop()
    sock = await connect_datagram(
        endpoint,
        timeout=opts.connect_timeout,
        family=opts.family,
        numeric_only=opts.numeric_only,
        source=opts.source,
    )
    where = str(endpoint)
    connection = describe(sock)
    sent = received = 0
    chunks = split_lines(source) if opts.lines else source
    watches: list[IdleWatch] = []
    clock = timers or LoopTimers(loop)
    for timeout, flag, what in (
        (opts.idle_timeout, "--idle-timeout", "no traffic to or from"),
        (opts.peer_idle_timeout, "--peer-idle-timeout", "nothing from"),
    ):
        if timeout is not None:
            watches.append(IdleWatch(timeout, clock, _idle_error(where, timeout, flag, what)))
    peer_only = watches[-1] if opts.peer_idle_timeout is not None else None

    async def outbound() -> None:
        nonlocal sent
        async for chunk in chunks:
            for start in range(0, len(chunk), MAX_DATAGRAM):
                datagram = chunk[start : start + MAX_DATAGRAM]
                await loop.sock_sendall(sock, datagram)
                sent += len(datagram)
                for watch in watches:
                    if watch is not peer_only:
                        watch.touch()
                if observer:
                    observer("sent", datagram)

    async def inbound() -> None:
        nonlocal received
        while True:
            data = await loop.sock_recv(sock, MAX_DATAGRAM + 1)
            received += len(data)
            for watch in watches:
                watch.touch()
            if observer:
                observer("received", data)
            await sink(data)

    async def exchange() -> None:
        await outbound()
        wait = DEFAULT_UDP_WAIT if opts.quit_after_eof is None else opts.quit_after_eof
        log.info("input ended; waiting %g s for more datagrams", wait)
        finished, _ = await asyncio.wait({in_task}, timeout=wait)
        for task in finished:
            task.result()

    in_task = loop.create_task(inbound())
    try:
        await first_of(exchange(), [w.expired for w in watches])
    except ConnectionRefusedError as exc:
        raise no_udp_service(where) from exc
    except OSError as exc:
        raise translate_os_error(exc, action="relay", where=where) from exc
    finally:
        for watch in watches:
            watch.cancel()
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
