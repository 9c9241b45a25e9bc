"""The one server runtime: bind every endpoint, accept, enforce limits, shut down.

Lecture terms: a server socket is created, bound to an address and port,
set listening, and then accepts clients, many at once here without a thread
per client (one event loop multiplexes them, the lecture's "select"
challenge).

Choices worth knowing:

- every socket is bound before ``start()`` returns, so port 0 works and the
  bound addresses can be read back at once (no race, no sleep);
- with port 0, all the sockets of one service (IPv4, IPv6, TCP, UDP) share
  one port number, so a single ``HOST:PORT`` reaches every form;
- ``SO_REUSEADDR`` on TCP listeners, so a restart never fails on sockets
  left in TIME_WAIT; never on UDP, where Linux would let two servers split
  one port's datagrams;
- ``SO_REUSEPORT`` only when asked (``port_sharing``, for ``serve --workers``):
  the lead server still fails on a port somebody else holds, and the
  workers then join its ports, each with sockets of its own;
- ``IPV6_V6ONLY`` off only for a lone ``::`` bind (dual stack, as socat and
  ncat do); on otherwise, so ``::`` and ``0.0.0.0`` can coexist;
- our own accept loop instead of ``loop.create_server``: the connection caps
  are checked at accept time (asyncio accepts up to ``backlog`` sockets before
  any protocol callback runs), and accept errors such as EMFILE back off for
  100 ms instead of spinning a core;
- graceful shutdown: stop accepting, give open connections ``shutdown_grace``
  seconds to finish, then close them after flushing what they were owed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from socketkit.endpoints import Endpoint, Transport, format_sockaddr, join_host_port
from socketkit.errors import AddressInUse, UsageError, translate_os_error
from socketkit.protocols import DEFAULT_PORT_BASE, ServiceInfo, get_service
from socketkit.runtime.datagram import DatagramEndpoint, ReplyPolicy
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.limits import Limits
from socketkit.runtime.splice import MirrorConnection
from socketkit.runtime.stats import Counters, ServerStatistics
from socketkit.runtime.stream import StreamConnection
from socketkit.runtime.udp_drain import DrainingDatagramEndpoint

__all__ = ["Binding", "BoundEndpoint", "PortSharing", "Server", "plan_bindings"]

PortSharing = Literal["none", "lead", "join"]
"""``none``: a port is ours alone. ``lead``: SO_REUSEPORT, but each address must
be free (a second server is refused as without it). ``join``: SO_REUSEPORT,
joining the sockets a lead server bound (a ``serve --workers`` worker)."""

log = logging.getLogger("socketkit.server")

_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
Connection = StreamConnection | MirrorConnection
"""An accepted stream connection, as the server tracks it."""

_MIRROR_MIN_CHUNK = 64 * 1024
"""Below this --chunk the lab wants to see each small recv: no fast path then."""

_ACCEPT_BACKOFF = 0.1
_WARNING_EVERY = 5.0
"""Seconds between repeated warnings about the same accept trouble."""
_PORT_ZERO_TRIES = 50
_CLOSE_AFTER_GRACE = 1.0


@dataclass(frozen=True)
class Binding:
    """One service on one transport at one address (``path`` for Unix)."""

    service: str | ServiceInfo
    transport: Transport
    host: str = "127.0.0.1"
    port: int = 0
    path: str | None = None
    v6only: bool | None = None
    """For an IPv6 address: None lets the server choose (dual stack for a lone
    ``::``); workers repeat the lead server's choice through it."""

    @property
    def info(self) -> ServiceInfo:
        return self.service if isinstance(self.service, ServiceInfo) else get_service(self.service)


@dataclass(frozen=True)
class BoundEndpoint:
    """A socket that is bound and serving."""

    service: str
    transport: Transport
    address: Endpoint
    family: str
    """``IPv4``, ``IPv6``, ``IPv4+IPv6`` (dual stack) or ``Unix``."""

    def __str__(self) -> str:
        return f"{self.service} {self.transport} {self.address}"


