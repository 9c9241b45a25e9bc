"""``socketkit ports`` and ``socketkit port``: port numbers, their services and classes.

The lecture's optional task lists the services for a range of ports with
``getservbyport``. We add what a network engineer needs beside it: the IANA
class of each port (RFC 6335 section 6), the range this kernel really takes
client ports from (it differs from IANA's), and which ports have a listener,
read from the kernel's socket tables (``/proc/net/tcp`` ...), never by probing.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from socketkit.endpoints import parse_port
from socketkit.errors import ResolveError, UsageError
from socketkit.explore.services import TRANSPORTS, ServiceCatalog, ServiceEntry

__all__ = [
    "EPHEMERAL_RANGE_FILE",
    "IANA_DYNAMIC",
    "Listener",
    "ListenerScan",
    "PortClass",
    "PortInfo",
    "PortLookup",
    "PortRange",
    "PortsReport",
    "UnixListener",
    "ephemeral_range",
    "iana_range",
    "list_ports",
    "lookup_port",
    "parse_port_range",
    "parse_proc_net",
    "parse_proc_unix",
    "read_listeners",
    "socket_owners",
]

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PROC_NET = Path("/proc/net")
PROC = Path("/proc")
DEFAULT_LOW, DEFAULT_HIGH = 0, 1023

IanaRange = Literal["system", "user", "dynamic"]


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int
    source: str
    """Where the numbers come from (a file, or the RFC)."""

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high


IANA_DYNAMIC = PortRange(49152, 65535, "IANA, RFC 6335 section 6")


def iana_range(port: int) -> IanaRange:
    """System (well-known) 0-1023, user (registered) 1024-49151, dynamic 49152-65535."""
    if port <= 1023:
        return "system"
    if port <= 49151:
        return "user"
    return "dynamic"


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> PortRange | None:
    """The range this kernel picks client (ephemeral) ports from; None off Linux."""
    try:
        low, high = (int(x) for x in path.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return None
    return PortRange(low, high, str(path))


def ephemeral_note(ephemeral: PortRange | None) -> str:
    """The sentence ``ports`` prints about this machine's range versus IANA's."""
    iana = f"IANA's dynamic (ephemeral) range, {IANA_DYNAMIC.low}-{IANA_DYNAMIC.high}"
    if ephemeral is None:
        return (
            f"this machine's ephemeral port range is unknown (cannot read "
            f"{EPHEMERAL_RANGE_FILE}); compare {iana}"
        )
    here = (
        f"this machine's ephemeral port range is {ephemeral.low}-{ephemeral.high} "
        f"(from {ephemeral.source})"
    )
    if (ephemeral.low, ephemeral.high) == (IANA_DYNAMIC.low, IANA_DYNAMIC.high):
        return f"{here}, the same as {iana}"
    return (
        f"{here}; it differs from {iana}: the kernel picks client ports from its own "
        "range, whatever class IANA gives those numbers"
    )


def parse_port_range(low: str | None, high: str | None) -> tuple[int, int]:
    """``LOW [HIGH]`` as the user typed them; defaults 0-1023; one port if only LOW is given."""
    if low is None:
        return DEFAULT_LOW, DEFAULT_HIGH
    lo = parse_port(low, what="LOW port")
    hi = lo if high is None else parse_port(high, what="HIGH port")
    if lo > hi:
        raise UsageError(f"bad port range {lo}-{hi}: LOW must not be greater than HIGH")
    return lo, hi


# -- listeners, from the kernel's socket tables ------------------------------------------

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"
"""TCP_CLOSE: for UDP, a bound socket with no connected peer, i.e. one that receives."""


@dataclass(frozen=True)
class Listener:
    transport: str
    family: str
    address: str
    port: int
    inode: int = 0
    """The socket's inode: the key from /proc/net/* to the process holding it."""
    processes: tuple[str, ...] = ()
    """``name (pid N)`` of each process with the socket open, as ``ss -p`` shows;
    empty when no process could be read (another user's, without root)."""


@dataclass(frozen=True)
class UnixListener:
    """A listening Unix stream socket (``ss -lx``): a path, or an abstract name (``@...``)."""

    path: str
    inode: int = 0
    processes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListenerScan:
    listeners: tuple[Listener, ...]
    read: tuple[str, ...]
    missing: tuple[str, ...]
    unix: tuple[UnixListener, ...] = ()


def _hex_address(text: str, byteorder: Literal["little", "big"]) -> str:
    """``0100007F`` -> ``127.0.0.1``: /proc prints each 32-bit word in host byte order."""
    words = [int(text[i : i + 8], 16).to_bytes(4, byteorder) for i in range(0, len(text), 8)]
    packed = b"".join(words)
    return str(ipaddress.ip_address(packed))


