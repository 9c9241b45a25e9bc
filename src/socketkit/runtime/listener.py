"""The accept loop of one listening stream socket (TCP or Unix).

Lecture terms: ``accept()`` takes the next client from the listen queue and
returns a new socket for it; the listening socket keeps listening. Our own
accept loop instead of ``loop.create_server``, for two reasons measured on
asyncio: its accept loop, out of descriptors (EMFILE), retries at once and
spins a whole core, where we back off for ``ACCEPT_BACKOFF`` seconds; and it
accepts up to ``backlog`` sockets before any protocol callback runs, where
we check the connection caps at accept time (``ConnectionTable``).

Which connection class serves a client is decided once per listener, from
the protocol's declared traits (``mirrors_input``), never per service name,
and for a mirror from whether the C relay is built (``$SOCKETKIT_MIRROR``
chooses by hand).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

from socketkit.endpoints import format_sockaddr
from socketkit.logs import AccessRecord, access_log_enabled, log_access
from socketkit.protocols import ServiceInfo
from socketkit.protocols.proxy import ProxyAccepted
from socketkit.runtime.admission import ConnectionTable
from socketkit.runtime.bind import BoundEndpoint, unlink_socket
from socketkit.runtime.connection import Connection
from socketkit.runtime.limits import Limits
from socketkit.runtime.mirror import MIRROR_MIN_CHUNK, MirrorConnection
from socketkit.runtime.native_mirror import NativeMirrorConnection, chosen_mirror
from socketkit.runtime.native_mirror import available as native_mirror_available
from socketkit.runtime.proxied import HeaderReader, ProxyTrust, drain_and_close
from socketkit.runtime.stats import Counters, ServerStatistics
from socketkit.runtime.stream import StreamConnection
from socketkit.runtime.timers import Cancellable, Timers

__all__ = ["ACCEPT_BACKOFF", "Listener"]

log = logging.getLogger("socketkit.server")

ACCEPT_BACKOFF = 0.1
"""Seconds the accept loop pauses after EMFILE and its kin."""
_WARNING_EVERY = 5.0
"""Seconds between repeated warnings about the same accept trouble."""
_PROXY_REASONS = {
    "proxy_untrusted": "its source may not send a PROXY header (limit proxy_from)",
    "proxy_invalid": "malformed PROXY header",
    "proxy_missing": "no complete PROXY header in time",
}
_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class Listener:
    """A listening stream socket, its accept loop, and the host of its connections."""

    def __init__(
        self,
        info: ServiceInfo,
        sock: socket.socket | None,
        endpoint: BoundEndpoint,
        *,
        limits: Limits,
        table: ConnectionTable,
        timers: Timers,
        clock: Callable[[], float],
        narrate: bool = False,
        owns_path: bool = True,
    ) -> None:
        self.info = info
        self._owns_path = owns_path
        """False for a Unix socket a service manager bound: its file is not ours to remove."""
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
        self._proxy = limits.proxy_protocol and endpoint.transport == "tcp"
        self._trust = ProxyTrust.parse(limits.proxy_from)
        self._awaiting: set[HeaderReader] = set()
        """Accepted sockets still sending their PROXY header (not yet connections)."""
        self._access = access_log_enabled()
        self._opened: dict[Connection, tuple[float, Any]] = {}
        """Each open connection's start and client address, for its access-log line."""

    def _choose_connection(self) -> Callable[[str, str], Connection]:
        stream = self.info.stream
        if stream is None:
            raise ValueError(f"{self.info.name} has no stream protocol")
        if (
            getattr(stream, "mirrors_input", False)
            and not self.narrate
            and self.limits.read_chunk >= MIRROR_MIN_CHUNK
        ):
            if chosen_mirror() != "transport" and native_mirror_available():
                return lambda peer, source: NativeMirrorConnection(self, peer, source)
            return lambda peer, source: MirrorConnection(self, peer, source)
        return lambda peer, source: StreamConnection(self, stream(now=self._clock()), peer, source)

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        if self.sock is not None and not self._closed and not self._reading:
            self._loop.add_reader(self.sock.fileno(), self._on_readable)
            self._reading = True

    def close(self) -> None:
        """Stop accepting, close the socket, remove a Unix socket file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._backoff is not None:
            self._backoff.cancel()
        if self.sock is not None:
            if self._reading:
                self._loop.remove_reader(self.sock.fileno())
                self._reading = False
            self.sock.close()
        if self.endpoint.transport == "unix" and self.endpoint.address.path and self._owns_path:
            unlink_socket(self.endpoint.address.path)
        for task in list(self._pending):
            task.cancel()
        for reader in list(self._awaiting):
            reader.cancel()
        self._awaiting.clear()

    def statistics(self) -> ServerStatistics:
        """This listener's counters, with its open connections."""
        self.counters.connections_active = self._open
        return self.counters.snapshot()

    # -- ConnectionHost -----------------------------------------------------------

    def connection_closed(self, conn: Connection) -> None:
        if not conn.closed.done():
            self._open -= 1
        self._table.release(conn)
        opened = self._opened.pop(conn, None)
        if opened is not None and self._access:
            start, addr = opened
            ended = conn.ended or ("shutdown" if self._table.closing else "closed")
            self._log_access(addr, conn.bytes_in, conn.bytes_out, start, ended)

    def _log_access(
        self, addr: Any, bytes_in: int, bytes_out: int, start: float, ended: str
    ) -> None:
        log_access(
            AccessRecord(
                addr,
                self.info.name,
                self.endpoint.transport,
                bytes_in,
                bytes_out,
                self.timers.now() - start,
                ended,
            )
        )

    # -- accepting ----------------------------------------------------------------

    def _on_readable(self) -> None:
        for _ in range(self.limits.accept_batch):
            try:
                conn, addr = self.sock.accept()  # type: ignore[union-attr]
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
            "or lower the connection limit (limit max_connections)",
            self.label,
            exc.strerror,
            ACCEPT_BACKOFF * 1000,
        )
        self._loop.remove_reader(self.sock.fileno())  # type: ignore[union-attr]
        self._reading = False
        self._backoff = self.timers.call_later(ACCEPT_BACKOFF, self.start)

    def admit(self, sock: socket.socket, addr: Any) -> None:
        """Serve a connection accepted elsewhere (inetd's ``nowait``: standard input).

        Why through the listener: the one admission path (caps, counters,
        access log, the connection class) serves it like any accepted client.
        A listener made for this has no socket of its own (``sock=None``).
        """
        self._admit(sock, addr)

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        table = self._table
        if table.closing or self._closed:
            sock.close()
            return
        if self._proxy:
            if not self._trust.allows(addr):
                # Known at accept: holding it until it speaks would let anyone
                # fill the table with silent connections and shut the balancer out.
                self._header_done_early(sock, addr, "proxy_untrusted")
                return
            # Only --proxy-from sources get this far: a balancer opens many
            # connections at once, so only the total cap applies until the header.
            why = table.full(len(self._awaiting))
            if why:
                self.counters.connections_refused += 1
                log.warning("%s: refused %s: %s", self.label, format_sockaddr(addr), why)
                sock.close()
                return
            sock.setblocking(False)
            reader = HeaderReader(
                sock,
                addr,
                timeout=self.limits.proxy_timeout,
                timers=self.timers,
                done=self._header_done,
            )
            self._awaiting.add(reader)
            return
        self._admit_as(sock, addr, b"")

    def _header_done_early(self, sock: socket.socket, addr: Any, reason: str) -> None:
        """Refuse a connection before reading anything: count it, log it, close it."""
        setattr(self.counters, reason, getattr(self.counters, reason) + 1)
        log.info(
            "%s: closed %s before its service: %s",
            self.label,
            format_sockaddr(addr),
            _PROXY_REASONS.get(reason, reason),
        )
        if self._access:
            self._log_access(addr, 0, 0, self.timers.now(), "proxy_rejected")
        sock.close()

    def _header_done(self, reader: HeaderReader, header: ProxyAccepted | None, reason: str) -> None:
        """The PROXY header is in (serve the real client) or refused (close and count)."""
        self._awaiting.discard(reader)
        if header is None:
            setattr(self.counters, reason, getattr(self.counters, reason) + 1)
            log.info(
                "%s: closed %s before its service: %s",
                self.label,
                format_sockaddr(reader.addr),
                _PROXY_REASONS.get(reason, reason),
            )
            if self._access:
                self._log_access(reader.addr, 0, 0, reader.started, "proxy_rejected")
            drain_and_close(reader.sock)
            return
        addr = reader.addr
        if header.command == "PROXY" and header.source is not None:
            addr = header.source
        if self.narrate:
            log.info(
                "%s: PROXY v%d header from %s: the client is %s",
                self.label,
                header.version,
                format_sockaddr(reader.addr),
                format_sockaddr(addr),
            )
        self._admit_as(reader.sock, addr, header.rest)

    def _admit_as(self, sock: socket.socket, addr: Any, rest: bytes) -> None:
        """Admit a client under its real address; ``rest`` is input already read."""
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
        if self._access:
            self._opened[conn] = (self.timers.now(), addr)
        task = self._loop.create_task(self._connect(sock, conn, rest))
        self._pending.add(task)
        task.add_done_callback(lambda done: self._connected(done, sock, conn))

    def _connected(self, task: asyncio.Task[None], sock: socket.socket, conn: Connection) -> None:
        """A task cancelled before its first step ran no ``except``: release it here."""
        self._pending.discard(task)
        if task.cancelled() and sock.fileno() >= 0:
            sock.close()
            if not conn.closed.done():
                self.connection_closed(conn)

    async def _connect(self, sock: socket.socket, conn: Connection, rest: bytes = b"") -> None:
        try:
            await conn.attach(self._loop, sock)
            if rest:
                conn.receive(rest)
        except (OSError, asyncio.CancelledError) as exc:
            sock.close()
            conn.report()  # it may have moved bytes already: counted before it leaves
            self.connection_closed(conn)
            if isinstance(exc, asyncio.CancelledError):
                raise
