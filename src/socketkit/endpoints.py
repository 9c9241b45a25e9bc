"""Endpoints as people write them: ``HOST:PORT``, ``[v6]:PORT``, ``unix:/path``.

A socket is the software form of an endpoint (the lecture's IP:port), so one
small module parses and formats them for every command, and the rest of the
code never splits strings on ``:`` itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from socketkit.errors import UsageError

__all__ = ["Endpoint", "format_sockaddr", "parse_endpoint", "parse_port"]

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
        return join_host_port(host, int(addr[1]))
    return str(addr)
