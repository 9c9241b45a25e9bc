"""Port ranges, services with their sources, listeners from /proc, lookups both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketkit.errors import ResolveError, UsageError
from socketkit.explore import PortRange, iana_range, list_ports, lookup_port
from socketkit.explore.ports import (
    IANA_DYNAMIC,
    ListenerScan,
    ephemeral_note,
    ephemeral_range,
    parse_port_range,
    parse_proc_net,
    read_listeners,
)
from tests.unit.explore.explore_fakes import FAKE_LISTENERS, LINUX_EPHEMERAL, fake_catalog


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (0, "system"),
        (1023, "system"),
        (1024, "user"),
        (49151, "user"),
        (49152, "dynamic"),
        (65535, "dynamic"),
    ],
)
def test_iana_range_boundaries(port: int, expected: str) -> None:
    assert iana_range(port) == expected


def test_range_defaults_and_single_port() -> None:
    assert parse_port_range(None, None) == (0, 1023)
    assert parse_port_range("80", None) == (80, 80)
    assert parse_port_range("0", "65535") == (0, 65535)


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        ("70000", None, "bad LOW port 70000: ports run from 0 to 65535"),
        ("-1", None, "bad LOW port -1: ports run from 0 to 65535"),
        ("0", "65536", "bad HIGH port 65536: ports run from 0 to 65535"),
        ("abc", None, "bad LOW port 'abc': expected a number from 0 to 65535"),
        ("1.5", None, "bad LOW port '1.5': expected a number from 0 to 65535"),
        ("10", "5", "bad port range 10-5: LOW must not be greater than HIGH"),
    ],
)
def test_range_validation_is_one_line_exit_64(low: str, high: str | None, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_port_range(low, high)
    assert str(caught.value) == message
    assert caught.value.exit_code == 64


def test_list_ports_rejects_bad_numbers_too() -> None:
    with pytest.raises(UsageError):
        list_ports(5, 1, catalog=fake_catalog(), ephemeral=LINUX_EPHEMERAL)
    with pytest.raises(UsageError):
        list_ports(0, 70000, catalog=fake_catalog(), ephemeral=LINUX_EPHEMERAL)


def test_shipped_table_fills_the_system_gaps_and_says_so() -> None:
    report = list_ports(0, 1023, catalog=fake_catalog(), ephemeral=LINUX_EPHEMERAL)
    by_port = {p.port: p for p in report.ports}
    assert sorted(by_port) == [7, 17, 22, 80]
    qotd = {s.transport: (s.name, s.source) for s in by_port[17].services}
    assert qotd == {"tcp": ("qotd", "system"), "udp": ("qotd", "iana")}
    assert [s.transport for s in by_port[22].services] == ["tcp"]  # nobody knows ssh/udp here
    assert by_port[80].iana_range == "system"
    assert by_port[80].services[0].description == "World Wide Web HTTP"  # from the table
    assert not report.listening_checked


def test_transport_filter() -> None:
    report = list_ports(0, 100, transports=["udp"], catalog=fake_catalog(), ephemeral=None)
    assert [p.port for p in report.ports] == [7, 17, 80]
    assert {s.transport for p in report.ports for s in p.services} == {"udp"}


def test_ephemeral_range_versus_iana() -> None:
    report = list_ports(10100, 10100, catalog=fake_catalog(), ephemeral=LINUX_EPHEMERAL)
    assert report.ephemeral == LINUX_EPHEMERAL
    assert report.iana_dynamic == IANA_DYNAMIC
    assert "32768-60999" in report.notes[0]
    assert "differs from IANA's dynamic (ephemeral) range, 49152-65535" in report.notes[0]
    assert report.ports[0].os_ephemeral is False
    same = ephemeral_note(PortRange(49152, 65535, "x"))
    assert "the same as" in same
    assert "unknown" in ephemeral_note(None)


def test_os_ephemeral_flag() -> None:
    report = list_ports(
        40000,
        40000,
        listening=True,
        catalog=fake_catalog(),
        ephemeral=LINUX_EPHEMERAL,
        listeners=ListenerScan((), ("/proc/net/tcp",), ()),
    )
    assert report.ports == ()  # nothing named, nothing listening
    look = lookup_port("40000", catalog=fake_catalog(), ephemeral=LINUX_EPHEMERAL)
    assert look.ports[0].iana_range == "user"
    assert look.ports[0].os_ephemeral is True


def test_listening_lists_only_ports_with_a_listener() -> None:
    report = list_ports(
        0,
        20000,
        listening=True,
        catalog=fake_catalog(),
        ephemeral=LINUX_EPHEMERAL,
        listeners=FAKE_LISTENERS,
    )
    by_port = {p.port: p for p in report.ports}
    assert sorted(by_port) == [22, 10007]  # http (80) has a name but nothing listens
    assert {(x.transport, x.address) for x in by_port[22].listeners} == {
        ("tcp", "127.0.0.1"),
        ("tcp", "::"),
    }
    assert by_port[22].listeners[0].processes == ("sshd (pid 400)",)
    assert by_port[10007].services == ()  # a listener with no known service is still listed
    assert len(by_port[10007].listeners) == 2
    assert report.listening_checked
    assert [u.path for u in report.unix_listeners] == ["/run/socketkit/echo.sock"]


def test_listening_without_proc_says_so() -> None:
    scan = ListenerScan((), (), ("/proc/net/tcp", "/proc/net/udp"))
    report = list_ports(
        0, 10, listening=True, catalog=fake_catalog(), ephemeral=None, listeners=scan
    )
    assert not report.listening_checked
    assert any("cannot tell which ports have listeners" in n for n in report.notes)


# /proc/net/tcp as a little-endian Linux writes it: 127.0.0.1:10007 listening, one connection.
PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2717 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0
   1: 0100007F:2717 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0
"""
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000001000000:2717 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 000080FE000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000
"""
PROC_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
  10: 0100007F:2717 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4 2 0 0
  11: 0100007F:9C40 0100007F:0035 01 00000000:00000000 00:00000000 00000000  1000        0 5 2 0 0
"""


