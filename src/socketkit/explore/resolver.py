"""The resolver the explorers ask, as an object, so tests and offline demos can swap it.

The explorers call exactly the functions the lecture calls in the interpreter
(``gethostname``, ``getfqdn``, ``gethostbyname_ex``, ``getaddrinfo``). Passing
them in as one object keeps the explorers free of DNS in unit tests:
``StaticResolver`` answers from a table and fails the way the real one does
(``socket.gaierror`` with the same ``EAI_*`` codes).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from socketkit.errors import ResolveError

__all__ = [
    "AddrInfoTuple",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "family_name",
    "protocol_name",
    "resolve_failure",
    "type_name",
]

AddrInfoTuple = tuple[int, int, int, str, tuple[Any, ...]]
"""One ``getaddrinfo`` result: family, type, proto, canonname, sockaddr."""


class Resolver(Protocol):
    """What the explorers need from a name service."""

    def gethostname(self) -> str: ...

    def getfqdn(self, name: str) -> str: ...

    def gethostbyname_ex(self, name: str) -> tuple[str, list[str], list[str]]: ...

    def getaddrinfo(
        self,
        host: str | None,
        port: str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfoTuple]: ...


class SystemResolver:
    """The machine's resolver (NSS: /etc/hosts, DNS, ...) through the socket module."""

    def gethostname(self) -> str:
        return socket.gethostname()

    def getfqdn(self, name: str) -> str:
        return socket.getfqdn(name)

    def gethostbyname_ex(self, name: str) -> tuple[str, list[str], list[str]]:
        return socket.gethostbyname_ex(name)

    def getaddrinfo(
        self,
        host: str | None,
        port: str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfoTuple]:
        return [
            (int(f), int(t), p, c, tuple(a))
            for f, t, p, c, a in socket.getaddrinfo(host, port, family, type, proto, flags)
        ]


def _no_name(name: object) -> socket.gaierror:
    return socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {name}")


@dataclass
class StaticResolver:
    """A resolver answering from tables: for tests and for offline examples.

    ``hosts`` maps a name to ``(canonical name, aliases, addresses)``, with
    IPv4 and IPv6 addresses in the order getaddrinfo should return them;
    ``services`` maps a service name to its port (one for every transport).
    ``getaddrinfo`` yields, per address, a stream/TCP and a datagram/UDP
    result (the way glibc does when no type is asked for, minus SOCK_RAW).
    """

    hostname: str = "testhost"
    fqdn: Mapping[str, str] = field(default_factory=dict)
    hosts: Mapping[str, tuple[str, Sequence[str], Sequence[str]]] = field(default_factory=dict)
    services: Mapping[str, int] = field(default_factory=dict)

    def gethostname(self) -> str:
        return self.hostname

    def getfqdn(self, name: str) -> str:
        return self.fqdn.get(name, name)

    def _lookup(self, name: str) -> tuple[str, Sequence[str], Sequence[str]]:
        if name in self.hosts:
            return self.hosts[name]
        if _is_literal(name):
            return (name, (), (name,))
        raise _no_name(name)

    def gethostbyname_ex(self, name: str) -> tuple[str, list[str], list[str]]:
        canonical, aliases, addresses = self._lookup(name)
        ipv4 = [a for a in addresses if ":" not in a]
        if not ipv4:
            raise _no_name(name)
        return canonical, list(aliases), ipv4

    def getaddrinfo(
        self,
        host: str | None,
        port: str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfoTuple]:
        number = self._port(port)
        if host is None:
            passive = bool(flags & socket.AI_PASSIVE)
            canonical, addresses = (
                "",
                ["::" if passive else "::1", "0.0.0.0" if passive else "127.0.0.1"],
            )
        else:
            canonical, _aliases, found = self._lookup(host)
            addresses = list(found)
        kinds = [
            (socket.SOCK_STREAM, socket.IPPROTO_TCP),
            (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
        ]
        results: list[AddrInfoTuple] = []
        for address in addresses:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (0, fam):
                continue
            sockaddr: tuple[Any, ...] = (
                (address, number, 0, 0) if fam == socket.AF_INET6 else (address, number)
            )
            for kind, protocol in kinds:
                if type in (0, kind):
                    results.append((int(fam), int(kind), int(protocol), "", sockaddr))
        if not results:
            raise socket.gaierror(
                socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
            )
        if flags & socket.AI_CANONNAME:
            f, t, p, _c, a = results[0]
            results[0] = (f, t, p, canonical, a)
        return results

    def _port(self, port: str | int | None) -> int:
        if port is None:
            return 0
        if isinstance(port, int):
            return port
        if port.isdigit():
            return int(port)
        if port in self.services:
            return self.services[port]
        raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")


def _is_literal(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except OSError:
        return False
    return True


def _enum_name(enum: Any, value: int, fallback_prefix: str) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return f"{fallback_prefix}{value}"


def family_name(value: int) -> str:
    """``2 -> 'AF_INET'``: the name the socket module's enum gives."""
    return _enum_name(socket.AddressFamily, value, "AF_?")


def type_name(value: int) -> str:
    """``1 -> 'SOCK_STREAM'``."""
    return _enum_name(socket.SocketKind, value, "SOCK_?")


_PREFERRED_PROTOCOL = {0: "IPPROTO_IP"}
"""Where several IPPROTO_ names share a value (0 is also IPPROTO_HOPOPTS), the usual one."""


def protocol_name(value: int) -> str:
    """``6 -> 'IPPROTO_TCP'``; Python 3.11 has no enum for these, so search the module."""
    if value in _PREFERRED_PROTOCOL:
        return _PREFERRED_PROTOCOL[value]
    names = sorted(
        n for n in dir(socket) if n.startswith("IPPROTO_") and getattr(socket, n) == value
    )
    return names[0] if names else f"IPPROTO_?{value}"


def resolve_failure(exc: OSError, name: str) -> ResolveError:
    """One line for a failed look-up, saying what to check."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    reason = exc.strerror or str(exc)
    if code == getattr(socket, "EAI_AGAIN", None):
        return ResolveError(
            f"cannot resolve {name!r} right now: {reason} - is the DNS server reachable? try again"
        )
    if code in (getattr(socket, "EAI_ADDRFAMILY", None), getattr(socket, "EAI_NODATA", None)):
        return ResolveError(
            f"{name!r} has no address of the family asked for ({reason}) - try without --family"
        )
    return ResolveError(
        f"cannot resolve {name!r}: {reason} - check the spelling, /etc/hosts or your DNS"
    )
