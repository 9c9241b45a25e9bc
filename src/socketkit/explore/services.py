"""Service names and port numbers, from the system first and a shipped table second.

``getservbyport``/``getservbyname`` read the system's services database
(``/etc/services`` through NSS), which is what the lecture calls. That
database has gaps: Debian's lists ``qotd 17/tcp`` but no UDP entry although
IANA assigns both, and minimal containers have no ``/etc/services`` at all.
So a small table built from the IANA registry ships with socketkit, answers
where the system is silent, and every answer says which source gave it.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

__all__ = [
    "SERVICES_FILE",
    "TRANSPORTS",
    "ServiceCatalog",
    "ServiceEntry",
    "ServicesDatabase",
    "SystemServices",
    "TableServices",
    "read_data_file",
]

TRANSPORTS = ("tcp", "udp")
SERVICES_FILE = "services.csv"


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    port: int
    transport: str
    source: str
    """``system`` (getservby*), ``iana`` (shipped IANA rows) or ``socketkit`` (our own ports)."""
    description: str = ""


class ServicesDatabase(Protocol):
    """One source of service names; returns None where it knows nothing."""

    def by_port(self, port: int, transport: str) -> ServiceEntry | None: ...

    def by_name(self, name: str, transport: str) -> ServiceEntry | None: ...


NSSWITCH_FILE = Path("/etc/nsswitch.conf")
ETC_SERVICES = Path("/etc/services")
_FILE_SOURCES = {"files", "db"}
"""nsswitch sources whose entries all come from /etc/services (``db`` is a
Berkeley DB built from it by ``make -C /var/lib/misc``)."""


class SystemServices:
    """The system's services database, through the socket module as the lecture uses it.

    ``getservbyport`` reads /etc/services from the top on every call, so asking
    it about 65,536 ports x 2 transports takes seconds. When nsswitch says the
    services database is only /etc/services, ``candidate_ports`` reads that
    file once for the ports it mentions, and only those are asked of
    getservbyport: the answers stay the system's own, at a hundredth of the cost.
    """

    def __init__(
        self, *, services_file: Path = ETC_SERVICES, nsswitch: Path = NSSWITCH_FILE
    ) -> None:
        self._services_file = services_file
        self._nsswitch = nsswitch
        self._candidates: dict[str, frozenset[int]] | None = None

    def candidate_ports(self, transport: str) -> frozenset[int] | None:
        """Every port /etc/services names for ``transport``; None if that is not enough."""
        if self._candidates is None:
            self._candidates = self._read_candidates()
        return self._candidates.get(transport) if self._candidates else None

    def _read_candidates(self) -> dict[str, frozenset[int]]:
        if not _only_file_sources(self._nsswitch):
            return {}
        try:
            text = self._services_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        found: dict[str, set[int]] = {}
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2 or "/" not in fields[1]:
                continue
            port, _, proto = fields[1].partition("/")
            if port.isdigit():
                found.setdefault(proto, set()).add(int(port))
        return {proto: frozenset(ports) for proto, ports in found.items()}

    def by_port(self, port: int, transport: str) -> ServiceEntry | None:
        try:
            name = socket.getservbyport(port, transport)
        except (OSError, OverflowError):
            return None
        return ServiceEntry(name, port, transport, "system")

    def by_name(self, name: str, transport: str) -> ServiceEntry | None:
        try:
            port = socket.getservbyname(name, transport)
        except OSError:
            return None
        # getservbyname also accepts aliases (www -> 80); report the official name.
        official = self.by_port(port, transport)
        return ServiceEntry(official.name if official else name, port, transport, "system")


def _only_file_sources(nsswitch: Path) -> bool:
    """True when the ``services:`` line lists only /etc/services-backed sources.

    A missing file or line means glibc's default, which is ``files``.
    """
    try:
        text = nsswitch.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    for line in text.splitlines():
        key, _, value = line.split("#", 1)[0].partition(":")
        if key.strip() == "services":
            sources = {w for w in value.split() if not w.startswith("[")}
            return bool(sources) and sources <= _FILE_SOURCES
    return True


def read_data_file(name: str) -> str:
    """A file shipped in ``socketkit/data`` (works from a wheel or a zip too)."""
    return resources.files("socketkit").joinpath("data", name).read_text(encoding="utf-8")


def csv_rows(text: str) -> list[dict[str, str]]:
    """CSV with a header line, skipping the ``#`` lines that say where the data comes from."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


class TableServices:
    """Services from a table: the shipped CSV, or any rows a test hands in."""

    def __init__(self, entries: Iterable[ServiceEntry], aliases: dict[str, str] | None = None):
        self._by_port: dict[tuple[int, str], ServiceEntry] = {}
        self._by_name: dict[tuple[str, str], ServiceEntry] = {}
        for entry in entries:
            self._by_port.setdefault((entry.port, entry.transport), entry)
            self._by_name.setdefault((entry.name, entry.transport), entry)
        self._aliases = dict(aliases or {})

    @classmethod
    def shipped(cls) -> TableServices:
        """The table in ``socketkit/data/services.csv`` (IANA subset plus socketkit's ports)."""
        entries, aliases = [], {}
        for row in csv_rows(read_data_file(SERVICES_FILE)):
            entries.append(
                ServiceEntry(
                    name=row["service"],
                    port=int(row["port"]),
                    transport=row["transport"],
                    source=row["origin"],
                    description=row["description"],
                )
            )
            for alias in row["aliases"].split():
                aliases[alias] = row["service"]
        return cls(entries, aliases)

    def by_port(self, port: int, transport: str) -> ServiceEntry | None:
        return self._by_port.get((port, transport))

    def by_name(self, name: str, transport: str) -> ServiceEntry | None:
        return self._by_name.get((self._aliases.get(name, name), transport))

    def candidate_ports(self, transport: str) -> frozenset[int]:
        return frozenset(port for port, t in self._by_port if t == transport)


class ServiceCatalog:
    """Ask each database in turn; the first that answers wins, and says so.

    Descriptions come from the shipped table even when the system answered,
    because ``/etc/services`` carries none worth showing.
    """

    def __init__(self, databases: Sequence[ServicesDatabase]):
        self.databases = tuple(databases)

    @classmethod
    def default(cls) -> ServiceCatalog:
        return cls([SystemServices(), TableServices.shipped()])

    @classmethod
    def shipped_only(cls) -> ServiceCatalog:
        return cls([TableServices.shipped()])

    def _describe(self, entry: ServiceEntry) -> ServiceEntry:
        if entry.description:
            return entry
        for db in self.databases:
            other = db.by_port(entry.port, entry.transport)
            if other is not None and other.name == entry.name and other.description:
                return ServiceEntry(
                    entry.name, entry.port, entry.transport, entry.source, other.description
                )
        return entry

    def by_port(self, port: int, transport: str) -> ServiceEntry | None:
        for db in self.databases:
            entry = db.by_port(port, transport)
            if entry is not None:
                return self._describe(entry)
        return None

    def by_name(self, name: str, transport: str) -> ServiceEntry | None:
        for db in self.databases:
            entry = db.by_name(name, transport)
            if entry is not None:
                return self._describe(entry)
        return None

    def candidate_ports(self, transport: str) -> frozenset[int] | None:
        """A superset of the ports any database names, or None: ask every port.

        A database without ``candidate_ports`` (or one that answers None) can
        name any port, so then nothing is skipped.
        """
        union: set[int] = set()
        for db in self.databases:
            ask = getattr(db, "candidate_ports", None)
            ports = ask(transport) if ask is not None else None
            if ports is None:
                return None
            union |= ports
        return frozenset(union)
