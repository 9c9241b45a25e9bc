"""The explorers: ``host``, ``addrinfo``, ``constants``, ``ports``, ``port``, ``addr``.

Each command asks ``socketkit.explore`` for data and renders it: a table on a
terminal, tab-separated rows when piped, ``--json`` for programs. Where the
data came from the system (resolver, services database, kernel) the
``ENVIRONMENT`` hook lets tests hand in fakes instead.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socketkit.cli.common import positive_int
from socketkit.cli.render import print_json, print_note, print_table
from socketkit.endpoints import join_host_port
from socketkit.errors import UsageError
from socketkit.explore.addresses import (
    WORLD_POPULATION,
    AddressReport,
    NetworkReport,
    address_space,
    classify_address,
    classify_network,
    scientific,
)
from socketkit.explore.addrinfo import address_info
from socketkit.explore.constants import DEFAULT_PREFIXES, constant_groups
from socketkit.explore.hosts import (
    HOSTS_FILE,
    NSSWITCH_FILE,
    InterfaceAddress,
    host_info,
    interface_addresses,
)
from socketkit.explore.ports import (
    ListenerScan,
    PortRange,
    PortsReport,
    ephemeral_range,
    list_ports,
    lookup_port,
    parse_port_range,
    read_listeners,
)
from socketkit.explore.resolver import Resolver, SystemResolver
from socketkit.explore.services import TRANSPORTS, ServiceCatalog, ServiceEntry

__all__ = ["ENVIRONMENT", "Environment", "register"]


@dataclass
class Environment:
    """Where the explorers' facts come from; the system's unless a test swaps it."""

    resolver: Resolver = field(default_factory=SystemResolver)
    catalog: Callable[[], ServiceCatalog] = ServiceCatalog.default
    ephemeral: Callable[[], PortRange | None] = ephemeral_range
    listeners: Callable[[Sequence[str]], ListenerScan] = read_listeners
    clock: Callable[[], float] = time.perf_counter
    socket_module: Any = socket
    hosts_file: Path = HOSTS_FILE
    nsswitch: Path = NSSWITCH_FILE
    interfaces: Callable[[], tuple[InterfaceAddress, ...]] | None = interface_addresses


ENVIRONMENT: Environment | None = None
"""Tests set this to an ``Environment`` of fakes; None means this machine."""


def _env() -> Environment:
    return ENVIRONMENT if ENVIRONMENT is not None else Environment()


def _parser(sub: Any, name: str, help_text: str, description: str, examples: str) -> Any:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def register(sub: Any) -> None:
    p = _parser(
        sub,
        "host",
        "what the resolver knows about a host name (default: this machine)",
        "Host name, fully qualified name, canonical name, aliases and every IPv4 and IPv6 "
        "address, as the resolver reports them (socket.gethostname, getfqdn, "
        "gethostbyname_ex, getaddrinfo).",
        "  socketkit host                 this machine\n"
        "  socketkit host localhost\n"
        "  socketkit host example.com --json\n",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="host name (default: this machine)")
    p.set_defaults(handler=_host)

    p = _parser(
        sub,
        "addrinfo",
        "each getaddrinfo result, with family, type and protocol by name",
        "Call getaddrinfo(HOST, SERVICE) once and show every result in the resolver's order "
        "(the order clients try them), with AF_/SOCK_/IPPROTO_ names, the canonical name, "
        "the socket address, and how long resolution took. A service name the system's "
        "services database lacks is looked up in socketkit's IANA table.",
        "  socketkit addrinfo localhost http\n"
        "  socketkit addrinfo example.com 443 --family 6 --type stream\n"
        "  socketkit addrinfo '' 8080 --passive      the wildcard addresses a server binds\n",
    )
    p.add_argument("host", metavar="HOST", help="name or address ('' with --passive: any)")
    p.add_argument("service", nargs="?", metavar="SERVICE", help="port number or service name")
    p.add_argument(
        "--family", type=int, choices=(4, 6), help="only IPv4 (AF_INET) or IPv6 (AF_INET6)"
    )
    p.add_argument(
        "--type",
        dest="socktype",
        choices=("stream", "dgram"),
        help="only SOCK_STREAM (TCP) or SOCK_DGRAM (UDP)",
    )
    p.add_argument(
        "--passive", action="store_true", help="AI_PASSIVE: addresses to bind, not connect"
    )
    p.set_defaults(handler=_addrinfo)

    p = _parser(
        sub,
        "constants",
        "the socket module's constants, value to every name",
        "The socket module's integer constants for each PREFIX (default: "
        f"{' '.join(DEFAULT_PREFIXES)}: families, types, protocols, option levels and "
        "socket options), one table per group, sorted by value, with what each is for and "
        "every alias where several names share a value (AF_NETLINK and AF_ROUTE; "
        "IPPROTO_IP and IPPROTO_HOPOPTS).",
        "  socketkit constants\n  socketkit constants SO_ MSG_\n  socketkit constants af_ --json\n",
    )
    p.add_argument("prefixes", nargs="*", metavar="PREFIX", help="name prefix, e.g. AF_ or SO_")
    p.set_defaults(handler=_constants)

    p = _parser(
        sub,
        "ports",
        "services, IANA range class and listeners for a range of ports",
        "For each port in LOW..HIGH (default 0-1023) that has a service: its name per "
        "transport and which source named it (the system's services database; socketkit's "
        "shipped IANA table where the system has no entry), its IANA range class (system "
        "0-1023, user 1024-49151, dynamic 49152-65535), and this machine's ephemeral range "
        "as the kernel reports it. --listening shows only the sockets listening on this "
        "machine (default: every port) with the processes holding them, as ss -ltnupx does: "
        "it reads the kernel's socket tables (/proc/net/tcp, tcp6, udp, udp6, unix) and "
        "/proc/*/fd, and never sends a packet.",
        "  socketkit ports                    the well-known ports 0-1023\n"
        "  socketkit ports 80                 one port\n"
        "  socketkit ports 1 65535            every named port, in well under a second\n"
        "  socketkit ports --listening        what listens here, with its process (ss -ltnupx)\n"
        "  sudo socketkit ports --listening   ... including other users' processes\n"
        "  socketkit ports 0 1023 --udp --json\n",
    )
    p.add_argument("low", nargs="?", metavar="LOW", help="first port (default 0)")
    p.add_argument("high", nargs="?", metavar="HIGH", help="last port (default: LOW, or 1023)")
    _add_transport_options(p)
    p.add_argument(
        "--listening",
        action="store_true",
        help="only ports with a listening socket here, with its address and process "
        "(from /proc/net and /proc/*/fd); Unix listeners follow",
    )
    p.set_defaults(handler=_ports)

    p = _parser(
        sub,
        "port",
        "look a service up by name or by number (http -> 80/tcp, 80/udp)",
        "Look up a port number's service names, or a service name's ports, per transport, "
        "saying which source answered and the port's IANA range class.",
        "  socketkit port http\n  socketkit port 17          qotd: tcp from the system, udp from IANA\n"
        "  socketkit port sum         socketkit's own sum service\n",
    )
    p.add_argument("query", metavar="NAME|NUMBER", help="service name or port number")
    _add_transport_options(p)
    p.set_defaults(handler=_port)

    p = _parser(
        sub,
        "addr",
        "an address's forms and its class from the IANA special-purpose registries",
        "For each ADDRESS: version, compressed and exploded forms, integer value, "
        "reverse-pointer name, and its class from IANA's special-purpose address registries "
        "(shipped with socketkit, so the answer does not depend on the Python version). "
        "IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are classified as the IPv4 address they "
        "carry. A network (ADDRESS/PREFIX) gets its network and broadcast addresses, first "
        "and last host, address and host counts, prefix and mask in bits (binary view) and "
        "the registry block that holds it. --space prints the sizes of the IPv4 and IPv6 "
        "address spaces per person.",
        "  socketkit addr 127.0.0.1 ::ffff:127.0.0.1 100.64.0.1\n"
        "  socketkit addr 192.168.1.0/24      network, broadcast, hosts 1-254, binary view\n"
        "  socketkit addr 2001:db8::1 --json\n"
        "  socketkit addr --space\n",
    )
    p.add_argument(
        "addresses",
        nargs="*",
        metavar="ADDRESS",
        help="IPv4 or IPv6 address, or a network ADDRESS/PREFIX",
    )
    p.add_argument("--space", action="store_true", help="the sizes of the address spaces")
    p.add_argument(
        "--population",
        type=positive_int,
        default=WORLD_POPULATION,
        metavar="N",
        help=f"people to share the addresses among with --space (default {WORLD_POPULATION:,})",
    )
    p.set_defaults(handler=_addr)


def _add_transport_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--tcp", action="store_true", help="TCP only")
    group.add_argument("--udp", action="store_true", help="UDP only")


def _transports(args: argparse.Namespace) -> tuple[str, ...]:
    if args.tcp:
        return ("tcp",)
    if args.udp:
        return ("udp",)
    return TRANSPORTS


def _dash(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "-"


# -- handlers -----------------------------------------------------------------------------


def _host(args: argparse.Namespace) -> int:
    env = _env()
    info = host_info(
        args.name,
        resolver=env.resolver,
        hosts_file=env.hosts_file,
        nsswitch=env.nsswitch,
        interfaces=env.interfaces,
    )
    if args.json:
        print_json(info)
        return 0
    rows: list[tuple[str, str]] = [
        ("name", info.query),
        ("this machine", "yes (socket.gethostname())" if info.this_machine else "no"),
        ("fqdn", info.fqdn),
        ("canonical name", info.canonical_name),
        ("aliases", _dash(info.aliases)),
        ("looked up in", " then ".join(info.sources) + f" ({env.nsswitch}, hosts:)"),
    ]
    rows += [
        ("IPv6" if a.family == "AF_INET6" else "IPv4", f"{a.address}  from {a.source}")
        for a in info.addresses
    ]
    print_table(["field", "value"], rows, title=f"host {info.query}")
    if info.interfaces:
        print_table(
            ["interface", "index", "family", "address"],
            [
                (
                    i.interface,
                    "-" if i.index is None else str(i.index),
                    "IPv6" if i.family == "AF_INET6" else "IPv4",
                    i.address if i.prefix_length is None else f"{i.address}/{i.prefix_length}",
                )
                for i in info.interfaces
            ],
            title="this machine's interface addresses (psutil.net_if_addrs, if_nameindex)",
        )
    return 0


def _addrinfo(args: argparse.Namespace) -> int:
    env = _env()
    host = args.host or None
    report = address_info(
        host,
        args.service,
        family=args.family,
        socktype=args.socktype,
        passive=args.passive,
        resolver=env.resolver,
        catalog=env.catalog() if args.service and not args.service.isdigit() else None,
        clock=env.clock,
    )
    if args.json:
        print_json(report)
        return 0
    call = (
        f"socket.getaddrinfo({host!r}, {args.service!r}, {report.family}, {report.type}, "
        f"flags={'|'.join(report.flags) or 0})"
    )
    print_table(
        ["family", "type", "protocol", "canonical name", "address"],
        [(r.family, r.type, r.protocol, r.canonical_name, r.address) for r in report.results],
        title=call,
    )
    print_note(
        f"{len(report.results)} result(s) in {report.elapsed_ms:.3f} ms, in the resolver's order"
    )
    if report.service_source != "resolver":
        print_note(
            f"the system's services database has no {args.service!r} for this type; the port "
            f"came from socketkit's shipped table ({report.service_source})"
        )
    return 0


def _constants(args: argparse.Namespace) -> int:
    groups = constant_groups(args.prefixes, _env().socket_module)
    if args.json:
        print_json(groups)
        return 0
    for g in groups:
        print_table(
            ["value", "names", "meaning"],
            [(c.value, ", ".join(c.names), c.meaning or "-") for c in g.constants],
            title=f"{g.prefix}: {g.title} (aliases share a row)",
        )
    return 0


def _service_cell(services: Sequence[ServiceEntry], transport: str) -> str:
    for entry in services:
        if entry.transport == transport:
            return entry.name if entry.source == "system" else f"{entry.name} ({entry.source})"
    return "-"


_RANGE_LABELS = {
    "system": "system (0-1023)",
    "user": "user (1024-49151)",
    "dynamic": "dynamic (49152-65535)",
}


def _range_cell(iana_range: str, os_ephemeral: bool | None) -> str:
    return _RANGE_LABELS[iana_range] + (", ephemeral here" if os_ephemeral else "")


def _ports(args: argparse.Namespace) -> int:
    env = _env()
    if args.listening and args.low is None:
        low, high = 0, 65535
    else:
        low, high = parse_port_range(args.low, args.high)
    transports = _transports(args)
    report = list_ports(
        low,
        high,
        transports=transports,
        listening=args.listening,
        catalog=env.catalog(),
        ephemeral=env.ephemeral(),
        listeners=env.listeners(transports) if args.listening else None,
    )
    if args.json:
        print_json(report)
        return 0
    if args.listening:
        _print_listeners(report, transports)
    else:
        _print_ports(report, transports)
    for note in report.notes:
        print_note(note)
    return 0


def _print_ports(report: PortsReport, transports: Sequence[str]) -> None:
    headers = ["port", "IANA range", *transports, "description"]
    rows = []
    for info in report.ports:
        row = [str(info.port), _range_cell(info.iana_range, info.os_ephemeral)]
        row += [_service_cell(info.services, t) for t in transports]
        row.append(next((s.description for s in info.services if s.description), ""))
        rows.append(row)
    print_table(headers, rows, title=f"ports {report.low}-{report.high}")
    sources = {s.source for info in report.ports for s in info.services} - {"system"}
    summary = f"{len(report.ports)} of {report.high - report.low + 1} ports listed"
    if sources:
        summary += (
            "; names marked (iana) come from socketkit's shipped IANA table where this "
            "system's services database has none, (socketkit) are socketkit's own ports"
        )
    print_note(summary)


def _print_listeners(report: PortsReport, transports: Sequence[str]) -> None:
    """One row per listening socket, like ``ss -ltnup``: where, which service, who."""
    rows = []
    for info in report.ports:
        for x in info.listeners:
            service = next((s.name for s in info.services if s.transport == x.transport), "")
            rows.append(
                (
                    x.transport,
                    join_host_port(x.address, x.port),
                    service or "-",
                    ", ".join(x.processes) or "-",
                    _range_cell(info.iana_range, info.os_ephemeral),
                )
            )
    print_table(
        ["transport", "local address", "service", "process", "IANA range"],
        rows,
        title=f"listening sockets, ports {report.low}-{report.high}",
    )
    if report.unix_listeners:
        print_table(
            ["Unix socket", "process"],
            [(u.path, ", ".join(u.processes) or "-") for u in report.unix_listeners],
            title="listening Unix sockets",
        )
    sockets = len(rows)
    print_note(
        f"{sockets} listening {'/'.join(transports)} socket(s) on {len(report.ports)} port(s)"
        + (f", {len(report.unix_listeners)} Unix" if report.unix_listeners else "")
        + f"; read from {', '.join(report.listener_tables) or 'nothing'}"
        + ("" if os.geteuid() == 0 else "; without root, other users' processes show as -")
    )


def _port(args: argparse.Namespace) -> int:
    env = _env()
    result = lookup_port(
        args.query, transports=_transports(args), catalog=env.catalog(), ephemeral=env.ephemeral()
    )
    if args.json:
        print_json(result)
        return 0
    classes = {c.port: c for c in result.ports}
    if not result.entries:
        c = result.ports[0]
        print_note(
            f"no service known for port {c.port} ({', '.join(_transports(args))}) in this "
            "system's services database or socketkit's IANA table; IANA range: "
            f"{_range_cell(c.iana_range, c.os_ephemeral)}"
        )
        return 0
    print_table(
        ["name", "port", "transport", "IANA range", "answered by", "description"],
        [
            (
                e.name,
                e.port,
                e.transport,
                _range_cell(classes[e.port].iana_range, classes[e.port].os_ephemeral),
                e.source,
                e.description,
            )
            for e in result.entries
        ],
        title=f"port {result.query}",
    )

    return 0


def _address_rows(r: AddressReport) -> list[tuple[str, str]]:
    reachable = {True: "yes", False: "no", None: "not stated by the registry"}
    rows = [
        ("address", r.input),
        ("version", f"IPv{r.version}"),
        ("class", r.category),
        ("registry", r.description),
        ("globally reachable", reachable[r.globally_reachable]),
        ("compressed", r.compressed),
        ("exploded", r.exploded),
        ("integer", str(r.integer)),
        ("reverse pointer", r.reverse_pointer),
    ]
    if r.scope_id:
        rows.append(("zone", r.scope_id))
    if r.ipv4_mapped:
        rows.append(("IPv4-mapped", f"{r.ipv4_mapped} (classified as that IPv4 address)"))
    rows += [("also in", f"{m.block} {m.name}") for m in r.matches[1:]]
    return rows


def _addr(args: argparse.Namespace) -> int:
    if args.space:
        if args.addresses:
            raise UsageError("give addresses or --space, not both")
        space = address_space(args.population)
        if args.json:
            print_json(space)
            return 0
        print_table(
            ["what", "how many"],
            [
                (
                    "IPv4 addresses",
                    f"2^32 = {space.ipv4_addresses:,} ({scientific(space.ipv4_addresses)})",
                ),
                (
                    "IPv6 addresses",
                    f"2^128 = {space.ipv6_addresses:,} ({scientific(space.ipv6_addresses)})",
                ),
                ("people", f"{space.population:,}"),
                ("IPv4 per person", f"{space.ipv4_per_person:.2f}"),
                ("IPv6 per person", scientific(space.ipv6_per_person)),
            ],
            title="the IPv4 and IPv6 address spaces",
        )
        print_note(
            f"population: {space.population_source}"
            if args.population == WORLD_POPULATION
            else "population: as given with --population"
        )
        print_note(space.summary[-1])
        return 0
    if not args.addresses:
        raise UsageError(
            "give one or more addresses, e.g. socketkit addr ::ffff:127.0.0.1, or --space"
        )
    reports: list[AddressReport | NetworkReport] = [
        classify_network(a) if "/" in a else classify_address(a) for a in args.addresses
    ]
    if args.json:
        print_json(reports)
        return 0
    for report in reports:
        rows = _network_rows(report) if isinstance(report, NetworkReport) else _address_rows(report)
        print_table(["field", "value"], rows, title=report.input)
    return 0


def _network_rows(r: NetworkReport) -> list[tuple[str, str]]:
    rows = [
        ("network", f"{r.network} (IPv{r.version})"),
        ("class", r.category),
        ("registry", r.description),
        ("network address", r.network_address),
        ("broadcast", r.broadcast or "none: IPv6 has no broadcast (multicast instead)"),
        ("first host", r.first_host),
        ("last host", r.last_host),
        ("hosts", f"{r.hosts:,} usable of {r.addresses:,} addresses (2^{r.host_bits})"),
        ("prefix", f"/{r.prefix_length}: {r.prefix_length} network bits, {r.host_bits} host bits"),
        ("netmask", r.netmask),
        ("host mask", r.hostmask),
        ("network, binary", r.binary_network),
        ("mask, binary", r.binary_mask),
    ]
    if r.host_bits_set:
        rows.insert(1, ("given", f"{r.host_bits_set}: host bits set; its network is {r.network}"))
    rows += [("also in", f"{m.block} {m.name}") for m in r.matches[1:]]
    rows += [("contains", f"{m.block} {m.name}") for m in r.overlaps[:8]]
    if len(r.overlaps) > 8:
        rows.append(("contains", f"... and {len(r.overlaps) - 8} more (see --json)"))
    return rows