def parse_proc_net(
    text: str,
    transport: str,
    *,
    byteorder: Literal["little", "big"] = sys.byteorder,
) -> list[Listener]:
    """Listening TCP sockets, or bound unconnected UDP sockets, from one /proc/net table."""
    wanted = TCP_LISTEN if transport == "tcp" else UDP_UNCONNECTED
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1]:
            continue
        local, remote, state = fields[1], fields[2], fields[3]
        if state != wanted or (transport == "udp" and not remote.endswith(":0000")):
            continue
        host_hex, port_hex = local.split(":")
        family = "AF_INET6" if len(host_hex) == 32 else "AF_INET"
        inode = int(fields[9]) if len(fields) > 9 and fields[9].isdigit() else 0
        found.append(
            Listener(
                transport,
                family,
                _hex_address(host_hex, byteorder),
                int(port_hex, 16),
                inode,
            )
        )
    return found


_SO_ACCEPTCON = 0x10000
"""/proc/net/unix "Flags": the socket is listening (``__SO_ACCEPTCON``)."""


def parse_proc_unix(text: str) -> list[UnixListener]:
    """Listening Unix sockets from /proc/net/unix (stream and seqpacket, with a name)."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        flags, inode, name = int(fields[3], 16), fields[6], fields[7]
        if flags & _SO_ACCEPTCON and inode.isdigit():
            found.append(UnixListener(name, int(inode)))
    return found


def socket_owners(proc: Path = PROC) -> dict[int, tuple[str, ...]]:
    """Socket inode -> ``name (pid N)`` of every process holding it, from /proc/*/fd.

    The same walk ``ss -p`` and ``lsof`` do: each fd that links to
    ``socket:[INODE]``. Processes that vanish or belong to another user
    (without root) are skipped, so their sockets show no process.
    """
    owners: dict[int, list[str]] = {}
    try:
        pids = [entry for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            fds = list(os.scandir(f"{pid.path}/fd"))
            name = Path(pid.path, "comm").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        label = f"{name} (pid {pid.name})"
        for fd in fds:
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:[") and (inode := target[8:-1]).isdigit():
                held = owners.setdefault(int(inode), [])
                if label not in held:
                    held.append(label)
    return {inode: tuple(labels) for inode, labels in owners.items()}


def read_listeners(
    transports: Sequence[str] = TRANSPORTS,
    *,
    proc_net: Path = PROC_NET,
    proc: Path = PROC,
    unix: bool = True,
) -> ListenerScan:
    """Every listener in /proc/net/{tcp,tcp6,udp,udp6,unix}, with the processes
    that hold them (from /proc/*/fd): what ``ss -ltnupx`` shows. Only reads;
    sends no packet and probes no port."""
    listeners: list[Listener] = []
    unix_listeners: list[UnixListener] = []
    read, missing = [], []
    tables = [(t, name) for t in transports for name in (t, t + "6")]
    if unix:
        tables.append(("unix", "unix"))
    for transport, table in tables:
        path = proc_net / table
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            missing.append(str(path))
            continue
        read.append(str(path))
        if transport == "unix":
            unix_listeners += parse_proc_unix(text)
        else:
            listeners += parse_proc_net(text, transport)
    owners = socket_owners(proc) if listeners or unix_listeners else {}
    listeners = [replace(x, processes=owners.get(x.inode, ())) for x in listeners]
    unix_listeners = [replace(x, processes=owners.get(x.inode, ())) for x in unix_listeners]
    unique = sorted(set(listeners), key=lambda x: (x.port, x.transport, x.family, x.address))
    return ListenerScan(
        tuple(unique),
        tuple(read),
        tuple(missing),
        tuple(sorted(set(unix_listeners), key=lambda x: (x.path, x.inode))),
    )


# -- the range report and the single look-up ---------------------------------------------


@dataclass(frozen=True)
class PortInfo:
    port: int
    iana_range: IanaRange
    os_ephemeral: bool | None
    """Inside this kernel's ephemeral range (None when that range is unknown)."""
    services: tuple[ServiceEntry, ...]
    """At most one per transport: the first source that knows it."""
    listeners: tuple[Listener, ...]


@dataclass(frozen=True)
class PortsReport:
    low: int
    high: int
    transports: tuple[str, ...]
    ports: tuple[PortInfo, ...]
    """Ports with a service; with ``listening``, only ports with a listener."""
    ephemeral: PortRange | None
    iana_dynamic: PortRange
    listening_checked: bool
    listener_tables: tuple[str, ...]
    notes: tuple[str, ...]
    unix_listeners: tuple[UnixListener, ...] = ()


