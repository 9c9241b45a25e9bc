"""``socketkit addr``: an address in all its forms, and what IANA says it is for.

The class comes from IANA's special-purpose address registries, shipped in
``socketkit/data``, not from ``ipaddress.is_*``: those answers changed across
Python versions (CVE-2024-4032) and on 3.11 ``::ffff:127.0.0.1`` is not
loopback. An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) is looked through
and classified as the IPv4 address it carries, because that is where a
dual-stack socket really sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from socketkit.errors import UsageError
from socketkit.explore.services import csv_rows, read_data_file

__all__ = [
    "WORLD_POPULATION",
    "WORLD_POPULATION_SOURCE",
    "AddressReport",
    "AddressSpace",
    "NetworkReport",
    "Registry",
    "RegistryEntry",
    "address_space",
    "classify_address",
    "classify_network",
    "default_registry",
    "scientific",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

REGISTRY_FILES = {
    "iana-ipv4-special-registry.csv": "IANA IPv4 Special-Purpose Address Registry",
    "iana-ipv6-special-registry.csv": "IANA IPv6 Special-Purpose Address Registry",
    "iana-address-space.csv": "IANA multicast and IPv6 address space registries",
}

_FLAGS = ("source", "destination", "forwardable", "globally_reachable", "reserved_by_protocol")

_MULTICAST_SCOPES = {
    1: "interface-local",
    2: "link-local",
    3: "realm-local",
    4: "admin-local",
    5: "site-local",
    8: "organization-local",
    14: "global",
}
"""IPv6 multicast scopes, the fourth hex digit (RFC 4291 section 2.7, RFC 7346)."""


@dataclass(frozen=True)
class RegistryEntry:
    block: str
    category: str
    """socketkit's short keyword: loopback, private-use, documentation, ..."""
    name: str
    """The registry's own name for the block."""
    rfc: str
    registry: str
    allocated: str
    terminated: str
    source: bool | None
    destination: bool | None
    forwardable: bool | None
    globally_reachable: bool | None
    reserved_by_protocol: bool | None


def _flag(text: str) -> bool | None:
    value = text.strip()
    if value == "True":
        return True
    if value == "False":
        return False
    if value == "":
        return None
    raise ValueError(f"bad registry flag {text!r}: expected True, False or empty")


class Registry:
    """Blocks and their entries; look-ups return every block containing an address."""

    def __init__(self, entries: Iterable[RegistryEntry]):
        self.entries = tuple(entries)
        self._networks: list[tuple[Network, RegistryEntry]] = [
            (ipaddress.ip_network(e.block), e) for e in self.entries
        ]

    @classmethod
    def from_csv(cls, text: str, registry: str) -> Registry:
        entries = []
        for row in csv_rows(text):
            flags = {name: _flag(row[name]) for name in _FLAGS}
            entries.append(
                RegistryEntry(
                    block=row["block"],
                    category=row["class"],
                    name=row["name"],
                    rfc=row["rfc"],
                    registry=registry,
                    allocated=row["allocated"],
                    terminated=row["terminated"],
                    **flags,
                )
            )
        return cls(entries)

    def __add__(self, other: Registry) -> Registry:
        return Registry(self.entries + other.entries)

    def matches(self, address: IPAddress) -> list[RegistryEntry]:
        """Every block containing ``address``, most specific (longest prefix) first."""
        found = [
            (net.prefixlen, entry)
            for net, entry in self._networks
            if net.version == address.version and address in net
        ]
        found.sort(key=lambda pair: -pair[0])
        return [entry for _length, entry in found]


@cache
def default_registry() -> Registry:
    """The shipped tables (read once)."""
    total = Registry(())
    for filename, label in REGISTRY_FILES.items():
        total = total + Registry.from_csv(read_data_file(filename), label)
    return total


@dataclass(frozen=True)
class AddressReport:
    input: str
    version: int
    compressed: str
    exploded: str
    integer: int
    reverse_pointer: str
    scope_id: str | None
    category: str
    """The most specific class: loopback, private-use, global-unicast, ..."""
    description: str
    """The registry's name for the block and its RFC, for people."""
    globally_reachable: bool | None
    """The registry's "Globally Reachable" column (None where it gives no value)."""
    ipv4_mapped: str | None
    """For ``::ffff:a.b.c.d``: the IPv4 address looked through and classified."""
    matches: tuple[RegistryEntry, ...]
    """Every registry block containing the address (looked through), most specific first."""


