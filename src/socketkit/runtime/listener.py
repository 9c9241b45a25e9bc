"""The accept loop of one listening stream socket (TCP or Unix).

Lecture terms: ``accept()`` takes the next client from the listen queue and
returns a new socket for it; the listening socket keeps listening. Our own
accept loop instead of ``loop.create_server``, for two reasons measured on
asyncio: its accept loop, out of descriptors (EMFILE), retries at once and
spins a whole core, where we back off for ``ACCEPT_BACKOFF`` seconds; and it
accepts up to ``backlog`` sockets before any protocol callback runs, where
we check the connection caps at accept time (``ConnectionTable``).

Which connection class serves a client is decided once per listener, from
the protocol's declared traits (``mirrors_input``), never per service name.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

from socketkit.endpoints import format_sockaddr
from socketkit.protocols import ServiceInfo
from socketkit.runtime.admission import ConnectionTable
from socketkit.runtime.bind import BoundEndpoint, unlink_socket
from socketkit.runtime.connection import Connection
from socketkit.runtime.limits import Limits
from socketkit.runtime.mirror import MIRROR_MIN_CHUNK, MirrorConnection
from socketkit.runtime.stats import Counters, ServerStatistics
from socketkit.runtime.stream import StreamConnection
from socketkit.runtime.timers import Cancellable, Timers

__all__ = ["ACCEPT_BACKOFF", "Listener"]

log = logging.getLogger("socketkit.server")

ACCEPT_BACKOFF = 0.1
"""Seconds the accept loop pauses after EMFILE and its kin."""
_WARNING_EVERY = 5.0
"""Seconds between repeated warnings about the same accept trouble."""
_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class Listener:
    """A listening stream socket, its accept loop, and the host of its connections."""

    def __init__(
        self,
        info: ServiceInfo,
        sock: socket.socket,
        endpoint: BoundEndpoint,
        *,
        limits: Limits,
        table: ConnectionTable,
        timers: Timers,
        clock: Callable[[], float],
        narrate: bool = False,
    ) -> None:
        self.info = info
        self.sock = sock
        self.endpoint = endpoint
        self.label = f"{info.name}/{endpoint.transport} {endpoint.address}"
        self.limits = limits
        self.counters = Counters()
        """This listener's own traffic (the server sums every endpoint's)."""
        self.timers = timers
        self.narrate = narrate
        self.read_view = memoryview(bytearray(limits.read_chunk))
        self._table = table
        self._clock = clock
        self._open = 0
        self._loop = asyncio.get_running_loop()
        self._backoff: Cancellable | None = None
        self._reading = False
        self._closed = False
        self._last_warning = -_WARNING_EVERY
        self._pending: set[asyncio.Task[None]] = set()
        self._new_connection = self._choose_connection()

    def _choose_connection(self) -> Callable[[str, str], Connection]:
        stream = self.info.stream
        if stream is None:
            raise ValueError(f"{self.info.name} has no stream protocol")
        if (
            getattr(stream, "mirrors_input", False)
            and not self.narrate
            and self.limits.read_chunk >= MIRROR_MIN_CHUNK
        ):
            return lambda peer, source: MirrorConnection(self, peer, source)
        return lambda peer, source: StreamConnection(self, stream(now=self._clock()), peer, source)

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        if not self._closed and not self._reading:
            self._loop.add_reader(self.sock.fileno(), self._on_readable)
            self._reading = True

    def close(self) -> None:
        """Stop accepting, close the socket, remove a Unix socket file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._backoff is not None:
            self._backoff.cancel()
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False
        self.sock.close()
        if self.endpoint.transport == "unix" and self.endpoint.address.path:
            unlink_socket(self.endpoint.address.path)
        for task in list(self._pending):
            task.cancel()

    def statistics(self) -> ServerStatistics:
        """This listener's counters, with its open connections."""
        self.counters.connections_active = self._open
        return self.counters.snapshot()

    # -- ConnectionHost -----------------------------------------------------------

    def connection_closed(self, conn: Connection) -> None:
        if not conn.closed.done():
            self._open -= 1
        self._table.release(conn)

    # -- accepting ----------------------------------------------------------------

    def _on_readable(self) -> None:
        for _ in range(self.limits.accept_batch):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _CAPACITY_ERRNOS:
                    self._back_off(exc)
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                log.warning("%s: accept failed: %s", self.label, exc)
                self.counters.accept_errors += 1
                return
            self._admit(conn, addr)

    def _back_off(self, exc: OSError) -> None:
        self.counters.accept_errors += 1
        now = self.timers.now()
        quiet = now - self._last_warning < _WARNING_EVERY
        if not quiet:
            self._last_warning = now
        (log.debug if quiet else log.warning)(
            "%s: cannot accept (%s); pausing %.0f ms - raise the file limit (ulimit -n) "
            "or lower the connection limit (max_connections)",
            self.label,
            exc.strerror,
            ACCEPT_BACKOFF * 1000,
        )
        self._loop.remove_reader(self.sock.fileno())
        self._reading = False
        self._backoff = self.timers.call_later(ACCEPT_BACKOFF, self.start)

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        peer = format_sockaddr(addr)
        source = "unix" if self.endpoint.transport == "unix" else peer.rpartition(":")[0]
        table = self._table
        if table.closing or self._closed:
            sock.close()
            return
        why = table.refusal(source)
        if why:
            self.counters.connections_refused += 1
            log.warning("%s: refused %s: %s", self.label, peer, why)
            sock.close()
            return
        sock.setblocking(False)
        try:
            conn = self._new_connection(peer, source)
        except Exception:
            log.exception("%s: could not set up the connection from %s", self.label, peer)
            sock.close()
            return
        table.add(conn)
        self._open += 1
        self.counters.connections_served += 1
        task = self._loop.create_task(self._connect(sock, conn))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(self, sock: socket.socket, conn: Connection) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: conn, sock)
        except (OSError, asyncio.CancelledError) as exc:
            sock.close()
            conn.report()  # it may have moved bytes already: counted before it leaves
            self.connection_closed(conn)
            if isinstance(exc, asyncio.CancelledError):
                raise
