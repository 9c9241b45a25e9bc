"""``socketkit addrinfo``: every getaddrinfo result, with names instead of numbers.

This is the lecture's ``get_address_info(host, port)``: the tuple
``(family, type, proto, canonname, sockaddr)`` is exactly what a client feeds
to ``socket()`` and ``connect()``, so we keep the resolver's order (clients
try them in that order) and time the call (a slow resolver is a slow client).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from socketkit.endpoints import join_host_port, parse_port
from socketkit.errors import ResolveError, UsageError
from socketkit.explore.resolver import (
    Resolver,
    SystemResolver,
    family_name,
    protocol_name,
    resolve_failure,
    type_name,
)
from socketkit.explore.services import ServiceCatalog

__all__ = ["AddrInfoEntry", "AddrInfoReport", "address_info", "get_address_info"]

FAMILIES = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}
TYPES = {None: 0, "stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM}


@dataclass(frozen=True)
class AddrInfoEntry:
    family: str
    type: str
    protocol: str
    canonical_name: str
    address: str
    """The socket address as people write it: ``HOST:PORT`` or ``[V6]:PORT``."""
    sockaddr: tuple[Any, ...]
    """As getaddrinfo returned it: ``(host, port)`` or ``(host, port, flowinfo, scope_id)``."""
    numbers: tuple[int, int, int]
    """Family, type and protocol as the numbers the socket module passes around."""


@dataclass(frozen=True)
class AddrInfoReport:
    host: str | None
    service: str | None
    family: str
    type: str
    flags: tuple[str, ...]
    elapsed_ms: float
    """Wall time of the getaddrinfo call(s), in milliseconds."""
    results: tuple[AddrInfoEntry, ...]
    service_source: str
    """Who turned the service name into a port: ``resolver``, or the shipped table
    (``iana``/``socketkit``) when the system's services database lacks it."""


def address_info(
    host: str | None,
    service: str | None = None,
    *,
    family: int | None = None,
    socktype: str | None = None,
    passive: bool = False,
    resolver: Resolver | None = None,
    catalog: ServiceCatalog | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> AddrInfoReport:
    """Call getaddrinfo once (twice if the service needs the shipped table) and name it all.

    ``family`` is 4, 6 or None; ``socktype`` "stream", "dgram" or None. With
    ``passive`` and no host you get the wildcard addresses a server binds.
    """
    if family not in FAMILIES:
        raise UsageError(f"bad family {family!r}: choose 4 or 6")
    if socktype not in TYPES:
        raise UsageError(f"bad socket type {socktype!r}: choose stream or dgram")
    res = resolver or SystemResolver()
    fam, kind = FAMILIES[family], TYPES[socktype]
    # AI_CANONNAME needs a name to canonicalise: glibc rejects it with no host.
    named = [("AI_CANONNAME", socket.AI_CANONNAME)] if host is not None else []
    named += [("AI_PASSIVE", socket.AI_PASSIVE)] if passive else []
    flags = sum(value for _name, value in named)
    flag_names = tuple(name for name, _value in named)
    if host is None and not passive:
        raise UsageError("give a HOST, or --passive to see the addresses a server would bind")

    if service is not None and service.lstrip("+-").isdigit():
        # getaddrinfo takes any number and keeps its low 16 bits (99999 -> 34463).
        parse_port(service)
    port: str | None = service
    source = "resolver"
    start = clock()
    try:
        try:
            results = res.getaddrinfo(host, port, fam, kind, 0, flags)
        except socket.gaierror as exc:
            fallback = _shipped_port(exc, service, socktype, catalog)
            if fallback is None:
                raise
            port, source = fallback
            results = res.getaddrinfo(host, port, fam, kind, 0, flags)
    except socket.gaierror as exc:
        if exc.args and exc.args[0] == socket.EAI_SERVICE:
            over = f" over {socktype}" if socktype else ""
            raise ResolveError(
                f"unknown service {service!r}{over}: not in this system's services database "
                "nor socketkit's table - give a port number instead"
            ) from exc
        raise resolve_failure(exc, host or "") from exc
    except OSError as exc:
        raise resolve_failure(exc, host or "") from exc
    elapsed = (clock() - start) * 1000.0

    entries = tuple(
        AddrInfoEntry(
            family=family_name(f),
            type=type_name(t),
            protocol=protocol_name(p),
            canonical_name=canon,
            address=join_host_port(str(sockaddr[0]), int(sockaddr[1])),
            sockaddr=tuple(sockaddr),
            numbers=(f, t, p),
        )
        for f, t, p, canon, sockaddr in results
    )
    return AddrInfoReport(
        host=host,
        service=service,
        family=family_name(fam) if fam else "AF_UNSPEC",
        type=type_name(kind) if kind else "any",
        flags=flag_names,
        elapsed_ms=round(elapsed, 3),
        results=entries,
        service_source=source,
    )


def _shipped_port(
    exc: socket.gaierror,
    service: str | None,
    socktype: str | None,
    catalog: ServiceCatalog | None,
) -> tuple[str, str] | None:
    """The port for a service name the system lacks (Debian has no qotd/udp), from our table."""
    if service is None or service.isdigit() or not exc.args or exc.args[0] != socket.EAI_SERVICE:
        return None
    transport = "udp" if socktype == "dgram" else "tcp"
    entry = (catalog or ServiceCatalog.shipped_only()).by_name(service, transport)
    if entry is None:
        return None
    return str(entry.port), entry.source


def get_address_info(host: str, port: int | str | None = None) -> AddrInfoReport:
    """The lecture's helper by its lecture name: ``address_info`` with the defaults."""
    return address_info(host, None if port is None else str(port))
