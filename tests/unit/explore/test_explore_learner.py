"""Explorers for the learner: networks (CIDR), where host answers come from,
interface addresses, constants with meanings, fast port ranges, listeners
with their processes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from socketkit.errors import UsageError
from socketkit.explore.addresses import classify_network
from socketkit.explore.constants import GROUP_TITLES, constant_groups
from socketkit.explore.hosts import (
    host_info,
    hosts_sources,
    interface_addresses,
    parse_hosts_file,
)
from socketkit.explore.ports import (
    list_ports,
    parse_proc_unix,
    read_listeners,
    socket_owners,
)
from socketkit.explore.resolver import StaticResolver
from socketkit.explore.services import ServiceCatalog, SystemServices, TableServices
from tests.unit.explore.explore_fakes import LINUX_EPHEMERAL

# --- addr NETWORK -------------------------------------------------------------


def test_ipv4_network_in_every_form() -> None:
    r = classify_network("192.168.1.0/24")
    assert (r.network, r.network_address, r.broadcast) == (
        "192.168.1.0/24",
        "192.168.1.0",
        "192.168.1.255",
    )
    assert (r.first_host, r.last_host, r.hosts, r.addresses) == (
        "192.168.1.1",
        "192.168.1.254",
        254,
        256,
    )
    assert (r.prefix_length, r.host_bits, r.netmask, r.hostmask) == (
        24,
        8,
        "255.255.255.0",
        "0.0.0.255",
    )
    assert r.binary_network == "11000000.10101000.00000001|00000000"
    assert r.binary_mask == "11111111.11111111.11111111|00000000"
    assert r.category == "private-use"
    assert r.matches[0].block == "192.168.0.0/16"
    assert "RFC 1918" in r.description
    assert r.host_bits_set is None


def test_host_bits_set_are_reported_not_refused() -> None:
    r = classify_network("10.1.2.3/8")
    assert r.network == "10.0.0.0/8"
    assert r.host_bits_set == "10.1.2.3"
    assert r.binary_network == "00001010|00000000.00000000.00000000"


@pytest.mark.parametrize(
    ("cidr", "hosts", "first", "last", "broadcast"),
    [
        ("10.0.0.0/31", 2, "10.0.0.0", "10.0.0.1", "10.0.0.1"),  # RFC 3021 point-to-point
        ("10.0.0.5/32", 1, "10.0.0.5", "10.0.0.5", "10.0.0.5"),
        ("2001:db8::/64", 2**64 - 1, "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", None),
        ("2001:db8::/127", 2, "2001:db8::", "2001:db8::1", None),  # RFC 6164
    ],
)
def test_edge_prefixes(cidr: str, hosts: int, first: str, last: str, broadcast: str | None) -> None:
    r = classify_network(cidr)
    assert (r.hosts, r.first_host, r.last_host, r.broadcast) == (hosts, first, last, broadcast)


def test_ipv6_network_registry_and_binary_groups() -> None:
    r = classify_network("2001:db8::/32")
    assert r.category == "documentation"
    # eight groups of 16 bits; the prefix mark takes the place of the ':' it falls on
    assert r.binary_network.count(":") == 6
    assert r.binary_network.index("|") == 32 + 1
    assert r.binary_network.replace("|", ":").split(":")[:2] == [
        "0010000000000001",
        "0000110110111000",
    ]


def test_a_network_holding_special_blocks_lists_them() -> None:
    r = classify_network("192.0.0.0/8")
    assert {"192.0.2.0/24", "192.168.0.0/16"} <= {e.block for e in r.overlaps}


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "nonsense/8", "10.0.0.0/x"])
def test_bad_networks_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="bad network"):
        classify_network(bad)


# --- host: where each answer came from ----------------------------------------

HOSTS = """\
# comment line
127.0.0.1 localhost
192.0.2.10 labhost.lab.example labhost   # trailing comment
2001:db8::10 LabHost
not-an-address nothing
fe80::1%eth0 linklocal
"""


def test_parse_hosts_file() -> None:
    table = parse_hosts_file(HOSTS)
    assert table["labhost"] == ("192.0.2.10", "2001:db8::10")  # names are case-insensitive
    assert table["localhost"] == ("127.0.0.1",)
    assert table["linklocal"] == ("fe80::1%eth0",)
    assert "nothing" not in table


def test_hosts_sources_order() -> None:
    assert hosts_sources("hosts: files [NOTFOUND=return] dns\n") == ("files", "dns")
    assert hosts_sources("passwd: files\n# hosts: dns\n") == ("dns", "files")  # glibc default
    assert hosts_sources(None) == ("dns", "files")


def _info(tmp_path: Path, name: str | None, nsswitch: str) -> list[tuple[str, str]]:
    (tmp_path / "hosts").write_text(HOSTS)
    (tmp_path / "nsswitch.conf").write_text(nsswitch)
    resolver = StaticResolver(
        hostname="labhost",
        hosts={
            "labhost": ("labhost.lab.example", [], ["192.0.2.10", "2001:db8::10"]),
            "far.example": ("far.example", [], ["198.51.100.7"]),
            "printer.local": ("printer.local", [], ["192.0.2.99"]),
        },
    )
    info = host_info(
        name,
        resolver=resolver,
        hosts_file=tmp_path / "hosts",
        nsswitch=tmp_path / "nsswitch.conf",
        interfaces=None,
    )
    return [(a.address, a.source) for a in info.addresses]


def test_sources_follow_the_hosts_file_then_nsswitch_order(tmp_path: Path) -> None:
    order = "hosts: files mdns4_minimal [NOTFOUND=return] dns\n"
    assert _info(tmp_path, None, order) == [
        ("192.0.2.10", "/etc/hosts"),
        ("2001:db8::10", "/etc/hosts"),
    ]
    assert _info(tmp_path, "far.example", order) == [("198.51.100.7", "DNS")]
    assert _info(tmp_path, "printer.local", order) == [("192.0.2.99", "multicast DNS (.local)")]
    # DNS first: then DNS answered even a name the hosts file lists
    assert _info(tmp_path, "labhost", "hosts: dns files\n")[0] == ("192.0.2.10", "DNS")


def test_this_machines_interfaces_include_loopback() -> None:
    pytest.importorskip("psutil", reason="psutil is not installed (pip install psutil)")
    found = interface_addresses()
    lo = [i for i in found if i.address == "127.0.0.1"]
    assert lo, found
    assert lo[0].prefix_length == 8
    assert lo[0].index == socket.if_nametoindex(lo[0].interface)


# --- constants: meanings and groups -------------------------------------------


def test_constants_have_meanings_and_group_titles() -> None:
    groups = {g.prefix: g for g in constant_groups()}
    families = {c.names[0]: c for c in groups["AF_"].constants}
    assert families["AF_INET"].meaning == "IPv4: (host, port)"
    assert "TCP" in {c.names[0]: c for c in groups["SOCK_"].constants}["SOCK_STREAM"].meaning
    reuse = [c for c in groups["SO_"].constants if "SO_REUSEADDR" in c.names]
    assert reuse and "TIME_WAIT" in reuse[0].meaning
    assert groups["SO_"].title == GROUP_TITLES["SO_"]
    # options are their own group, never rows among the families
    assert all(n.startswith("AF_") for c in groups["AF_"].constants for n in c.names)


# --- ports: fast ranges, and the same answers as asking every port ------------


def test_system_candidates_give_the_same_rows_as_asking_every_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real = socket.getservbyport

    def counting(port: int, proto: str = "") -> str:
        nonlocal calls
        calls += 1
        return real(port, proto)

    monkeypatch.setattr(socket, "getservbyport", counting)
    system = SystemServices()
    if system.candidate_ports("tcp") is None:
        pytest.skip("this system's services database is not only /etc/services (nsswitch)")
    fast = list_ports(0, 65535, catalog=ServiceCatalog([system]), ephemeral=LINUX_EPHEMERAL)
    fast_calls, calls = calls, 0

    class EveryPort(SystemServices):
        def candidate_ports(self, transport: str) -> frozenset[int] | None:
            return None

    slow = list_ports(0, 65535, catalog=ServiceCatalog([EveryPort()]), ephemeral=LINUX_EPHEMERAL)
    assert fast.ports == slow.ports
    assert calls >= 2 * 65536
    assert fast_calls < calls / 50  # asked only the ports /etc/services names


def test_candidates_are_off_when_nsswitch_has_other_sources(tmp_path: Path) -> None:
    services = tmp_path / "services"
    services.write_text("echo 7/tcp\necho 7/udp\nhttp 80/tcp www # web\n")
    nss = tmp_path / "nsswitch.conf"
    nss.write_text("services: files\n")
    assert SystemServices(services_file=services, nsswitch=nss).candidate_ports("tcp") == {7, 80}
    nss.write_text("services: files nis\n")
    assert SystemServices(services_file=services, nsswitch=nss).candidate_ports("tcp") is None
    table = TableServices([])
    assert (
        ServiceCatalog(
            [SystemServices(services_file=services, nsswitch=nss), table]
        ).candidate_ports("tcp")
        is None
    )


# --- listeners and their processes --------------------------------------------

PROC_UNIX = """\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 2001 /run/socketkit/echo.sock
0000000000000000: 00000002 00000000 00000000 0001 03 2002 /run/connected.sock
0000000000000000: 00000002 00000000 00010000 0001 01 2003 @abstract-name
0000000000000000: 00000002 00000000 00000000 0002 01 2004
"""


def test_parse_proc_unix_keeps_listening_sockets() -> None:
    assert [(u.path, u.inode) for u in parse_proc_unix(PROC_UNIX)] == [
        ("/run/socketkit/echo.sock", 2001),
        ("@abstract-name", 2003),
    ]


def _fake_proc(root: Path, pid: int, comm: str, links: list[str]) -> None:
    fd = root / str(pid) / "fd"
    fd.mkdir(parents=True)
    (root / str(pid) / "comm").write_text(comm + "\n")
    for n, target in enumerate(links):
        (fd / str(n)).symlink_to(target)


def test_socket_owners_maps_inodes_to_processes(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 400, "sshd", ["socket:[1]", "/dev/null", "socket:[2]"])
    _fake_proc(tmp_path, 401, "sshd", ["socket:[1]"])
    (tmp_path / "self").mkdir()  # not a pid: skipped
    owners = socket_owners(tmp_path)
    assert owners[1] == ("sshd (pid 400)", "sshd (pid 401)")
    assert owners[2] == ("sshd (pid 400)",)


def test_read_listeners_on_this_machine_names_our_process() -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp: --listening reads Linux's socket tables")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        scan = read_listeners(("tcp",))
    (mine,) = [x for x in scan.listeners if x.port == port]
    assert any(p.endswith(f"(pid {os.getpid()})") for p in mine.processes)
    assert "/proc/net/unix" in scan.read
