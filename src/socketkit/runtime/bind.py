"""Plan and bind every endpoint a server serves: TCP, UDP and Unix, IPv4 and IPv6.

Lecture terms: a server socket is created, given options, bound to an
address and a port, and (for TCP and Unix) set listening. Choices worth
knowing:

- every socket is bound before the server starts serving, so port 0 works
  and the bound addresses can be read back at once (no race, no sleep);
- with port 0, all the sockets of one service (IPv4, IPv6, TCP, UDP) share
  one port number, so a single ``HOST:PORT`` reaches every form;
- ``SO_REUSEADDR`` on TCP listeners, so a restart never fails on sockets
  left in TIME_WAIT; never on UDP, where Linux would let two servers split
  one port's datagrams;
- ``SO_REUSEPORT`` only when asked (``port_sharing``, for several worker
  processes): the lead server still fails on a port somebody else holds,
  and the workers then join its ports, each with sockets of its own;
- ``IPV6_V6ONLY`` off only for a lone ``::`` bind (dual stack, as socat and
  ncat do); on otherwise, so ``::`` and ``0.0.0.0`` can coexist;
- numeric addresses are resolved without the event loop's resolver, which
  on uvloop drops an IPv6 zone (``fe80::1%eth0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from socketkit.endpoints import Endpoint, Transport, join_host_port
from socketkit.errors import (
    AddressInUse,
    AddressNotAvailable,
    PermissionDenied,
    UsageError,
    translate_os_error,
)
from socketkit.protocols import DEFAULT_PORT_BASE, ServiceInfo, get_service

__all__ = [
    "Binding",
    "BoundEndpoint",
    "BoundSocket",
    "PortSharing",
    "bind_all",
    "close_bound",
    "plan_bindings",
    "unlink_socket",
]

log = logging.getLogger("socketkit.server")

PortSharing = Literal["none", "lead", "join"]
"""``none``: a port is ours alone. ``lead``: SO_REUSEPORT, but each address must
be free (a second server is refused as without it). ``join``: SO_REUSEPORT,
joining the sockets a lead server bound (a worker process)."""

_PORT_ZERO_TRIES = 50


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
            "port names one port: with several services give port_base, or ports per service"
        )
    plan: list[Binding] = []
    for info in infos:
        chosen = (ports or {}).get(
            info.name, port if port is not None else info.default_port(port_base)
        )
        if not 0 <= chosen <= 65535:
            raise UsageError(
                f"{info.name}: port {chosen} is outside 0-65535 - choose another port_base"
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


@dataclass(frozen=True)
class BoundSocket:
    """A socket ``bind_all`` bound, the binding it serves, and where it is."""

    binding: Binding
    sock: socket.socket
    endpoint: BoundEndpoint


async def bind_all(
    bindings: Sequence[Binding],
    backlog: int,
    sharing: PortSharing = "none",
    *,
    narrate: bool = False,
) -> list[BoundSocket]:
    """Bind every binding (all or nothing): raises our errors and leaves nothing bound.

    ``narrate`` logs each socket call at INFO, the lecture's server recipe
    (socket, setsockopt, bind, listen) on a real socket, for ``serve -v``.
    """
    bound: list[BoundSocket] = []
    say = _Narrator() if narrate and log.isEnabledFor(logging.INFO) else None
    try:
        for group in _group(bindings):
            bound += [BoundSocket(*t) for t in await _bind_group(group, backlog, sharing, say)]
    except BaseException:
        close_bound(bound)
        raise
    return bound


def close_bound(bound: Sequence[BoundSocket]) -> None:
    """Close sockets ``bind_all`` returned, removing Unix socket files."""
    for b in bound:
        b.sock.close()
        if b.endpoint.address.path:
            unlink_socket(b.endpoint.address.path)


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
    where = join_host_port(binding.host, binding.port)
    try:
        infos = await _getaddrinfo(binding.host or None, binding.port, socktype)
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
        raise AddressNotAvailable(
            f"cannot bind {where}: it has no IPv4 or IPv6 address - give an address of this host"
        )
    return planned


async def _getaddrinfo(host: str | None, port: int, socktype: int) -> list[Any]:
    """Numeric hosts without the loop's resolver (uvloop drops an IPv6 zone); names with it."""
    flags = socket.AI_PASSIVE
    if host is not None:
        try:
            return socket.getaddrinfo(
                host, port, type=socktype, flags=flags | socket.AI_NUMERICHOST
            )
        except socket.gaierror:
            pass  # a name, not a number: ask the resolver (it may block, so not here)
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socktype, flags=flags)