def parse_address(text: str) -> tuple[IPAddress, str | None]:
    """A literal IPv4 or IPv6 address (``[v6]`` and ``%zone`` allowed), or one clear error."""
    raw = text.strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    if "/" in raw:
        raise UsageError(
            f"bad address {text!r}: give one address, not a network (drop the /{raw.split('/')[-1]})"
        )
    host, _pct, zone = raw.partition("%")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(
            f"bad address {text!r}: not an IPv4 or IPv6 address - addr takes literal "
            "addresses; to look up a name use: socketkit host NAME"
        ) from None
    if zone and address.version != 6:
        raise UsageError(f"bad address {text!r}: only IPv6 addresses take a %zone")
    return address, zone or None


def _describe(entry: RegistryEntry | None, address: IPAddress) -> str:
    if entry is None:
        if address.version == 4:
            return "not in IANA's special-purpose registry: ordinary (public) unicast"
        return "outside 2000::/3 and every special-purpose block: reserved by the IETF"
    text = f"{entry.name} ({entry.block}, {entry.rfc})"
    if entry.category == "multicast" and address.version == 6:
        scope = int(address.exploded[3], 16)
        text += f"; scope {scope:x}: {_MULTICAST_SCOPES.get(scope, 'unassigned')}"
    if entry.terminated:
        text += f"; deprecated since {entry.terminated}"
    return text


def classify_address(text: str, *, registry: Registry | None = None) -> AddressReport:
    """Every form of the address and its class from the registries."""
    reg = registry or default_registry()
    address, zone = parse_address(text)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    subject: IPAddress = mapped if mapped is not None else address
    own = reg.matches(subject)
    best = own[0] if own else None
    # For a mapped address, the ::ffff:0:0/96 block itself comes after the IPv4 ones.
    matches = own + reg.matches(address) if mapped is not None else own

    if best is None:
        category = "global-unicast" if subject.version == 4 else "reserved"
        reachable: bool | None = True if subject.version == 4 else None
    else:
        category = best.category
        reachable = best.globally_reachable
        if category == "global-unicast":
            reachable = True
    description = _describe(best, subject)
    if mapped is not None:
        description = f"IPv4-mapped IPv6 address carrying {mapped}: {description}"

    return AddressReport(
        input=text,
        version=address.version,
        compressed=address.compressed,
        exploded=address.exploded,
        integer=int(address),
        reverse_pointer=address.reverse_pointer,
        scope_id=zone,
        category=category,
        description=description,
        globally_reachable=reachable,
        ipv4_mapped=str(mapped) if mapped is not None else None,
        matches=tuple(matches),
    )


@dataclass(frozen=True)
class NetworkReport:
    """A network (CIDR) in every form a subnetting exercise asks for."""

    input: str
    version: int
    network: str
    """``192.168.1.0/24``: the network with its prefix."""
    network_address: str
    broadcast: str | None
    """IPv4's all-ones address; None for IPv6, which has no broadcast (RFC 4291)."""
    netmask: str
    hostmask: str
    prefix_length: int
    """Network bits: the /N."""
    host_bits: int
    addresses: int
    """Every address in the block, 2 ** host_bits."""
    hosts: int
    """Addresses a host may use (IPv4: less network and broadcast, except /31
    point-to-point links, RFC 3021, and /32; IPv6: less the Subnet-Router
    anycast address, except /127, RFC 6164, and /128)."""
    first_host: str
    last_host: str
    binary_network: str
    """The network address in binary, ``|`` where the prefix ends."""
    binary_mask: str
    host_bits_set: str | None
    """The address the input gave when it had host bits set (``192.168.1.7/24``)."""
    category: str
    description: str
    """The registry block that contains the whole network, for people."""
    matches: tuple[RegistryEntry, ...]
    """Registry blocks that contain the whole network, most specific first."""
    overlaps: tuple[RegistryEntry, ...]
    """Smaller special-purpose blocks inside this network (e.g. 0.0.0.0/0 holds them all)."""


def _binary(address: IPAddress, prefix: int) -> str:
    """Bits grouped as the address is written (8 for IPv4, 16 for IPv6), ``|`` at the prefix."""
    width, group, sep = (32, 8, ".") if address.version == 4 else (128, 16, ":")
    bits = format(int(address), f"0{width}b")
    out = []
    for i, bit in enumerate(bits):
        if i == prefix and i:
            out.append("|")
        elif i and i % group == 0:
            out.append(sep)
        out.append(bit)
    return "".join(out)


