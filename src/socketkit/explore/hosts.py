"""``socketkit host``: what the resolver knows about a host name.

The lecture asks ``gethostname()``, then ``gethostbyname_ex()``, which only
knows IPv4; we ask ``getaddrinfo()`` too, so IPv6 addresses show up, and keep
the resolver's order, because that order is the order clients try.

Each answer also says where it came from. glibc asks the sources on the
``hosts:`` line of /etc/nsswitch.conf in order and stops at the first that
knows the name, so a name listed in /etc/hosts (with ``files`` first) is
answered by that file alone, and DNS is never asked; we read both files the
same way. For this machine the interface addresses are listed too, because
"this machine is 127.0.0.1" is only what /etc/hosts says.
"""

from __future__ import annotations

import importlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socketkit.errors import UsageError
from socketkit.explore.resolver import Resolver, SystemResolver, family_name, resolve_failure

__all__ = [
    "HOSTS_FILE",
    "NSSWITCH_FILE",
    "HostAddress",
    "HostInfo",
    "InterfaceAddress",
    "host_info",
    "hosts_sources",
    "interface_addresses",
    "parse_hosts_file",
]

HOSTS_FILE = Path("/etc/hosts")
NSSWITCH_FILE = Path("/etc/nsswitch.conf")

_SOURCE_NAMES = {
    "files": "/etc/hosts",
    "dns": "DNS",
    "resolve": "DNS (systemd-resolved)",
    "myhostname": "myhostname (systemd: this machine's own name)",
    "mdns": "multicast DNS",
    "mdns4": "multicast DNS",
    "mdns4_minimal": "multicast DNS (.local)",
    "mdns6": "multicast DNS",
    "mdns6_minimal": "multicast DNS (.local)",
    "mymachines": "systemd containers",
    "nis": "NIS",
    "ldap": "LDAP",
}


@dataclass(frozen=True)
class HostAddress:
    family: str
    """``AF_INET`` or ``AF_INET6``."""
    address: str
    source: str = ""
    """Where the answer came from: ``/etc/hosts``, ``DNS``, ``numeric`` (a literal
    address, no look-up), or the nsswitch source that answered."""


@dataclass(frozen=True)
class InterfaceAddress:
    """One address of one of this machine's network interfaces."""

    interface: str
    index: int | None
    """The kernel's interface index (socket.if_nameindex), the %zone of IPv6."""
    family: str
    address: str
    prefix_length: int | None


def parse_hosts_file(text: str) -> dict[str, tuple[str, ...]]:
    """/etc/hosts as lower-case name -> addresses, in file order (as glibc's files backend)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        address = fields[0].split("%", 1)[0]
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        for name in fields[1:]:
            held = found.setdefault(name.lower(), [])
            if fields[0] not in held:
                held.append(fields[0])
    return {name: tuple(addresses) for name, addresses in found.items()}


def hosts_sources(nsswitch_text: str | None) -> tuple[str, ...]:
    """The ``hosts:`` sources in order; glibc's default without a file is ``dns files``."""
    if nsswitch_text is None:
        return ("dns", "files")
    for line in nsswitch_text.splitlines():
        key, _, value = line.split("#", 1)[0].partition(":")
        if key.strip() == "hosts":
            return tuple(w for w in value.split() if not w.startswith("["))
    return ("dns", "files")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _prefix_length(netmask: str | None) -> int | None:
    """``255.255.255.0`` or ``ffff:ffff::`` -> 24 or 32: the mask's one bits."""
    if not netmask:
        return None
    try:
        return bin(int(ipaddress.ip_address(netmask))).count("1")
    except ValueError:
        return None


def interface_addresses() -> tuple[InterfaceAddress, ...]:
    """This machine's interface addresses: psutil for the addresses, if_nameindex for indexes."""
    try:
        # imported by name: psutil ships no type stubs, and only `host` needs it
        psutil: Any = importlib.import_module("psutil")
    except ImportError as exc:
        raise UsageError("listing interface addresses needs psutil: pip install psutil") from exc
    try:
        indexes = {name: index for index, name in socket.if_nameindex()}
    except OSError:
        indexes = {}
    out = []
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = str(a.address).split("%", 1)[0]
            out.append(
                InterfaceAddress(
                    str(name),
                    indexes.get(name),
                    family_name(a.family),
                    address,
                    _prefix_length(a.netmask),
                )
            )
    return tuple(out)


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
    sources: tuple[str, ...] = ()
    """The nsswitch ``hosts:`` order the answers were looked up in."""
    interfaces: tuple[InterfaceAddress, ...] = ()
    """For this machine: every interface address (not a resolver answer)."""


def _source_of(
    query: str,
    address: str,
    hosts: dict[str, tuple[str, ...]],
    order: tuple[str, ...],
    this_machine: bool,
) -> str:
    """Which nsswitch source gave ``address`` for ``query`` (the first one that knows it)."""
    try:
        ipaddress.ip_address(query.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return "numeric (a literal address: nothing was looked up)"
    name = query.lower().rstrip(".")
    listed = hosts.get(name, ())
    for source in order:
        if source == "files":
            if listed:
                return (
                    "/etc/hosts" if address in listed else "not in /etc/hosts (the file changed?)"
                )
            continue
        if source.endswith("_minimal") and not name.endswith(".local"):
            continue  # mdns*_minimal answers .local names only
        if source == "myhostname" and not (
            this_machine or name == "localhost" or name.endswith(".localhost")
        ):
            continue  # answers only this machine's own names
        if source == "mymachines":
            continue  # local containers' names; never a name a learner looks up here
        return _SOURCE_NAMES.get(source, source)
    return "unknown"


def host_info(
    name: str | None = None,
    *,
    resolver: Resolver | None = None,
    hosts_file: Path = HOSTS_FILE,
    nsswitch: Path = NSSWITCH_FILE,
    interfaces: Callable[[], tuple[InterfaceAddress, ...]] | None = interface_addresses,
) -> HostInfo:
    """Ask the resolver everything about ``name`` (default: this machine).

    Each address says which source answered (read from ``hosts_file`` and the
    ``nsswitch`` order); for this machine, ``interfaces`` lists the interface
    addresses (None: skip them).

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

    order = hosts_sources(_read(nsswitch))
    hosts = parse_hosts_file(_read(hosts_file) or "")
    sourced = tuple(
        HostAddress(a.family, a.address, _source_of(query, a.address, hosts, order, this_machine))
        for a in found
    )
    return HostInfo(
        query=query,
        this_machine=this_machine,
        fqdn=res.getfqdn(query),
        canonical_name=canonical or canonical_from_gai or query,
        aliases=aliases,
        addresses=sourced,
        sources=order,
        interfaces=interfaces() if this_machine and interfaces is not None else (),
    )
