"""Endpoints as people write them: ``HOST:PORT``, ``[v6]:PORT``, ``unix:/path``.

A socket is the software form of an endpoint (the lecture's IP:port), so one
small module parses and formats them for every command, and the rest of the
code never splits strings on ``:`` itself.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Literal

from socketkit.errors import UsageError

__all__ = [
    "Endpoint",
    "format_sockaddr",
    "is_numeric_host",
    "numeric_sockaddrs",
    "parse_endpoint",
    "parse_port",
]

Transport = Literal["tcp", "udp", "unix"]


@dataclass(frozen=True)
class Endpoint:
    """Where to connect or what was bound: a host and port, or a Unix socket path."""

    host: str | None = None
    port: int | None = None
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return join_host_port(self.host or "", self.port or 0)


def parse_port(text: str, *, what: str = "port") -> int:
    """A port number 0-65535, or a clear usage error."""
    try:
        port = int(text, 10)
    except ValueError:
        raise UsageError(f"bad {what} {text!r}: expected a number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"bad {what} {port}: ports run from 0 to 65535")
    return port


def parse_endpoint(text: str, *, default_host: str = "127.0.0.1") -> Endpoint:
    """Parse ``HOST:PORT``, ``[IPV6]:PORT``, ``:PORT``, ``PORT`` or ``unix:/path``.

    A bare IPv6 address with a port is ambiguous (``::1:7``), so it must be
    bracketed, as in URLs; the error says so.
    """
    text = text.strip()
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise UsageError("bad address 'unix:': give a socket path, as in unix:/tmp/echo.sock")
        return Endpoint(path=path)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise UsageError(f"bad address {text!r}: write IPv6 as [ADDRESS]:PORT, e.g. [::1]:7")
        return Endpoint(host=host, port=parse_port(rest[1:]))
    if text.isdigit():
        return Endpoint(host=default_host, port=parse_port(text))
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise UsageError(f"bad address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:10007")
    if ":" in host:
        raise UsageError(
            f"bad address {text!r}: put an IPv6 address in brackets, e.g. [{host}]:{port_text}"
        )
    return Endpoint(host=host or default_host, port=parse_port(port_text))


def is_numeric_host(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (an IPv6 zone ``%eth0`` or ``%2`` allowed)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        return False
    return True


def numeric_sockaddrs(
    host: str, port: int, socktype: int, family: int = socket.AF_UNSPEC
) -> list[tuple[int, int, int, str, Any]] | None:
    """Resolve a numeric address without any resolver, keeping an IPv6 zone's scope id.

    Why: uvloop's ``loop.getaddrinfo`` drops the scope id, so
    ``[fe80::1%eth0]:7`` becomes ``('fe80::1', 7, 0, 0)`` and connect/bind
    fail with EINVAL, while ``socket.getaddrinfo`` with ``AI_NUMERICHOST``
    returns ``('fe80::1', 7, 0, <ifindex>)`` and never touches DNS.

    Contract:
    - ``host`` is an IPv4 or IPv6 literal, an IPv6 one optionally with a
      ``%zone`` (interface name or number); ``port`` is 0-65535; ``socktype``
      is ``SOCK_STREAM`` or ``SOCK_DGRAM``; ``family`` filters as in
      getaddrinfo (``AF_UNSPEC``: any).
    - Returns ``None`` when ``host`` is not a literal (a name): the caller
      resolves it as it likes (the loop's resolver, or an error under ``-n``).
    - Returns getaddrinfo-shaped tuples ``(family, type, proto, '', sockaddr)``,
      usable for ``socket()``/``connect()``/``bind()`` as they are; an empty
      list when the literal's family is not ``family`` (``-4`` with ``::1``).
    - Raises ``socket.gaierror`` for a literal the system rejects (an unknown
      zone such as ``fe80::1%nosuch``): translate it at the I/O edge.
    - Blocking-free: ``AI_NUMERICHOST`` never sends a query, so it is safe to
      call on the event loop.
    """
    if not is_numeric_host(host):
        return None
    literal_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if family not in (socket.AF_UNSPEC, literal_family):
        return []
    infos = socket.getaddrinfo(
        host, port, family, socktype, 0, socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    )
    return [(f, t, p, c, a) for f, t, p, c, a in infos]


def join_host_port(host: str, port: int) -> str:
    """``[v6]:port`` for IPv6 literals, ``host:port`` for the rest."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_sockaddr(addr: Any) -> str:
    """Format what ``getsockname``/``getpeername``/``recvfrom`` return, for people.

    IPv4-mapped IPv6 peers of a dual-stack socket (``::ffff:127.0.0.1``) are
    shown as the IPv4 address they are, so logs do not confuse people.
    """
    if isinstance(addr, str):
        return f"unix:{addr}" if addr else "unix:(unnamed)"
    if isinstance(addr, bytes):
        return "unix:" + (addr.decode(errors="backslashreplace") or "(unnamed)")
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        if host.startswith("::ffff:"):
            try:
                mapped = ipaddress.IPv6Address(host.split("%", 1)[0]).ipv4_mapped
            except ValueError:
                mapped = None
            if mapped is not None:
                host = str(mapped)
        if len(addr) >= 4 and addr[3] and "%" not in host:
            host = f"{host}%{_zone_name(int(addr[3]))}"
        return join_host_port(host, int(addr[1]))
    return str(addr)


def _zone_name(scope_id: int) -> str:
    """The interface name for an IPv6 scope id (the number when it has none)."""
    try:
        return socket.if_indextoname(scope_id)
    except OSError:
        return str(scope_id)