def _host_range(net: Network) -> tuple[int, IPAddress, IPAddress]:
    first_addr, last_addr = net.network_address, net.broadcast_address
    if net.version == 4:
        if net.prefixlen >= 31:
            return net.num_addresses, first_addr, last_addr
        return net.num_addresses - 2, first_addr + 1, last_addr - 1
    if net.prefixlen >= 127:
        return net.num_addresses, first_addr, last_addr
    return net.num_addresses - 1, first_addr + 1, last_addr


def classify_network(text: str, *, registry: Registry | None = None) -> NetworkReport:
    """A CIDR network: network, broadcast, first/last host, counts, bits, registry block."""
    reg = registry or default_registry()
    raw = text.strip()
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError as exc:
        raise UsageError(
            f"bad network {text!r}: {exc} - write ADDRESS/PREFIX, e.g. 192.168.1.0/24 or "
            "2001:db8::/32"
        ) from None
    given = ipaddress.ip_interface(raw).ip
    count, first, last = _host_range(net)
    within = [
        e
        for e in reg.matches(net.network_address)
        if (block := ipaddress.ip_network(e.block)).version == net.version and net.subnet_of(block)  # type: ignore[arg-type]
    ]
    inside = [
        e
        for e in reg.entries
        if (block := ipaddress.ip_network(e.block)).version == net.version
        and block != net
        and block.subnet_of(net)  # type: ignore[arg-type]
    ]
    best = within[0] if within else None
    if best is None:
        category = "global-unicast" if net.version == 4 else "reserved"
    else:
        category = best.category
    description = _describe(best, net.network_address)
    if inside:
        description += f"; contains {len(inside)} special-purpose block(s)"
    return NetworkReport(
        input=text,
        version=net.version,
        network=net.with_prefixlen,
        network_address=str(net.network_address),
        broadcast=str(net.broadcast_address) if net.version == 4 else None,
        netmask=str(net.netmask),
        hostmask=str(net.hostmask),
        prefix_length=net.prefixlen,
        host_bits=net.max_prefixlen - net.prefixlen,
        addresses=net.num_addresses,
        hosts=count,
        first_host=str(first),
        last_host=str(last),
        binary_network=_binary(net.network_address, net.prefixlen),
        binary_mask=_binary(net.netmask, net.prefixlen),
        host_bits_set=str(given) if given != net.network_address else None,
        category=category,
        description=description,
        matches=tuple(within),
        overlaps=tuple(inside),
    )


# -- the size of the address spaces ------------------------------------------------------

WORLD_POPULATION = 8_200_000_000
WORLD_POPULATION_SOURCE = (
    "United Nations, World Population Prospects 2024: about 8.2 billion people in 2024"
)


def scientific(value: float, digits: int = 2) -> str:
    """``3.4 x 10^38``, the way the lecture writes big numbers."""
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa} x 10^{int(exponent)}"


@dataclass(frozen=True)
class AddressSpace:
    ipv4_addresses: int
    ipv6_addresses: int
    population: int
    population_source: str
    ipv4_per_person: float
    ipv6_per_person: float
    summary: tuple[str, ...]
    """The comparison in words, lecture style."""


def address_space(
    population: int = WORLD_POPULATION, source: str = WORLD_POPULATION_SOURCE
) -> AddressSpace:
    """2^32 and 2^128, shared out among everyone alive (the lecture's 4.3 x 10^28 each)."""
    if population < 1:
        raise UsageError(f"bad population {population}: give a whole number of people >= 1")
    v4, v6 = 2**32, 2**128
    per4, per6 = v4 / population, v6 / population
    summary = (
        f"IPv4: 2^32 = {v4:,} addresses ({scientific(v4)})",
        f"IPv6: 2^128 = {v6:,} addresses ({scientific(v6)})",
        f"people: {population:,} ({source})",
        f"IPv4 per person: {per4:.2f} (about one address for every {population / v4:.1f} people)",
        f"IPv6 per person: {scientific(per6)} (the lecture said 4.3 x 10^28, "
        "with the population of its day)",
    )
    return AddressSpace(v4, v6, population, source, per4, per6, summary)
