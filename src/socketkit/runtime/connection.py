"""The one connection interface the server holds, and the one idle watch.

Every accepted stream connection, whatever moves its bytes (the stream
adapter that drives a sans-I/O protocol, the echo mirror that writes each
chunk straight back), is a ``Connection``: the server admits it, counts it
against the caps, idles it out, closes it gracefully or aborts it at the end
of the grace period through these methods alone, and never asks which kind
it is. A new fast path is one more subclass, not a branch in the server.

``ConnectionHost`` is what a connection needs from the listener that
accepted it (limits, counters, timers, a label for logs, and the callback
that releases its slot), so connections never import the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from abc import ABC, abstractmethod
from typing import Protocol

from socketkit.runtime.limits import Limits
from socketkit.runtime.stats import Counters
from socketkit.runtime.timers import Cancellable, Timers

__all__ = ["IDLE_CHECKS", "Connection", "ConnectionHost", "IdleWatch", "TransportConnection"]

log = logging.getLogger("socketkit.server")

IDLE_CHECKS = 4
"""Idle checks per timeout: a silent connection closes within 1-1.25 x the timeout."""


class ConnectionHost(Protocol):
    """The listener side of a connection (``runtime/listener.py`` implements it)."""

    label: str
    """``service/transport address``, the prefix of every log line."""
    limits: Limits
    counters: Counters
    timers: Timers
    narrate: bool
    read_view: memoryview
    """One receive buffer shared by the listener's connections (bytes never stay in it)."""

    def connection_closed(self, conn: Connection) -> None:
        """Give back the connection's slot, once: from ``connection_lost``, or from the listener when the connection never started (``connect_accepted_socket`` failed)."""
        ...


class Connection(asyncio.BaseProtocol, ABC):
    """One accepted stream connection, as the server holds it.

    Subclasses are asyncio protocols; they set ``peer``, ``source`` and
    ``closed`` (a future done once the connection is gone) and keep
    ``bytes_in`` and ``bytes_out`` (or bring them up to date in
    ``report``).
    """

    peer: str
    """The client as people write it: ``127.0.0.1:41234``, ``[::1]:41234``, ``unix``."""
    source: str
    """What the per-source cap counts: the client's address without the port."""
    closed: asyncio.Future[None]
    bytes_in: int
    bytes_out: int
    ended: str | None = None
    """Why the server ended it, in the access log's word (``idle_timeout``,
    ``aborted``); None while open, or when the client ended it."""

    @abstractmethod
    def close(self) -> None:
        """Close after the pending output is written (FIN, never RST); idempotent."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the connection now, pending output and all; idempotent."""

    @abstractmethod
    def stop_reading(self) -> None:
        """Take no new input (shutdown, once the grace is over)."""

    @abstractmethod
    def pending_output(self) -> int:
        """Bytes accepted for the client and not yet handed to the kernel."""

    @abstractmethod
    def receive(self, data: bytes) -> None:
        """Take bytes that arrived before the connection was made, as if just received.

        Why: a PROXY header's reader may have read the first request with
        the header; it hands those bytes over through this one method, so no
        caller needs to know which asyncio protocol kind a connection is.
        """

    async def attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """Start serving an accepted, non-blocking socket.

        Asyncio protocols go through the loop's own transport; a connection
        that moves bytes itself (the native echo relay) overrides this.
        """
        await loop.connect_accepted_socket(lambda: self, sock)

    def report(self) -> None:
        """Bring lazily counted traffic into the server's counters (default: counted eagerly)."""

    def progress(self) -> tuple[int, int, int]:
        """Changes whenever bytes move either way: what the idle watch compares."""
        return (self.bytes_in, self.bytes_out, self.pending_output())


class LazyCounted:
    """What the two echo mirrors share: bytes counted once in a while, and their end.

    Why: adding to the server's counters on every chunk measured ~2 % of the
    CPU per small request, so a mirror keeps its own ``bytes_in`` and
    ``bytes_out`` and ``report`` brings them in (on ``statistics()`` and at
    the end). The user sets ``_reported = (0, 0)``, ``_counters``,
    ``_idle``, ``_listener`` and ``closed``.
    """

    bytes_in: int
    bytes_out: int
    _reported: tuple[int, int]
    _counters: Counters
    _idle: IdleWatch
    _listener: ConnectionHost
    closed: asyncio.Future[None]

    def report(self) -> None:
        seen = (self.bytes_in, self.bytes_out)
        before = self._reported
        if seen != before:
            self._reported = seen
            self._counters.bytes_received += seen[0] - before[0]
            self._counters.bytes_sent += seen[1] - before[1]

    def _ended(self) -> None:
        """Gone: stop the idle watch, count the bytes, give back the slot, once."""
        self._idle.stop()
        self.report()
        self._listener.connection_closed(self)  # type: ignore[arg-type]
        if not self.closed.done():
            self.closed.set_result(None)


class TransportConnection(Connection):
    """A ``Connection`` over one asyncio transport: the abort, stop and output path both adapters share.

    Subclasses set ``_transport`` in ``connection_made`` and keep ``_eof``
    (no more input will be read) and ``_closing`` (a close has begun).
    """

    _transport: asyncio.Transport | None
    _counters: Counters
    _eof: bool
    _closing: bool
    _aborted: bool = False

    def abort(self) -> None:
        if self._transport is not None and not self._aborted and not self.closed.done():
            self._aborted = True
            self._closing = True
            if self.ended is None:
                self.ended = "aborted"
            self._counters.connections_aborted += 1
            self._transport.abort()

    def stop_reading(self) -> None:
        if self._transport is not None and not self._eof and not self._closing:
            self._eof = True
            self._transport.pause_reading()

    def pending_output(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()


class IdleWatch:
    """Closes a connection that made no progress for ``timeout`` seconds.

    Why checks instead of a timestamp per chunk: reading the clock on every
    chunk is measurable on the echo fast path, while comparing a progress
    marker a few times per timeout costs nothing per byte. Pending output
    alone is not progress: a client that sends and never reads would
    otherwise hold its slot, and our write buffer, for ever; such a
    connection is aborted (its output can never be delivered), a quiet one
    is closed gracefully.
    """

    __slots__ = ("_conn", "_handle", "_host", "_last", "_quiet_since", "_timeout")

    def __init__(self, conn: Connection, host: ConnectionHost) -> None:
        self._conn = conn
        self._host = host
        self._timeout = host.limits.idle_timeout
        self._handle: Cancellable | None = None
        self._last: tuple[int, int, int] | None = None
        self._quiet_since = 0.0

    def start(self) -> None:
        if self._timeout is not None:
            self._last = self._conn.progress()
            self._quiet_since = self._host.timers.now()
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self._timeout is not None
        self._handle = self._host.timers.call_later(self._timeout / IDLE_CHECKS, self._check)

    def _check(self) -> None:
        self._handle = None
        conn = self._conn
        if self._timeout is None or conn.closed.done():
            return
        now = self._host.timers.now()
        seen = conn.progress()
        if seen != self._last:
            self._last = seen
            self._quiet_since = now
        idle = now - self._quiet_since
        if idle < self._timeout:
            self._schedule()
            return
        self._host.counters.connections_timed_out += 1
        log.info(
            "%s: closing %s: idle for %.0f s (idle timeout %g s)",
            self._host.label,
            conn.peer,
            idle,
            self._timeout,
        )
        conn.ended = "idle_timeout"
        if conn.pending_output():
            conn.abort()
        else:
            conn.close()
