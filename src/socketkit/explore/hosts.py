"""``socketkit host``: what the resolver knows about a host name.

The lecture asks ``gethostname()``, then ``gethostbyname_ex()``, which only
knows IPv4; we ask ``getaddrinfo()`` too, so IPv6 addresses show up, and keep
the resolver's order, because that order is the order clients try.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from socketkit.explore.resolver import Resolver, SystemResolver, family_name, resolve_failure

__all__ = ["HostAddress", "HostInfo", "host_info"]


@dataclass(frozen=True)
class HostAddress:
    family: str
    """``AF_INET`` or ``AF_INET6``."""
    address: str


@dataclass(frozen=True)
class HostInfo:
    query: str
    """The name looked up (this machine's name when none was given)."""
    this_machine: bool
    fqdn: str
    canonical_name: str
    aliases: tuple[str, ...]
    addresses: tuple[HostAddress, ...]
    """getaddrinfo's order, then any IPv4 address only gethostbyname_ex reported."""


def host_info(name: str | None = None, *, resolver: Resolver | None = None) -> HostInfo:
    """Ask the resolver everything about ``name`` (default: this machine).

    Raises ResolveError only when neither getaddrinfo nor gethostbyname_ex
    knows the name: an IPv6-only name fails gethostbyname_ex, and that is an
    answer worth showing, not an error.
    """
    res = resolver or SystemResolver()
    this_machine = name is None
    query = res.gethostname() if name is None else name
    first_error: OSError | None = None

    found: list[HostAddress] = []
    canonical_from_gai = ""
    try:
        results = res.getaddrinfo(query, None, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
    except OSError as exc:
        first_error = exc
        results = []
    for fam, _type, _proto, canonname, sockaddr in results:
        canonical_from_gai = canonical_from_gai or canonname
        entry = HostAddress(family_name(fam), str(sockaddr[0]))
        if entry not in found:
            found.append(entry)

    canonical = ""
    aliases: tuple[str, ...] = ()
    ipv4: list[str] = []
    try:
        canonical, alias_list, ipv4 = res.gethostbyname_ex(query)
        aliases = tuple(alias_list)
    except OSError as exc:
        first_error = first_error or exc
        if not results:
            raise resolve_failure(first_error, query) from first_error
    for address in ipv4:
        entry = HostAddress("AF_INET", address)
        if entry not in found:
            found.append(entry)

    return HostInfo(
        query=query,
        this_machine=this_machine,
        fqdn=res.getfqdn(query),
        canonical_name=canonical or canonical_from_gai or query,
        aliases=aliases,
        addresses=tuple(found),
    )
