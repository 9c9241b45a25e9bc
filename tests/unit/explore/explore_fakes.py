"""Fakes for the explorers: a resolver, services tables and kernel facts, no DNS.

Imported by the tests here (``from explore_fakes import ...``) and by conftest's fixture.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from types import SimpleNamespace

from socketkit.explore.hosts import InterfaceAddress
from socketkit.explore.ports import Listener, ListenerScan, PortRange, UnixListener
from socketkit.explore.resolver import StaticResolver
from socketkit.explore.services import ServiceCatalog, ServiceEntry, TableServices


def fake_resolver() -> StaticResolver:
    return StaticResolver(
        hostname="labhost",
        fqdn={"labhost": "labhost.lab.example"},
        hosts={
            "labhost": ("labhost.lab.example", ["labhost", "lab"], ["192.0.2.10", "2001:db8::10"]),
            "www.example.com": (
                "web.example.com",
                ["www.example.com"],
                ["2001:db8::80", "192.0.2.80"],
            ),
            "v6only.example": ("v6only.example", [], ["2001:db8::6"]),
        },
        services={"http": 80, "echo": 7, "qotd": 17},
    )


def fake_system_services() -> TableServices:
    """Like Debian's /etc/services: qotd and http over TCP only."""
    rows = [
        ("echo", 7, "tcp"),
        ("echo", 7, "udp"),
        ("qotd", 17, "tcp"),
        ("ssh", 22, "tcp"),
        ("http", 80, "tcp"),
    ]
    return TableServices(
        [ServiceEntry(n, p, t, "system") for n, p, t in rows],
        aliases={"quote": "qotd", "www": "http"},
    )


def fake_shipped_services() -> TableServices:
    rows = [
        ("echo", 7, "tcp", "Echo"),
        ("echo", 7, "udp", "Echo"),
        ("qotd", 17, "tcp", "Quote of the Day"),
        ("qotd", 17, "udp", "Quote of the Day"),
        ("http", 80, "tcp", "World Wide Web HTTP"),
        ("http", 80, "udp", "World Wide Web HTTP"),
    ]
    entries = [ServiceEntry(n, p, t, "iana", d) for n, p, t, d in rows]
    entries += [
        ServiceEntry("socketkit-sum", 10100, t, "socketkit", "socketkit sum")
        for t in ("tcp", "udp")
    ]
    return TableServices(entries, aliases={"sum": "socketkit-sum"})


def fake_catalog() -> ServiceCatalog:
    return ServiceCatalog([fake_system_services(), fake_shipped_services()])


LINUX_EPHEMERAL = PortRange(32768, 60999, "/proc/sys/net/ipv4/ip_local_port_range")

FAKE_LISTENERS = ListenerScan(
    listeners=(
        Listener("tcp", "AF_INET", "127.0.0.1", 22, 101, ("sshd (pid 400)",)),
        Listener("tcp", "AF_INET6", "::", 22, 102, ("sshd (pid 400)",)),
        Listener("tcp", "AF_INET", "127.0.0.1", 10007, 103, ("socketkit (pid 1234)",)),
        Listener("udp", "AF_INET", "127.0.0.1", 10007, 104, ("socketkit (pid 1234)",)),
    ),
    read=("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6", "/proc/net/unix"),
    missing=(),
    unix=(UnixListener("/run/socketkit/echo.sock", 105, ("socketkit (pid 1234)",)),),
)


def fake_listeners(transports: Sequence[str]) -> ListenerScan:
    return ListenerScan(
        tuple(x for x in FAKE_LISTENERS.listeners if x.transport in transports),
        FAKE_LISTENERS.read,
        (),
    )


FAKE_SOCKET = SimpleNamespace(
    AF_UNSPEC=0,
    AF_UNIX=1,
    AF_LOCAL=1,
    AF_INET=2,
    AF_INET6=10,
    AF_NETLINK=16,
    AF_ROUTE=16,
    SOCK_STREAM=1,
    SOCK_DGRAM=2,
    IPPROTO_IP=0,
    IPPROTO_HOPOPTS=0,
    IPPROTO_TCP=6,
    IPPROTO_UDP=17,
    has_ipv6=True,
    AF_NOT_A_NUMBER="x",
)
"""A socket module with the aliases that matter: AF_UNIX/AF_LOCAL, AF_NETLINK/AF_ROUTE, 0."""


def fake_clock() -> Iterator[float]:
    """Each call 2.5 ms after the last."""
    return (n * 0.0025 for n in itertools.count())


FAKE_HOSTS = """\
# a lab machine's /etc/hosts
127.0.0.1   localhost
192.0.2.10  labhost.lab.example labhost lab
2001:db8::10 labhost.lab.example labhost lab
::1         localhost ip6-localhost
"""
FAKE_NSSWITCH = "passwd: files\nhosts:          files mdns4_minimal [NOTFOUND=return] dns\n"


def fake_interfaces() -> tuple[InterfaceAddress, ...]:
    return (
        InterfaceAddress("eth0", 2, "AF_INET", "192.0.2.10", 24),
        InterfaceAddress("eth0", 2, "AF_INET6", "2001:db8::10", 64),
        InterfaceAddress("lo", 1, "AF_INET", "127.0.0.1", 8),
        InterfaceAddress("lo", 1, "AF_INET6", "::1", 128),
    )
