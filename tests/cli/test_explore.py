"""The explorer commands end to end: exit codes, one-line errors, this machine's tables.

Most run ``main([...])`` in-process; a few run ``python -m socketkit`` to prove
no traceback escapes. Nothing here uses DNS: names are numeric or handed to a
fake resolver; ``--listening`` is checked against a socket this test binds on
loopback, port 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import socketkit.cli.explore as explore_cli
from socketkit.cli.main import main
from socketkit.explore import StaticResolver
from socketkit.explore.hosts import InterfaceAddress

TIMEOUT = 30.0
EXPLORERS = ["host", "addrinfo", "constants", "ports", "port", "addr"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ports_0_1023_on_this_machine_has_ssh_and_http(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["ports", "0", "1023"], capsys)
    assert code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
    assert rows["22"][2].startswith("ssh")  # port, range, tcp name, udp name, description
    assert rows["80"][2].startswith("http")
    assert rows["80"][1].startswith("system")
    assert "IANA's dynamic (ephemeral) range, 49152-65535" in err


def test_ports_json_on_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(["ports", "17", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    (qotd,) = report["ports"]
    by_transport = {s["transport"]: s for s in qotd["services"]}
    # Whether the system knows qotd/udp or not, somebody answers, and says who.
    assert by_transport["udp"]["name"] == "qotd"
    assert by_transport["udp"]["source"] in {"system", "iana"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ports", "70000"], "bad LOW port 70000: ports run from 0 to 65535"),
        (["ports", "-1"], "bad LOW port -1: ports run from 0 to 65535"),
        (["ports", "0", "65536"], "bad HIGH port 65536: ports run from 0 to 65535"),
        (["ports", "x"], "bad LOW port 'x': expected a number from 0 to 65535"),
        (["ports", "10", "5"], "bad port range 10-5: LOW must not be greater than HIGH"),
        (["port", "99999"], "bad port 99999: ports run from 0 to 65535"),
        (["addr", "bogus"], "bad address 'bogus'"),
        (["addr"], "give one or more addresses"),
        (["constants", "NOPE_"], "no constant in the socket module starts with 'NOPE_'"),
        (["ports", "--tcp", "--udp"], "not allowed with argument"),
    ],
)
def test_usage_errors_are_one_line_exit_64(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 64
    assert out == ""
    assert len(err.splitlines()) == 1
    assert message in err


def test_unknown_service_name_exit_68(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(["port", "no-such-service-anywhere"], capsys)
    assert code == 68
    assert len(err.splitlines()) == 1


def test_port_http_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(["port", "http", "--json"], capsys)
    assert code == 0
    entries = {(e["port"], e["transport"]) for e in json.loads(out)["entries"]}
    assert entries == {(80, "tcp"), (80, "udp")}
    code, out, _err = run(["port", "80"], capsys)
    assert code == 0
    assert out.splitlines()[0].split("\t")[:3] == ["http", "80", "tcp"]


def test_port_without_service_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["port", "50000"], capsys)
    assert code == 0
    assert out == ""
    assert "no service known for port 50000" in err
    assert "dynamic (49152-65535)" in err


def test_addr_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(["addr", "::ffff:127.0.0.1"], capsys)
    assert code == 0
    assert "class\tloopback" in out.splitlines()
    code, out, _err = run(["addr", "10.0.0.1", "2001:db8::1", "--json"], capsys)
    assert [r["category"] for r in json.loads(out)] == ["private-use", "documentation"]


def test_addr_space(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["addr", "--space"], capsys)
    assert code == 0
    assert "3.4 x 10^38" in out
    assert "4.1 x 10^28" in out
    assert "World Population Prospects" in err
    code, out, _err = run(["addr", "--space", "--population", "7900000000", "--json"], capsys)
    assert json.loads(out)["population"] == 7_900_000_000


def test_constants_on_the_real_socket_module(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(["constants", "sock_", "--json"], capsys)
    assert code == 0
    (group,) = json.loads(out)
    assert {
        "value": socket.SOCK_STREAM,
        "names": ["SOCK_STREAM"],
        "meaning": "reliable, ordered byte stream, connected (TCP)",
    } in group["constants"]


def test_addrinfo_numeric_host_needs_no_dns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["addrinfo", "127.0.0.1", "7", "--type", "stream"], capsys)
    assert code == 0
    assert out.splitlines() == ["AF_INET\tSOCK_STREAM\tIPPROTO_TCP\t127.0.0.1\t127.0.0.1:7"]
    assert "result(s) in" in err


@pytest.fixture
def lab_resolver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n192.0.2.1 lab.example lab  # the lab machine\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files myhostname dns\n")
    env = explore_cli.Environment(
        resolver=StaticResolver(
            hostname="lab",
            hosts={
                "lab": ("lab.example", ["lab"], ["192.0.2.1"]),
                "far.example": ("far.example", [], ["2001:db8::1"]),
            },
        ),
        hosts_file=hosts,
        nsswitch=nsswitch,
        interfaces=lambda: (InterfaceAddress("eth0", 2, "AF_INET", "192.0.2.1", 24),),
    )
    monkeypatch.setattr(explore_cli, "ENVIRONMENT", env)


@pytest.mark.usefixtures("lab_resolver")
def test_host_with_an_injected_resolver(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(["host"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "name\tlab"
    assert "this machine\tyes (socket.gethostname())" in lines
    assert "canonical name\tlab.example" in lines
    assert "IPv4\t192.0.2.1  from /etc/hosts" in lines
    assert any(line.startswith("looked up in\tfiles then myhostname then dns") for line in lines)
    assert "eth0\t2\tIPv4\t192.0.2.1/24" in lines  # this machine's interfaces
    code, out, _err = run(["host", "far.example"], capsys)
    assert code == 0
    assert "IPv6\t2001:db8::1  from DNS" in out.splitlines()  # myhostname skipped: not ours
    assert "eth0" not in out  # interfaces only for this machine
    code, _out, err = run(["host", "nowhere"], capsys)
    assert code == 68
    assert "cannot resolve 'nowhere'" in err


@pytest.fixture
def loopback_listeners() -> Iterator[tuple[int, int]]:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp: --listening reads Linux's socket tables")
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("127.0.0.1", 0))
        yield tcp.getsockname()[1], udp.getsockname()[1]
    finally:
        tcp.close()
        udp.close()


def test_listening_reads_the_kernel_tables(
    loopback_listeners: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    tcp_port, udp_port = loopback_listeners
    for port, transport in ((tcp_port, "tcp"), (udp_port, "udp")):
        code, out, _err = run(
            ["ports", str(port), "--listening", f"--{transport}", "--json"], capsys
        )
        assert code == 0
        report = json.loads(out)
        assert report["listening_checked"]
        (row,) = report["ports"]
        (mine,) = [x for x in row["listeners"] if x["address"] == "127.0.0.1"]
        assert (mine["transport"], mine["family"], mine["port"]) == (transport, "AF_INET", port)
        assert mine["inode"] > 0
        # the socket is this test's: its process is us (comm is the interpreter's name)
        assert any(p.endswith(f"(pid {os.getpid()})") for p in mine["processes"])


@pytest.mark.parametrize("command", EXPLORERS)
def test_help_has_an_example_and_json(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert f"socketkit {command}" in text
    assert "--json" in text


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["ports", "70000"], 64), (["addr", "1.2.3.4/33"], 64), (["port", "no-such-service-x"], 68)],
)
def test_subprocess_exit_codes_without_traceback(argv: list[str], code: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "socketkit", *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == code
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_subprocess_piped_output_is_tsv() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "socketkit", "addr", "::ffff:127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert "class\tloopback" in done.stdout.splitlines()
