"""The one server runtime's life cycle: start, serve, shut down gracefully.

Lecture terms: a server socket is created, bound to an address and port,
set listening, and then accepts clients, many at once here without a thread
per client (one event loop multiplexes them, the lecture's "select"
challenge).

This module only orders the pieces, each in the file its job names:
``bind.py`` plans and binds every socket (all or nothing, before ``start()``
returns, so port 0 works and the addresses can be read back at once),
``listener.py`` accepts stream clients, ``admission.py`` holds the open
connections and the caps, ``udp.py`` serves datagrams, and ``stream.py`` /
``mirror.py`` are the connections behind one interface (``connection.py``).

Graceful shutdown: stop accepting, give open connections ``shutdown_grace``
seconds to finish, then close them after flushing what they were owed, and
abort what is still open one second later. Every deadline reads one
``Timers`` source, so tests drive it on virtual time (``ManualTimers``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence

from socketkit.endpoints import Endpoint, Transport
from socketkit.errors import UsageError
from socketkit.protocols import ServiceInfo
from socketkit.runtime.activation import InetdSocket
from socketkit.runtime.admission import ConnectionTable
from socketkit.runtime.bind import (
    Binding,
    BoundEndpoint,
    BoundSocket,
    PortSharing,
    bind_all,
    close_bound,
    plan_bindings,
)
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.limits import Limits
from socketkit.runtime.listener import Listener
from socketkit.runtime.mmsg import UdpIo
from socketkit.runtime.stats import ServerStatistics, combine_statistics
from socketkit.runtime.timers import Cancellable, LoopTimers, Timers
from socketkit.runtime.udp import ReplyPolicy, UdpEndpoint

__all__ = ["Binding", "BoundEndpoint", "PortSharing", "Server", "plan_bindings"]

log = logging.getLogger("socketkit.server")

CLOSE_AFTER_GRACE = 1.0
"""Seconds a connection closed at the end of the grace has to flush before it is aborted."""


class Server:
    """Serves registered services on TCP, UDP and Unix sockets.

    Use ``async with Server(bindings) as server:`` (binds on entry, shuts down
    gracefully on exit), or ``start()``, ``wait_closed()`` and ``shutdown()``.

    ``adopted`` are sockets a service manager bound (systemd's LISTEN_FDS,
    see ``activation.adopt_sockets``): served like the ones bound here, never
    re-bound, never unlinked, never joined by workers. ``serve_inetd()``
    replaces ``start()`` when inetd passed the one socket on standard input.

    ``clock`` is the wall clock the services see (daytime, time); ``timers``
    is the monotonic clock and scheduler behind every deadline (idle
    timeout, grace, accept back-off, the UDP rate buckets): the running
    loop's by default, ``ManualTimers`` in tests.
    """

    def __init__(
        self,
        bindings: Sequence[Binding],
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        timers: Timers | None = None,
        narrate: bool = False,
        udp_policy: ReplyPolicy | None = None,
        port_sharing: PortSharing = "none",
        adopted: Sequence[BoundSocket] = (),
        udp_io: UdpIo | None = None,
    ) -> None:
        if port_sharing != "none" and not hasattr(socket, "SO_REUSEPORT"):
            raise UsageError(
                "sharing a port between processes needs SO_REUSEPORT, which this system "
                "lacks - run one process"
            )
        self.port_sharing = port_sharing
        self.bindings = list(bindings)
        self._adopted = list(adopted)
        """Sockets somebody else bound (systemd's LISTEN_FDS): served, never bound here."""
        self.limits = limits or Limits()
        self.narrate = narrate
        self._clock = clock
        self._timers = timers
        self._udp_policy = udp_policy
        self._udp_io = udp_io
        """Batched or plain UDP I/O (``mmsg.chosen_io``: None reads $SOCKETKIT_UDP_IO)."""
        self._table = ConnectionTable(self.limits)
        self._cut = 0
        """Connections still open when the grace ran out (counted by the server, not a listener)."""
        self._listeners: list[Listener] = []
        self._udp: list[UdpEndpoint] = []
        self._endpoints: list[BoundEndpoint] = []
        self._concrete: list[Binding] = []
        self._started = False
        self._shutdown_task: asyncio.Task[ServerStatistics] | None = None
        self._publishing: str | None = None
        self._publish_timer: Cancellable | None = None
        self._closed: asyncio.Future[None] | None = None

    # -- public ---------------------------------------------------------------

    @property
    def endpoints(self) -> list[BoundEndpoint]:
        """Every bound socket, with the real port when 0 was asked for."""
        return list(self._endpoints)

    @property
    def timers(self) -> Timers:
        """The clock and scheduler of every deadline (set once the server started)."""
        if self._timers is None:
            raise UsageError("the server was never started")
        return self._timers

    def address(self, service: str | None = None, transport: Transport = "tcp") -> Endpoint:
        """The first bound address of a service and transport (tests use this)."""
        for ep in self._endpoints:
            if ep.transport == transport and (service is None or ep.service == service):
                return ep.address
        raise LookupError(f"no {transport} endpoint for {service or 'any service'}")

    def concrete_bindings(self) -> list[Binding]:
        """One binding per bound TCP or UDP socket, with the real host and port.

        Why: a ``serve --workers`` worker binds exactly these (with
        ``port_sharing="join"``), so port 0 and names such as ``localhost``
        are settled once, by the lead server. Unix sockets are not included:
        SO_REUSEPORT does not apply to them.
        """
        return list(self._concrete)

    def endpoint_statistics(self) -> list[tuple[BoundEndpoint, ServerStatistics]]:
        """Each endpoint's own figures (metrics label them by service and transport)."""
        self._table.report()
        found: list[tuple[BoundEndpoint, ServerStatistics]] = [
            (listener.endpoint, listener.statistics()) for listener in self._listeners
        ]
        found += [(udp.endpoint, udp.statistics()) for udp in self._udp if udp.endpoint]
        return found

    def statistics(self) -> ServerStatistics:
        """Every endpoint's figures summed: the shutdown summary."""
        summed = combine_statistics(s for _, s in self.endpoint_statistics())
        return dataclasses.replace(summed, connections_cut=summed.connections_cut + self._cut)

    async def start(self) -> list[BoundEndpoint]:
        """Bind every endpoint and start serving; raises our errors, binds nothing then."""
        if not self.bindings and not self._adopted:
            raise UsageError("a server needs at least one binding")
        timers, policy = self._begin()
        bound = (
            await bind_all(
                self.bindings, self.limits.backlog, self.port_sharing, narrate=self.narrate
            )
            if self.bindings
            else []
        )
        try:
            for b in self._adopted:
                self._serve(b, timers, policy, adopted=True)
            for b in bound:
                self._serve(b, timers, policy)
        except BaseException:
            self._stop_listening()
            close_bound(bound)
            raise
        self._start_publishing(timers)
        return self.endpoints

    async def serve_inetd(self, info: ServiceInfo, found: InetdSocket) -> None:
        """Serve what inetd passed on standard input instead of binding anything.

        ``nowait`` (a connected stream socket): the one connection, through a
        listener without a socket of its own; ``wait`` (a datagram socket): a
        ``UdpEndpoint`` reading it until the caller sees it idle. Call instead
        of ``start()``; ``shutdown()`` ends it as usual.
        """
        timers, policy = self._begin()
        sock = found.sock
        local = sock.getsockname()
        family = (
            "Unix"
            if sock.family == socket.AF_UNIX
            else ("IPv6" if sock.family == socket.AF_INET6 else "IPv4")
        )
        if found.mode == "wait":
            address = Endpoint(host=str(local[0]), port=int(local[1]))
            endpoint = BoundEndpoint(info.name, "udp", address, family)
            self._serve(
                BoundSocket(
                    Binding(info, "udp", address.host or "", address.port or 0), sock, endpoint
                ),
                timers,
                policy,
                adopted=True,
            )
            return
        if sock.family == socket.AF_UNIX:
            endpoint = BoundEndpoint(info.name, "unix", Endpoint(path=str(local or "")), family)
        else:
            endpoint = BoundEndpoint(
                info.name, "tcp", Endpoint(host=str(local[0]), port=int(local[1])), family
            )
        listener = Listener(
            info,
            None,
            endpoint,
            limits=self.limits,
            table=self._table,
            timers=timers,
            clock=self._clock,
            narrate=self.narrate,
            owns_path=False,
        )
        self._listeners.append(listener)
        self._endpoints.append(endpoint)
        listener.admit(sock, found.peer)

    @property
    def open_connections(self) -> int:
        """Stream connections open now (inetd's ``nowait`` serves until this is 0)."""
        return len(self._table)

    async def wait_connections_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every open connection to end; True if they did."""
        return await self._table.wait_closed(self.timers, timeout)

    async def wait_closed(self) -> None:
        """Wait until a shutdown has finished."""
        if self._closed is None:
            raise UsageError("the server was never started")
        await asyncio.shield(self._closed)

    def request_shutdown(self, grace: float | None = None) -> asyncio.Task[ServerStatistics]:
        """Start a graceful shutdown (idempotent); a second call with grace 0 hurries it."""
        if self._shutdown_task is None:
            # Stop accepting now, not on the task's first turn: a client that
            # connects after this call must be refused, not half-accepted.
            self._stop_listening()
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown(grace))
        elif grace == 0:
            self._abort_all()
        return self._shutdown_task

    async def shutdown(self, grace: float | None = None) -> ServerStatistics:
        """Stop accepting, let open connections finish within ``grace``, close the rest."""
        return await self.request_shutdown(grace)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    # -- internals ------------------------------------------------------------

    def _begin(self) -> tuple[Timers, ReplyPolicy]:
        """What every way of starting shares: once only, the timers, the default UDP guard."""
        if self._started:
            raise UsageError("this server was already started")
        self._started = True
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        timers = self._timers = self._timers or LoopTimers(loop)
        if self._udp_policy is None:
            # Safe by default: the UDP guards apply unless a caller chooses otherwise.
            self._udp_policy = UdpGuard(self.limits, clock=timers.now)
        return timers, self._udp_policy

    def _serve(
        self, bound: BoundSocket, timers: Timers, policy: ReplyPolicy, *, adopted: bool = False
    ) -> None:
        info, ep = bound.binding.info, bound.endpoint
        if ep.transport == "udp":
            assert info.datagram is not None
            udp = UdpEndpoint(
                f"{info.name}/udp {ep.address}",
                bound.sock,
                info.datagram(),
                self._clock,
                policy=policy,
                narrate=self.narrate,
                endpoint=ep,
                io=self._udp_io,
            )
            udp.start()
            self._udp.append(udp)
        else:
            listener = Listener(
                info,
                bound.sock,
                ep,
                limits=self.limits,
                table=self._table,
                timers=timers,
                clock=self._clock,
                narrate=self.narrate,
                owns_path=not adopted,
            )
            listener.start()
            self._listeners.append(listener)
        self._endpoints.append(ep)
        if ep.transport != "unix" and not adopted:
            self._concrete.append(
                Binding(
                    info,
                    ep.transport,
                    ep.address.host or bound.binding.host,
                    ep.address.port or bound.binding.port,
                    v6only=ep.family == "IPv6" if ep.family != "IPv4" else None,
                )
            )

    async def _shutdown(self, grace: float | None) -> ServerStatistics:
        grace = self.limits.shutdown_grace if grace is None else grace
        table, timers = self._table, self.timers
        if len(table) and grace > 0:
            log.info(
                "shutting down: waiting up to %.1f s for %d open connection(s)", grace, len(table)
            )
            await table.wait_closed(timers, grace)
        if len(table):
            if grace > 0:
                log.info("grace over: closing %d connection(s) still open", len(table))
            self._cut += len(table)
            for conn in table:
                conn.stop_reading()
                conn.close()
            await table.wait_closed(timers, CLOSE_AFTER_GRACE if grace > 0 else 0)
        self._abort_all()
        await table.wait_closed(timers, CLOSE_AFTER_GRACE)
        # Let the closed transports' callbacks run before the loop may end.
        await asyncio.sleep(0)
        stats = self.statistics()
        self._publish(final=True)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        return stats

    def _start_publishing(self, timers: Timers) -> None:
        """A ``serve --workers --metrics`` worker: publish its figures for the first process.

        Only when the environment names a directory (``runtime/metrics.py``),
        so a plain server imports nothing more and writes nothing.
        """
        if "SOCKETKIT_METRICS_DIR" not in os.environ:
            return
        from socketkit.runtime.metrics import PUBLISH_INTERVAL, publishing_directory

        self._publishing = publishing_directory()
        if self._publishing is None:
            return

        def tick() -> None:
            self._publish()
            self._publish_timer = timers.call_later(PUBLISH_INTERVAL, tick)

        tick()

    def _publish(self, *, final: bool = False) -> None:
        if self._publishing is None:
            return
        from socketkit.runtime.metrics import ServiceStatistics, publish

        if final and self._publish_timer is not None:
            self._publish_timer.cancel()
            self._publish_timer = None
        publish(
            self._publishing,
            [ServiceStatistics(e.service, e.transport, s) for e, s in self.endpoint_statistics()],
        )

    def _stop_listening(self) -> None:
        self._table.closing = True
        for listener in self._listeners:
            listener.close()
        for udp in self._udp:
            udp.close()

    def _abort_all(self) -> None:
        for conn in self._table:
            conn.abort()
