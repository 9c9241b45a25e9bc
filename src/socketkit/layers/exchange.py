"""The exchange whose packets we show: the lab's echo client, every call timed.

Plain blocking sockets on purpose: each application call (connect, sendall,
recv, shutdown, close) is one line of the lecture, and recording when it
started and ended and which stream bytes it moved is what lets the timeline
say "this packet is your sendall of 5 bytes". Times are wall-clock
(``time.time``), the clock the kernel stamps captured packets with.

TCP: connect, sendall the message, recv (``chunk`` bytes at a time) until the
echo is complete, shutdown(SHUT_WR) so our FIN goes out, recv until the
server's FIN (EOF), close. UDP: connect (no packet: it only fixes the peer),
send one datagram, recvmsg one reply.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field

from socketkit.endpoints import Endpoint, format_sockaddr, join_host_port
from socketkit.errors import TimedOut, UsageError, translate_os_error
from socketkit.layers.rootless import SocketView, inspect_socket

__all__ = ["AppCall", "ExchangeResult", "run_exchange"]


@dataclass(frozen=True)
class AppCall:
    """One socket call the application made.

    ``offset`` is where the call's bytes sit in its direction's byte stream
    (sendall: client to server; recv: server to client), so TCP segments can
    be tied to calls by their sequence numbers rather than by timing.
    """

    index: int
    name: str
    started: float
    finished: float
    nbytes: int | None = None
    offset: int | None = None
    detail: str = ""

    @property
    def label(self) -> str:
        if self.name in ("sendall", "send"):
            return f"{self.name}({self.nbytes} bytes)"
        if self.name in ("recv", "recvmsg"):
            if self.nbytes == 0:
                return f"{self.name}() returned 0 bytes (EOF)"
            extra = f", {self.detail}" if self.detail else ""
            return f"{self.name}() returned {self.nbytes} bytes{extra}"
        return f"{self.name}({self.detail})" if self.detail else f"{self.name}()"


@dataclass(frozen=True)
class ExchangeResult:
    """What the exchange did, from the application's side."""

    transport: str
    family: str
    client: tuple[str, int]
    server: tuple[str, int]
    sent: bytes
    received: bytes
    calls: list[AppCall] = field(default_factory=list)
    view: SocketView | None = None

    @property
    def client_text(self) -> str:
        return join_host_port(*self.client)

    @property
    def server_text(self) -> str:
        return join_host_port(*self.server)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[AppCall] = []

    def add(
        self,
        name: str,
        started: float,
        nbytes: int | None = None,
        offset: int | None = None,
        detail: str = "",
    ) -> None:
        self.calls.append(
            AppCall(len(self.calls) + 1, name, started, time.time(), nbytes, offset, detail)
        )