def list_ports(
    low: int = DEFAULT_LOW,
    high: int = DEFAULT_HIGH,
    *,
    transports: Sequence[str] = TRANSPORTS,
    listening: bool = False,
    catalog: ServiceCatalog | None = None,
    ephemeral: PortRange | None = None,
    listeners: ListenerScan | None = None,
) -> PortsReport:
    """Every port in LOW..HIGH that has a service; with ``listening``, only the
    ports with a listener (and the service names they have), as ``ss -ltnup``.

    ``ephemeral`` and ``listeners`` are read from this machine when not given,
    so tests can hand in their own.
    """
    for port in (low, high):
        if not 0 <= port <= 65535:
            raise UsageError(f"bad port {port}: ports run from 0 to 65535")
    if low > high:
        raise UsageError(f"bad port range {low}-{high}: LOW must not be greater than HIGH")
    for transport in transports:
        if transport not in TRANSPORTS:
            raise UsageError(f"bad transport {transport!r}: choose tcp or udp")
    cat = catalog or ServiceCatalog.default()
    eph = ephemeral if ephemeral is not None else ephemeral_range()
    scan = (listeners or read_listeners(transports)) if listening else None

    by_port: dict[int, list[Listener]] = {}
    if scan is not None:
        for item in scan.listeners:
            if item.transport in transports and low <= item.port <= high:
                by_port.setdefault(item.port, []).append(item)

    rows = []
    wanted = sorted(by_port) if scan is not None else _ports_to_ask(cat, transports, low, high)
    for port in wanted:
        services = tuple(entry for t in transports if (entry := cat.by_port(port, t)) is not None)
        here = tuple(by_port.get(port, ()))
        if services or here:
            rows.append(
                PortInfo(
                    port=port,
                    iana_range=iana_range(port),
                    os_ephemeral=None if eph is None else port in eph,
                    services=services,
                    listeners=here,
                )
            )
    notes = [ephemeral_note(eph)]
    if scan is not None and scan.missing and not scan.read:
        notes.append(
            "cannot tell which ports have listeners: no kernel socket tables "
            f"({', '.join(scan.missing)}); --listening works on Linux"
        )
    return PortsReport(
        low=low,
        high=high,
        transports=tuple(transports),
        ports=tuple(rows),
        ephemeral=eph,
        iana_dynamic=IANA_DYNAMIC,
        listening_checked=scan is not None and bool(scan.read),
        listener_tables=scan.read if scan is not None else (),
        notes=tuple(notes),
        unix_listeners=scan.unix if scan is not None else (),
    )


def _ports_to_ask(
    cat: ServiceCatalog, transports: Sequence[str], low: int, high: int
) -> Sequence[int]:
    """The ports worth asking the catalog about, in order: all of LOW..HIGH,
    or (when every database can say which ports it knows) only those."""
    known: set[int] = set()
    for transport in transports:
        ports = cat.candidate_ports(transport)
        if ports is None:
            return range(low, high + 1)
        known |= ports
    return sorted(p for p in known if low <= p <= high)


@dataclass(frozen=True)
class PortClass:
    port: int
    iana_range: IanaRange
    os_ephemeral: bool | None


@dataclass(frozen=True)
class PortLookup:
    query: str
    by: Literal["number", "name"]
    entries: tuple[ServiceEntry, ...]
    """One per transport that knows the port or name, with the source that answered."""
    ports: tuple[PortClass, ...]


def lookup_port(
    query: str,
    *,
    transports: Sequence[str] = TRANSPORTS,
    catalog: ServiceCatalog | None = None,
    ephemeral: PortRange | None = None,
) -> PortLookup:
    """``http`` -> 80/tcp, 80/udp; ``17`` -> qotd/tcp (system), qotd/udp (iana).

    A number with no service is an answer (empty entries); a name nobody
    knows is a ResolveError, as getaddrinfo's "Servname not supported" is.
    """
    cat = catalog or ServiceCatalog.default()
    eph = ephemeral if ephemeral is not None else ephemeral_range()
    text = query.strip()
    entries: list[ServiceEntry] = []
    if text.lstrip("+-").isdigit():
        port = parse_port(text)
        by: Literal["number", "name"] = "number"
        entries = [e for t in transports if (e := cat.by_port(port, t)) is not None]
        numbers = [port]
    else:
        if not text:
            raise UsageError("give a service name or a port number, e.g. socketkit port http")
        by = "name"
        missing = list(transports)
        # Try the name, then the official names it led to (quote -> qotd) for the rest.
        names = [text]
        for name in names:
            for transport in list(missing):
                entry = cat.by_name(name, transport)
                if entry is not None:
                    entries.append(entry)
                    missing.remove(transport)
                    if entry.name not in names:
                        names.append(entry.name)
        if not entries:
            raise ResolveError(
                f"no service named {text!r} in this system's services database or socketkit's "
                "IANA table - check the spelling, or give a port number"
            )
        entries.sort(key=lambda e: transports.index(e.transport))
        numbers = sorted({e.port for e in entries})
    return PortLookup(
        query=text,
        by=by,
        entries=tuple(entries),
        ports=tuple(
            PortClass(p, iana_range(p), None if eph is None else p in eph) for p in numbers
        ),
    )
