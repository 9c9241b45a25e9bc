"""systemd socket activation, readiness notification and inetd descriptors.

Three small contracts a service manager offers a daemon, each read straight
from the environment or a descriptor, none needing the server's internals:

- ``inherited_sockets()``: sockets passed with ``LISTEN_FDS``/``LISTEN_PID``/
  ``LISTEN_FDNAMES`` (sd_listen_fds(3)): descriptors 3, 4, ... in order,
  named by the unit's ``FileDescriptorName=``.
- ``Notifier``: ``READY=1``, ``STATUS=``, ``STOPPING=1`` and ``WATCHDOG=1``
  datagrams to ``NOTIFY_SOCKET`` (sd_notify(3)), and the watchdog interval
  from ``WATCHDOG_USEC``/``WATCHDOG_PID``.
- ``inetd_socket()``: what inetd (xinetd, the BSD inetds) hands on standard
  input: a connected stream socket (``nowait``) or a datagram socket
  (``wait``).

sd_notify is written by hand here (about twenty lines): the protocol is one
datagram to one Unix socket, and the PyPI ``sdnotify`` package has not been
maintained since 2017, while ``systemd-python`` needs libsystemd headers to
build. Linux only; elsewhere nothing is inherited and notifications are no-ops.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from socketkit.endpoints import Endpoint, Transport
from socketkit.errors import UsageError
from socketkit.protocols import ServiceInfo, service_names
from socketkit.runtime.bind import Binding, BoundEndpoint, BoundSocket

__all__ = [
    "SD_LISTEN_FDS_START",
    "InetdSocket",
    "InheritedSocket",
    "Notifier",
    "adopt_sockets",
    "inetd_socket",
    "inherited_sockets",
]

SD_LISTEN_FDS_START = 3
"""The first passed descriptor (after stdin, stdout, stderr)."""


@dataclass
class InheritedSocket:
    """One passed socket.

    ``name`` is the unit's ``FileDescriptorName=`` (systemd's default is the
    socket unit's name; ``"unknown"`` when LISTEN_FDNAMES is absent, as
    sd_listen_fds_with_names does). ``listening`` is SO_ACCEPTCONN: True for a
    stream listener (``Accept=no``), False for a datagram socket or an accepted
    connection (``Accept=yes``).
    """

    fd: int
    name: str
    sock: socket.socket
    family: socket.AddressFamily
    type: socket.SocketKind
    listening: bool
    address: Any


def inherited_sockets(
    environ: MutableMapping[str, str] | None = None, *, unset: bool = True
) -> list[InheritedSocket]:
    """The sockets systemd (or systemd-socket-activate) passed to this process.

    Empty when ``LISTEN_FDS`` is unset, malformed, or ``LISTEN_PID`` names
    another process (the variables were inherited by a child, not meant for
    it). With ``unset=True`` the three variables are removed from ``environ``
    (``os.environ`` by default), as sd_listen_fds(unset_environment=1) does,
    so children we start do not adopt them. Each descriptor gets FD_CLOEXEC.
    A descriptor that is not a socket is skipped (its fd left open as found).
    """
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    fds_text = env.get("LISTEN_FDS")
    pid_text = env.get("LISTEN_PID")
    names_text = env.get("LISTEN_FDNAMES")
    if unset:
        for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            env.pop(key, None)
    if fds_text is None or pid_text is None:
        return []
    try:
        count, pid = int(fds_text), int(pid_text)
    except ValueError:
        return []
    if pid != os.getpid() or count <= 0:
        return []
    names = names_text.split(":") if names_text else []
    found: list[InheritedSocket] = []
    for index in range(count):
        fd = SD_LISTEN_FDS_START + index
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
            fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
        except OSError:
            continue
        sock = socket.socket(fileno=fd)
        name = names[index] if index < len(names) and names[index] else "unknown"
        found.append(
            InheritedSocket(
                fd=fd,
                name=name,
                sock=sock,
                family=sock.family,
                type=sock.type,
                listening=_listening(sock),
                address=_address(sock),
            )
        )
    return found


def _listening(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


def _address(sock: socket.socket) -> Any:
    try:
        return sock.getsockname()
    except OSError:
        return None


class Notifier:
    """sd_notify(3): tell the service manager we are ready, busy, stopping, alive.

    Built from ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
    namespace). Without it every method is a no-op returning False, so
    ``serve`` calls them unconditionally. Send errors are swallowed (returning
    False): a manager that went away must not stop the service.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        target = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if target.startswith("@"):
            self._address = b"\x00" + target[1:].encode()
        elif target.startswith("/"):
            self._address = target
        self._watchdog = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True when it was sent."""
        if self._address is None or not hasattr(socket, "AF_UNIX"):
            return False
        message = "\n".join(a.replace("\n", " ") for a in assignments).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` pings (half of WatchdogSec=), or None when off."""
        return self._watchdog


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = env.get("WATCHDOG_PID")
    if pid_text is not None:
        try:
            if int(pid_text) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000 / 2