def plan_bindings(
    services: Sequence[str | ServiceInfo],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    port_base: int = DEFAULT_PORT_BASE,
    ports: dict[str, int] | None = None,
    tcp: bool = True,
    udp: bool = True,
    unix: str | None = None,
) -> list[Binding]:
    """Bindings for ``serve``: each service at base + well-known port unless told.

    ``port`` applies when one service is served; ``ports`` overrides per
    service name. ``unix`` is a path for one service, or a directory holding
    ``NAME.sock`` for several.
    """
    infos = [s if isinstance(s, ServiceInfo) else get_service(s) for s in services]
    if port is not None and len(infos) > 1:
        raise UsageError(
            "--port names one port: with several services use --port-base or NAME=PORT"
        )
    plan: list[Binding] = []
    for info in infos:
        chosen = (ports or {}).get(
            info.name, port if port is not None else info.default_port(port_base)
        )
        if not 0 <= chosen <= 65535:
            raise UsageError(
                f"{info.name}: port {chosen} is outside 0-65535 - choose another --port-base"
            )
        if tcp and info.stream is not None:
            plan.append(Binding(info, "tcp", host, chosen))
        if udp and info.datagram is not None:
            plan.append(Binding(info, "udp", host, chosen))
        if unix is not None and info.stream is not None:
            path = unix if len(infos) == 1 else os.path.join(unix, f"{info.name}.sock")
            plan.append(Binding(info, "unix", path=path))
    if not plan:
        raise UsageError("nothing to serve: the chosen services have none of the chosen transports")
    return plan


class _Listener:
    """A listening stream socket and the connections it accepted."""

    def __init__(
        self, server: Server, info: ServiceInfo, sock: socket.socket, endpoint: BoundEndpoint
    ) -> None:
        self.server = server
        self.info = info
        self.sock = sock
        self.endpoint = endpoint
        self.label = f"{info.name}/{endpoint.transport} {endpoint.address}"
        self.limits = server.limits
        self.counters = server.counters
        self.read_view = memoryview(bytearray(server.limits.read_chunk))
        """The receive buffer every connection of this listener shares (see stream.py)."""
        self.narrate = server.narrate
        self._loop = asyncio.get_running_loop()
        self._backoff: asyncio.TimerHandle | None = None
        self._reading = False
        self._last_warning = -_WARNING_EVERY

    def start(self) -> None:
        self._loop.add_reader(self.sock.fileno(), self._on_readable)
        self._reading = True

    def close(self) -> None:
        if self._backoff is not None:
            self._backoff.cancel()
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False
        self.sock.close()
        if self.endpoint.transport == "unix" and self.endpoint.address.path:
            _unlink_socket(self.endpoint.address.path)

    def _on_readable(self) -> None:
        for _ in range(self.limits.accept_batch):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                    self._back_off(exc)
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                log.warning("%s: accept failed: %s", self.label, exc)
                self.counters.accept_errors += 1
                return
            self.server._admit(self, conn, addr)

    def _back_off(self, exc: OSError) -> None:
        self.counters.accept_errors += 1
        now = self._loop.time()
        quiet = now - self._last_warning < _WARNING_EVERY
        if not quiet:
            self._last_warning = now
        (log.debug if quiet else log.warning)(
            "%s: cannot accept (%s); pausing %.0f ms - raise the file limit (ulimit -n) "
            "or lower --max-connections",
            self.label,
            exc.strerror,
            _ACCEPT_BACKOFF * 1000,
        )
        self._loop.remove_reader(self.sock.fileno())
        self._reading = False
        self._backoff = self._loop.call_later(_ACCEPT_BACKOFF, self.start)

    def connection_closed(self, conn: Connection) -> None:
        self.server._release(conn)