def test_parse_proc_net_tcp() -> None:
    found = parse_proc_net(PROC_TCP, "tcp", byteorder="little")
    assert [(x.address, x.port) for x in found] == [("127.0.0.1", 10007), ("0.0.0.0", 22)]


def test_parse_proc_net_tcp6_words_in_host_order() -> None:
    found = parse_proc_net(PROC_TCP6, "tcp", byteorder="little")
    assert [(x.family, x.address, x.port) for x in found] == [
        ("AF_INET6", "::1", 10007),
        ("AF_INET6", "fe80::1", 80),
    ]


def test_parse_proc_net_big_endian() -> None:
    text = "header\n 0: 7F000001:0050 00000000:0000 0A 0\n"
    assert parse_proc_net(text, "tcp", byteorder="big")[0].address == "127.0.0.1"


def test_udp_bound_but_not_connected_counts_as_listening() -> None:
    found = parse_proc_net(PROC_UDP, "udp", byteorder="little")
    assert [(x.transport, x.address, x.port) for x in found] == [("udp", "127.0.0.1", 10007)]


def test_read_listeners_from_a_proc_directory(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(PROC_TCP)
    (tmp_path / "udp").write_text(PROC_UDP)
    scan = read_listeners(proc_net=tmp_path, proc=tmp_path / "no-proc")
    assert scan.missing == (
        str(tmp_path / "tcp6"),
        str(tmp_path / "udp6"),
        str(tmp_path / "unix"),
    )
    assert [(x.transport, x.port) for x in scan.listeners] == [
        ("tcp", 22),
        ("tcp", 10007),
        ("udp", 10007),
    ]


def test_ephemeral_range_file(tmp_path: Path) -> None:
    path = tmp_path / "ip_local_port_range"
    path.write_text("32768\t60999\n")
    assert ephemeral_range(path) == PortRange(32768, 60999, str(path))
    assert ephemeral_range(tmp_path / "missing") is None
    path.write_text("garbage\n")
    assert ephemeral_range(path) is None


def test_lookup_by_name_both_transports_with_sources() -> None:
    look = lookup_port("http", catalog=fake_catalog(), ephemeral=LINUX_EPHEMERAL)
    assert look.by == "name"
    assert [(e.port, e.transport, e.source) for e in look.entries] == [
        (80, "tcp", "system"),
        (80, "udp", "iana"),
    ]


def test_lookup_alias_leads_to_the_official_name() -> None:
    look = lookup_port("quote", catalog=fake_catalog(), ephemeral=None)
    assert [(e.name, e.transport, e.source) for e in look.entries] == [
        ("qotd", "tcp", "system"),
        ("qotd", "udp", "iana"),
    ]


def test_lookup_by_number_and_ours() -> None:
    look = lookup_port("17", catalog=fake_catalog(), ephemeral=None)
    assert look.by == "number"
    assert [(e.name, e.source) for e in look.entries] == [("qotd", "system"), ("qotd", "iana")]
    ours = lookup_port("sum", catalog=fake_catalog(), ephemeral=None)
    assert {(e.name, e.port, e.source) for e in ours.entries} == {
        ("socketkit-sum", 10100, "socketkit")
    }


def test_lookup_number_without_service_is_an_answer() -> None:
    look = lookup_port("50000", catalog=fake_catalog(), ephemeral=LINUX_EPHEMERAL)
    assert look.entries == ()
    assert look.ports[0].iana_range == "dynamic"


def test_lookup_unknown_name_and_bad_number() -> None:
    with pytest.raises(ResolveError) as caught:
        lookup_port("nosuch", catalog=fake_catalog(), ephemeral=None)
    assert caught.value.exit_code == 68
    with pytest.raises(UsageError, match="ports run from 0 to 65535"):
        lookup_port("65536", catalog=fake_catalog(), ephemeral=None)
    with pytest.raises(UsageError):
        lookup_port("-3", catalog=fake_catalog(), ephemeral=None)