@dataclass
class InetdSocket:
    """Standard input as inetd passed it.

    ``mode`` is ``"nowait"`` for a connected stream socket (one connection,
    one process) and ``"wait"`` for a datagram socket (the process reads the
    socket itself; inetd waits for it to exit). ``peer`` is the stream
    client's address, None for datagrams.
    """

    sock: socket.socket
    mode: Literal["nowait", "wait"]
    family: socket.AddressFamily
    type: socket.SocketKind
    peer: Any


def inetd_socket(fd: int = 0) -> InetdSocket | None:
    """The socket inetd put on ``fd`` (standard input), or None if it is not a socket.

    A stream socket that is listening (inetd's ``wait`` for stream services,
    rarely used) is reported as None too: only the two common modes are
    supported. The descriptor is duplicated, so closing the returned socket
    leaves ``fd`` itself open for the caller to manage.
    """
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    if sock.type == socket.SOCK_DGRAM:
        return InetdSocket(sock, "wait", sock.family, sock.type, None)
    if sock.type == socket.SOCK_STREAM and not _listening(sock):
        try:
            peer = sock.getpeername()
        except OSError:
            sock.close()
            return None
        return InetdSocket(sock, "nowait", sock.family, sock.type, peer)
    sock.close()
    return None


# -- adopting inherited sockets into the server ---------------------------------


def adopt_sockets(
    found: Sequence[InheritedSocket], services: Sequence[ServiceInfo]
) -> list[BoundSocket]:
    """Turn passed sockets into ``BoundSocket``s the ``Server`` serves as its own.

    Which service a socket serves: its name (``FileDescriptorName=echo``; a
    unit's default name ``socketkit-echo.socket`` works too) when that names
    one of ``services``; otherwise the next of ``services`` in order (all of
    them, when only one service is given). Why not guess from the port: the
    operator chose the port, and port 7 on the real network is port 10007 on
    a test box. A socket that cannot be served (a connected socket from
    ``Accept=yes``, a Unix datagram socket, a service without that
    transport) is a ``UsageError`` naming it, before anything is served.
    """
    by_name = {info.name: info for info in services}
    unnamed = 0
    adopted: list[BoundSocket] = []
    for inherited in found:
        info = by_name.get(_service_name(inherited.name))
        if info is None:
            if inherited.name != "unknown" and _service_name(inherited.name) in _all_names():
                raise UsageError(
                    f"socket fd {inherited.fd} is named {inherited.name!r}, a service this "
                    f"serve was not asked to run - add it to the service list"
                )
            if len(services) == 1:
                info = services[0]
            elif unnamed < len(services):
                info = services[unnamed]
            else:
                raise UsageError(
                    f"socket fd {inherited.fd} ({inherited.name}) names no service and the "
                    f"service list has only {len(services)} - set FileDescriptorName= to a "
                    "service name"
                )
            unnamed += 1
        adopted.append(_adopt(inherited, info))
    return adopted


def _service_name(name: str) -> str:
    """``echo`` for ``echo``, ``socketkit-echo.socket`` and ``echo.socket``."""
    return name.removesuffix(".socket").rpartition("-")[2]


def _all_names() -> set[str]:
    return set(service_names())


def _adopt(inherited: InheritedSocket, info: ServiceInfo) -> BoundSocket:
    sock, where = inherited.sock, f"socket fd {inherited.fd} ({inherited.name})"
    transport: Transport
    if sock.type == socket.SOCK_STREAM and inherited.listening:
        transport = "unix" if sock.family == socket.AF_UNIX else "tcp"
    elif sock.type == socket.SOCK_DGRAM and sock.family in (socket.AF_INET, socket.AF_INET6):
        transport = "udp"
    else:
        raise UsageError(
            f"{where} is a {socket.SocketKind(sock.type).name} "
            f"{socket.AddressFamily(sock.family).name} socket"
            f"{'' if inherited.listening else ' that is not listening'}: serve adopts "
            "listening TCP and Unix stream sockets and UDP sockets (use Accept=no)"
        )
    if (transport == "udp" and info.datagram is None) or (
        transport != "udp" and info.stream is None
    ):
        raise UsageError(f"{where}: {info.name} has no {transport.upper()} form")
    sock.setblocking(False)
    address = inherited.address
    if transport == "unix":
        path = address if isinstance(address, str) else os.fsdecode(address or b"")
        binding = Binding(info, "unix", path=path)
        endpoint = BoundEndpoint(info.name, "unix", Endpoint(path=path), "Unix")
    else:
        host, port = str(address[0]), int(address[1])
        family = "IPv4"
        if sock.family == socket.AF_INET6:
            v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            family = "IPv6" if v6only else "IPv4+IPv6"
        binding = Binding(info, transport, host, port)
        endpoint = BoundEndpoint(info.name, transport, Endpoint(host=host, port=port), family)
    return BoundSocket(binding, sock, endpoint)