class Server:
    """Serves registered services on TCP, UDP and Unix sockets.

    Use ``async with Server(bindings) as server:`` (binds on entry, shuts down
    gracefully on exit), or ``start()``, ``wait_closed()`` and ``shutdown()``.
    """

    def __init__(
        self,
        bindings: Sequence[Binding],
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        narrate: bool = False,
        udp_policy: ReplyPolicy | None = None,
        port_sharing: PortSharing = "none",
    ) -> None:
        if not bindings:
            raise UsageError("a server needs at least one binding")
        if port_sharing != "none" and not hasattr(socket, "SO_REUSEPORT"):
            raise UsageError(
                "sharing a port between processes needs SO_REUSEPORT, which this system "
                "lacks - run one process (no --workers)"
            )
        self.port_sharing = port_sharing
        self.bindings = list(bindings)
        self.limits = limits or Limits()
        self.counters = Counters()
        self.narrate = narrate
        self._clock = clock
        # Safe by default: the UDP guards apply unless a caller chooses otherwise.
        self._udp_policy = udp_policy if udp_policy is not None else UdpGuard(self.limits)
        self._listeners: list[_Listener] = []
        self._udp: list[Callable[[], None]] = []
        """How to close each UDP endpoint."""
        self._endpoints: list[BoundEndpoint] = []
        self._concrete: list[Binding] = []
        self._active: set[Connection] = set()
        self._per_source: Counter[str] = Counter()
        self._pending: set[asyncio.Task[None]] = set()
        self._started = False
        self._shutdown_task: asyncio.Task[ServerStatistics] | None = None
        self._closed: asyncio.Future[None] | None = None

    # -- public ---------------------------------------------------------------

    @property
    def endpoints(self) -> list[BoundEndpoint]:
        """Every bound socket, with the real port when 0 was asked for."""
        return list(self._endpoints)

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

    def statistics(self) -> ServerStatistics:
        self.counters.connections_active = len(self._active)
        for conn in self._active:
            if isinstance(conn, MirrorConnection):
                conn.report()  # the mirror counts bytes lazily (see its data_received)
        return self.counters.snapshot()

    async def start(self) -> list[BoundEndpoint]:
        """Bind every endpoint and start serving; raises our errors, binds nothing then."""
        if self._started:
            raise UsageError("this server was already started")
        self._started = True
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        sockets: list[tuple[Binding, socket.socket, BoundEndpoint]] = []
        try:
            for group in _group(self.bindings):
                sockets += await _bind_group(group, self.limits.backlog, self.port_sharing)
        except BaseException:
            for _, sock, ep in sockets:
                sock.close()
                if ep.address.path:
                    _unlink_socket(ep.address.path)
            raise
        for binding, sock, ep in sockets:
            info = binding.info
            if ep.transport == "udp":
                assert info.datagram is not None
                label = f"{info.name}/udp {ep.address}"
                if sys.platform == "win32":
                    # The Proactor loop has no add_reader: asyncio's own endpoint.
                    proto = DatagramEndpoint(
                        label,
                        info.datagram(),
                        self.counters,
                        self._clock,
                        policy=self._udp_policy,
                        narrate=self.narrate,
                    )
                    transport, _ = await loop.create_datagram_endpoint(_returning(proto), sock=sock)
                    self._udp.append(transport.close)
                else:
                    # Every ready datagram per wake-up: asyncio's own endpoint
                    # pays a poll round per datagram (5-8x slower under load).
                    drain = DrainingDatagramEndpoint(
                        label,
                        sock,
                        info.datagram(),
                        self.counters,
                        self._clock,
                        policy=self._udp_policy,
                        narrate=self.narrate,
                    )
                    drain.start()
                    self._udp.append(drain.close)
            else:
                listener = _Listener(self, info, sock, ep)
                listener.start()
                self._listeners.append(listener)
            self._endpoints.append(ep)
            if ep.transport != "unix":
                self._concrete.append(
                    Binding(
                        info,
                        ep.transport,
                        ep.address.host or binding.host,
                        ep.address.port or binding.port,
                        v6only=ep.family == "IPv6" if ep.family != "IPv4" else None,
                    )
                )
        return self.endpoints

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

    async def _shutdown(self, grace: float | None) -> ServerStatistics:
        grace = self.limits.shutdown_grace if grace is None else grace
        if self._active and grace > 0:
            log.info(
                "shutting down: waiting up to %.1f s for %d open connection(s)",
                grace,
                len(self._active),
            )
            await _wait_all(self._active, grace)
        for conn in list(self._active):
            conn.stop_reading()
            conn.close()
        await _wait_all(self._active, _CLOSE_AFTER_GRACE if grace > 0 else 0)
        self._abort_all()
        await _wait_all(self._active, _CLOSE_AFTER_GRACE)
        # Let the closed transports' callbacks run before the loop may end.
        await asyncio.sleep(0)
        stats = self.statistics()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        return stats

    def _stop_listening(self) -> None:
        for listener in self._listeners:
            listener.close()
        for close in self._udp:
            close()
        for task in list(self._pending):
            task.cancel()

    def _abort_all(self) -> None:
        for conn in list(self._active):
            conn.abort()

    def _admit(self, listener: _Listener, conn: socket.socket, addr: Any) -> None:
        limits = self.limits
        peer = format_sockaddr(addr)
        source = "unix" if listener.endpoint.transport == "unix" else peer.rpartition(":")[0]
        if self._shutdown_task is not None:
            conn.close()
            return
        if len(self._active) >= limits.max_connections:
            why = f"{limits.max_connections} connections open (--max-connections)"
        elif self._per_source[source] >= limits.max_connections_per_source:
            why = (
                f"{limits.max_connections_per_source} connections open from {source} "
                "(--max-per-source)"
            )
        else:
            why = ""
        if why:
            self.counters.connections_refused += 1
            log.warning("%s: refused %s: %s", listener.label, peer, why)
            conn.close()
            return
        conn.setblocking(False)
        stream = listener.info.stream
        assert stream is not None
        handler: Connection
        try:
            if (
                getattr(stream, "mirrors_input", False)
                and not self.narrate
                and limits.read_chunk >= _MIRROR_MIN_CHUNK
            ):
                # The protocol says its output is its input (echo): the loop's
                # own transport writes each chunk straight back, no protocol
                # object in between (about a fifth less CPU per request).
                handler = MirrorConnection(listener, peer, source)
            else:
                handler = StreamConnection(
                    listener, stream(now=self._clock()), peer, source, self._clock
                )
        except Exception:
            log.exception("%s: could not set up the connection from %s", listener.label, peer)
            conn.close()
            return
        self._active.add(handler)
        self._per_source[source] += 1
        self.counters.connections_served += 1
        task = asyncio.get_running_loop().create_task(self._connect(conn, handler))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(self, conn: socket.socket, handler: Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: handler, conn)
        except (OSError, asyncio.CancelledError) as exc:
            conn.close()
            if isinstance(handler, MirrorConnection):
                handler.report()  # it may have echoed already; counted before it leaves _active
            self._release(handler)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _release(self, conn: Connection) -> None:
        if conn in self._active:
            self._active.discard(conn)
            self._per_source[conn.source] -= 1
            if self._per_source[conn.source] <= 0:
                del self._per_source[conn.source]
            if not conn.closed.done():
                conn.closed.set_result(None)