async def _bind_group(
    group: list[Binding],
    backlog: int,
    sharing: PortSharing = "none",
    say: _Narrator | None = None,
) -> list[tuple[Binding, socket.socket, BoundEndpoint]]:
    if group[0].transport == "unix":
        return [_bind_unix(b, backlog, say) for b in group]
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
                sock, ep = _bind_inet(
                    p, port, backlog, dual_stack=not has_v4, sharing=sharing, say=say
                )
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
    p: _Planned,
    port: int,
    backlog: int,
    *,
    dual_stack: bool,
    sharing: PortSharing = "none",
    say: _Narrator | None = None,
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
    label = f"{p.binding.info.name}/{p.binding.transport}"
    try:
        sock = socket.socket(p.family, p.socktype)
    except OSError as exc:
        raise translate_os_error(exc, action="bind", where=where) from exc
    if say:
        say.created(label, sock)
    try:
        family = "IPv4"
        if p.socktype == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if say:
                say(
                    label,
                    "setsockopt(SOL_SOCKET, SO_REUSEADDR, 1): restart at once, "
                    "even while old connections wait in TIME_WAIT",
                )
        if sharing != "none":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if say:
                say(
                    label,
                    "setsockopt(SOL_SOCKET, SO_REUSEPORT, 1): worker processes share the port",
                )
        if p.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
            family = "IPv4+IPv6" if dual else "IPv6"
            if say:
                say(
                    label,
                    f"setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, {0 if dual else 1}): "
                    + ("IPv4 clients too, as ::ffff:a.b.c.d" if dual else "IPv6 clients only"),
                )
        _bind_listen(sock, sockaddr, backlog, label, say)
    except OSError as exc:
        sock.close()
        raise translate_os_error(exc, action="bind", where=where) from exc
    bound_host, bound_port = sock.getsockname()[:2]
    transport: Transport = "tcp" if p.socktype == socket.SOCK_STREAM else "udp"
    ep = BoundEndpoint(
        p.binding.info.name, transport, Endpoint(host=bound_host, port=bound_port), family
    )
    return sock, ep


def _bind_listen(
    sock: socket.socket, address: Any, backlog: int, label: str, say: _Narrator | None
) -> None:
    """bind(), listen() for a stream socket, non-blocking: the calls every socket gets, narrated."""
    sock.bind(address)
    if say:
        say.bind(label, address, sock)
    if sock.type == socket.SOCK_STREAM:
        sock.listen(backlog)
        if say:
            say.listen(label, backlog)
    sock.setblocking(False)


class _Narrator:
    """Says each socket call as ``serve -v`` shows it, in the order they are made."""

    def __call__(self, label: str, text: str) -> None:
        log.info("%s: %s", label, text)

    def created(self, label: str, sock: socket.socket) -> None:
        kind = socket.SocketKind(sock.type).name
        what = {"SOCK_STREAM": "a byte stream (TCP)", "SOCK_DGRAM": "datagrams (UDP)"}
        if sock.family == socket.AF_UNIX:
            what["SOCK_STREAM"] = "a byte stream on this machine"
        self(
            label,
            f"socket({socket.AddressFamily(sock.family).name}, {kind}) -> fd {sock.fileno()}: "
            f"an endpoint for {what.get(kind, kind)}",
        )

    def bind(self, label: str, asked: Any, sock: socket.socket) -> None:
        got = sock.getsockname()
        shown = asked if isinstance(asked, str) else tuple(asked[:2])
        chosen = (
            "" if isinstance(asked, str) or asked[1] else f" (port 0: the kernel chose {got[1]})"
        )
        self(label, f"bind({shown!r}): the address and port clients will use{chosen}")

    def listen(self, label: str, backlog: int) -> None:
        self(
            label,
            f"listen(backlog={backlog}): the kernel completes handshakes and queues up to "
            f"{backlog} connections until accept()",
        )


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


def _bind_unix(
    binding: Binding, backlog: int, say: _Narrator | None = None
) -> tuple[Binding, socket.socket, BoundEndpoint]:
    path = binding.path
    if not path:
        raise UsageError("a Unix socket binding needs a path")
    where = f"unix:{path}"
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    label = f"{binding.info.name}/unix"
    if say:
        say.created(label, sock)
    try:
        _bind_listen(sock, path, backlog, label, say)
    except OSError as exc:
        sock.close()
        directory = os.path.dirname(os.path.abspath(path))
        if exc.errno == errno.ENOENT and not os.path.isdir(directory):
            raise UsageError(
                f"cannot bind {where}: its directory does not exist - "
                f"create it first (mkdir -p {directory})"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            # ENOENT with the directory there: a file system that makes no files (/proc)
            raise PermissionDenied(
                f"cannot bind {where}: no permission to create a socket file in {directory} "
                "- choose a directory you can write to (for example /tmp or $XDG_RUNTIME_DIR)"
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
        unlink_socket(path)
        return
    except OSError:
        return
    finally:
        probe.close()
    raise AddressInUse(f"address already in use: unix:{path} - another server listens there")


def unlink_socket(path: str) -> None:
    """Remove a Unix socket file (never another kind of file); quiet when it is gone."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