def _is_ipv4_literal(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def run_exchange(
    target: Endpoint,
    message: bytes,
    *,
    udp: bool = False,
    ipv6: bool = False,
    chunk: int = 1024,
    timeout: float = 5.0,
) -> ExchangeResult:
    """Run one exchange with ``target`` and record every call; raises our errors."""
    if chunk < 1:
        raise UsageError("--chunk must be at least 1 byte")
    where = str(target)
    if ipv6 and _is_ipv4_literal(target.host):
        raise UsageError(
            f"--ipv6 asks for IPv6, but {where} is an IPv4 address - "
            "give an IPv6 address such as [::1]:PORT, or drop --ipv6"
        )
    family = socket.AF_INET6 if ipv6 else socket.AF_UNSPEC
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    try:
        infos = socket.getaddrinfo(target.host, target.port, family, kind)
    except OSError as exc:
        raise translate_os_error(exc, action="resolve", where=where) from exc
    infos = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
    if not infos:
        wanted = "an IPv6" if ipv6 else "an IP"
        raise UsageError(f"{where} has no {wanted} address - try another host or drop --ipv6")
    af, _, proto, _, sockaddr = infos[0]
    sock = socket.socket(af, kind, proto)
    try:
        sock.settimeout(timeout)
        if udp:
            return _udp(sock, sockaddr, message, chunk, where, timeout)
        return _tcp(sock, sockaddr, message, chunk, where, timeout)
    finally:
        sock.close()


def _names(sock: socket.socket) -> tuple[tuple[str, int], tuple[str, int]]:
    local, peer = sock.getsockname(), sock.getpeername()
    return (str(local[0]), int(local[1])), (str(peer[0]), int(peer[1]))


def _finish(
    sock: socket.socket,
    transport: str,
    message: bytes,
    received: bytes,
    rec: _Recorder,
    view: SocketView,
    names: tuple[tuple[str, int], tuple[str, int]],
) -> ExchangeResult:
    """Close (a recorded call too) and gather the result.

    ``names`` were read right after connect: once both FINs have passed, a
    TCP socket no longer has a peer to report.
    """
    local, peer = names
    t = time.time()
    sock.close()
    rec.add("close", t)
    return ExchangeResult(
        transport=transport,
        family="IPv6" if sock.family == socket.AF_INET6 else "IPv4",
        client=local,
        server=peer,
        sent=message,
        received=received,
        calls=list(rec.calls),
        view=view,
    )


def _tcp(
    sock: socket.socket,
    sockaddr: tuple[object, ...],
    message: bytes,
    chunk: int,
    where: str,
    timeout: float,
) -> ExchangeResult:
    rec = _Recorder()
    action = "connect"
    try:
        t = time.time()
        sock.connect(sockaddr)
        rec.add("connect", t, detail=format_sockaddr(sockaddr))
        names = _names(sock)
        action = "send"
        t = time.time()
        sock.sendall(message)
        rec.add("sendall", t, len(message), 0)
        action = "recv"
        received = bytearray()
        eof = False
        while len(received) < len(message):
            t = time.time()
            data = sock.recv(chunk)
            rec.add("recv", t, len(data), len(received))
            if not data:
                eof = True
                break
            received += data
        view = inspect_socket(sock)
        action = "shutdown"
        t = time.time()
        sock.shutdown(socket.SHUT_WR)
        rec.add("shutdown", t, detail="SHUT_WR")
        action = "recv"
        while not eof:
            t = time.time()
            data = sock.recv(chunk)
            rec.add("recv", t, len(data), len(received))
            if not data:
                break
            received += data
    except TimeoutError as exc:
        raise TimedOut(
            f"{action} {where} timed out after {timeout:g} s - is it an echo server, and up?"
        ) from exc
    except OSError as exc:
        raise translate_os_error(exc, action=action, where=where) from exc
    return _finish(sock, "tcp", message, bytes(received), rec, view, names)


def _udp(
    sock: socket.socket,
    sockaddr: tuple[object, ...],
    message: bytes,
    chunk: int,
    where: str,
    timeout: float,
) -> ExchangeResult:
    rec = _Recorder()
    action = "connect"
    try:
        t = time.time()
        sock.connect(sockaddr)
        rec.add(
            "connect", t, detail=f"{format_sockaddr(sockaddr)}, no packet: UDP has no handshake"
        )
        names = _names(sock)
        action = "send"
        t = time.time()
        sock.send(message)
        rec.add("send", t, len(message), 0)
        action = "recv"
        t = time.time()
        data, _, flags, _ = sock.recvmsg(chunk)
        truncated = bool(flags & getattr(socket, "MSG_TRUNC", 0))
        rec.add("recvmsg", t, len(data), 0, "datagram truncated to --chunk" if truncated else "")
        view = inspect_socket(sock)
    except TimeoutError as exc:
        raise TimedOut(
            f"no UDP reply from {where} within {timeout:g} s - is an echo server there? "
            "(UDP gives no error when nobody listens, unless the kernel reports it)"
        ) from exc
    except OSError as exc:
        raise translate_os_error(exc, action=action, where=where) from exc
    return _finish(sock, "udp", message, data, rec, view, names)