def _returning(proto: DatagramEndpoint) -> Callable[[], DatagramEndpoint]:
    return lambda: proto


async def _wait_all(conns: set[Connection], timeout: float) -> None:
    waiting = [c.closed for c in conns if not c.closed.done()]
    if waiting and timeout > 0:
        await asyncio.wait(waiting, timeout=timeout)


def _group(bindings: Sequence[Binding]) -> list[list[Binding]]:
    """Bindings that must share one port number: same service, host and port."""
    groups: dict[tuple[str, str, int, str | None], list[Binding]] = {}
    for b in bindings:
        key = (
            (b.info.name, b.host, b.port, b.path) if b.transport != "unix" else ("", "", 0, b.path)
        )
        groups.setdefault(key, []).append(b)
    return list(groups.values())


@dataclass
class _Planned:
    binding: Binding
    family: int
    sockaddr: Any
    socktype: int = field(default=socket.SOCK_STREAM)


async def _resolve(binding: Binding) -> list[_Planned]:
    socktype = socket.SOCK_DGRAM if binding.transport == "udp" else socket.SOCK_STREAM
    loop = asyncio.get_running_loop()
    where = join_host_port(binding.host, binding.port)
    try:
        infos = await loop.getaddrinfo(
            binding.host or None,
            binding.port,
            type=socktype,
            flags=socket.AI_PASSIVE,
        )
    except OSError as exc:
        raise translate_os_error(exc, action="bind", where=where) from exc
    seen: set[Any] = set()
    planned = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6) or sockaddr[:2] in seen:
            continue
        seen.add(sockaddr[:2])
        planned.append(_Planned(binding, family, sockaddr, socktype))
    if not planned:
        raise AddressInUse(f"cannot bind {where}: no IPv4 or IPv6 address for it")
    return planned


async def _bind_group(
    group: list[Binding], backlog: int, sharing: PortSharing = "none"
) -> list[tuple[Binding, socket.socket, BoundEndpoint]]:
    if group[0].transport == "unix":
        return [_bind_unix(b, backlog) for b in group]
    planned: list[_Planned] = []
    for binding in group:
        planned += await _resolve(binding)
    # Stream sockets first: when port 0 was asked for, the first one picks the port.
    planned.sort(key=lambda p: p.socktype != socket.SOCK_STREAM)
    has_v4 = any(p.family == socket.AF_INET for p in planned)
    wanted_port = group[0].port
    tries = _PORT_ZERO_TRIES if wanted_port == 0 else 1
    for attempt in range(tries):
        bound: list[tuple[Binding, socket.socket, BoundEndpoint]] = []
        port = wanted_port
        try:
            for p in planned:
                sock, ep = _bind_inet(p, port, backlog, dual_stack=not has_v4, sharing=sharing)
                bound.append((p.binding, sock, ep))
                port = ep.address.port or port
            return bound
        except AddressInUse:
            for _, sock, _ in bound:
                sock.close()
            if attempt == tries - 1 or not bound:
                raise
    raise AssertionError("unreachable")


def _bind_inet(
    p: _Planned, port: int, backlog: int, *, dual_stack: bool, sharing: PortSharing = "none"
) -> tuple[socket.socket, BoundEndpoint]:
    host = p.sockaddr[0]
    sockaddr = (host, port, *p.sockaddr[2:])
    where = join_host_port(host, port)
    dual = p.family == socket.AF_INET6 and _dual_stack(p, dual_stack)
    if sharing == "lead":
        # Linux picks a port for a SO_REUSEPORT UDP socket that may already
        # serve another program of ours: let a plain socket pick it instead.
        port = _check_free(p, sockaddr, where, dual=dual)
        sockaddr = (host, port, *p.sockaddr[2:])
        where = join_host_port(host, port)
    try:
        sock = socket.socket(p.family, p.socktype)
    except OSError as exc:
        raise translate_os_error(exc, action="bind", where=where) from exc
    try:
        family = "IPv4"
        if p.socktype == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sharing != "none":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if p.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
            family = "IPv4+IPv6" if dual else "IPv6"
        sock.bind(sockaddr)
        if p.socktype == socket.SOCK_STREAM:
            sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise translate_os_error(exc, action="bind", where=where) from exc
    bound_host, bound_port = sock.getsockname()[:2]
    transport: Transport = "tcp" if p.socktype == socket.SOCK_STREAM else "udp"
    ep = BoundEndpoint(
        p.binding.info.name, transport, Endpoint(host=bound_host, port=bound_port), family
    )
    return sock, ep


def _dual_stack(p: _Planned, lone_v6: bool) -> bool:
    """Whether an IPv6 socket also takes IPv4: a lone ``::``, or what the lead chose."""
    if p.binding.v6only is not None:
        return not p.binding.v6only
    return lone_v6 and p.sockaddr[0] == "::"


def _check_free(p: _Planned, sockaddr: Any, where: str, *, dual: bool) -> int:
    """The port, free for us: raise AddressInUse when another socket holds it.

    Why: with SO_REUSEPORT a second server of the same user would silently
    split this port's traffic with the first; a bind without it (and without
    listen, so no client is ever queued on it) keeps "address already in
    use" meaning what it says. For port 0 that plain bind picks the port.
    """
    probe = socket.socket(p.family, p.socktype)
    try:
        if p.socktype == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if p.family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
        probe.bind(sockaddr)
        port: int = probe.getsockname()[1]
    except OSError as exc:
        raise translate_os_error(exc, action="bind", where=where) from exc
    finally:
        probe.close()
    return port


def _bind_unix(binding: Binding, backlog: int) -> tuple[Binding, socket.socket, BoundEndpoint]:
    path = binding.path
    if not path:
        raise UsageError("a Unix socket binding needs a path")
    where = f"unix:{path}"
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ENOENT:
            raise UsageError(
                f"cannot bind {where}: its directory does not exist - "
                f"create it first (mkdir -p {os.path.dirname(path) or '.'})"
            ) from exc
        raise translate_os_error(exc, action="bind", where=where) from exc
    return binding, sock, BoundEndpoint(binding.info.name, "unix", Endpoint(path=path), "Unix")


def _remove_stale_socket(path: str) -> None:
    """A socket file nobody listens on is left from a crash: remove it; refuse otherwise."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AddressInUse(f"cannot bind unix:{path}: a file that is not a socket is there")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        _unlink_socket(path)
        return
    except OSError:
        return
    finally:
        probe.close()
    raise AddressInUse(f"address already in use: unix:{path} - another server listens there")


def _unlink_socket(path: str) -> None:
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
