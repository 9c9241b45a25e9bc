"""Socket activation, sd_notify and inetd descriptors, without a service manager."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from socketkit.runtime.activation import Notifier, inetd_socket, inherited_sockets
from tests.support import TIMEOUT


def _env(fds: int = 1, pid: int | None = None, names: str | None = None) -> dict[str, str]:
    env = {"LISTEN_FDS": str(fds), "LISTEN_PID": str(os.getpid() if pid is None else pid)}
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return env


def test_nothing_inherited_without_variables() -> None:
    env: dict[str, str] = {}
    assert inherited_sockets(env) == []


@pytest.mark.parametrize(
    "env",
    [
        _env(pid=1),  # meant for another process
        _env(fds=0),
        {"LISTEN_FDS": "x", "LISTEN_PID": str(os.getpid())},
        {"LISTEN_FDS": "1", "LISTEN_PID": "not-a-pid"},
        {"LISTEN_FDS": "1"},
    ],
)
def test_foreign_or_malformed_variables_give_nothing_and_are_cleared(env: dict[str, str]) -> None:
    assert inherited_sockets(env) == []
    assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & env.keys()


def test_unset_false_keeps_the_variables() -> None:
    env = _env(pid=1, names="echo")
    inherited_sockets(env, unset=False)
    assert env == _env(pid=1, names="echo")


_CHILD = r"""
import json, os, socket, sys
from socketkit.runtime.activation import inherited_sockets
tcp = socket.create_server(("127.0.0.1", 0))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 0))
unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); unix.bind(sys.argv[1]); unix.listen()
for target, sock in enumerate((tcp, udp, unix), start=3):
    os.dup2(sock.fileno(), target, inheritable=True)
os.environ.update(LISTEN_FDS="3", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=sys.argv[2])
found = inherited_sockets()
import fcntl
print(json.dumps({
    "left": [k for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES") if k in os.environ],
    "expected": [tcp.getsockname(), udp.getsockname(), sys.argv[1]],
    "got": [[s.fd, s.name, s.family.name, s.type.name, s.listening, s.address,
             bool(fcntl.fcntl(s.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)] for s in found],
}))
"""


@pytest.mark.parametrize(
    ("names", "expected"),
    [("echo:echo:sum", ["echo", "echo", "sum"]), ("echo", ["echo", "unknown", "unknown"])],
)
def test_inherited_sockets_in_order_with_names(
    tmp_path: Path, names: str, expected: list[str]
) -> None:
    path = str(tmp_path / "s.sock")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, path, names],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    ).stdout
    report = json.loads(out)
    assert report["left"] == []
    tcp, udp, unix = report["expected"]
    assert report["got"] == [
        [3, expected[0], "AF_INET", "SOCK_STREAM", True, tcp, True],
        [4, expected[1], "AF_INET", "SOCK_DGRAM", False, udp, True],
        [5, expected[2], "AF_UNIX", "SOCK_STREAM", True, unix, True],
    ]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(TIMEOUT)
        yield sock, path


def test_notifier_sends_each_message(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("serving 7 services")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving 7 services"
    assert notifier.status("3 connections\nactive")
    assert sock.recv(4096) == b"STATUS=3 connections active"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_notifier_abstract_socket() -> None:
    name = f"socketkit-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\x00" + name.encode())
        sock.settimeout(TIMEOUT)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_notifier_without_socket_is_a_noop(tmp_path: Path) -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval() is None
    # A manager that went away: no exception, False.
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.25),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "x"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(env: dict[str, str], interval: float | None) -> None:
    assert Notifier(env).watchdog_interval() == interval


def test_inetd_stream_is_nowait() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=TIMEOUT)
        conn, peer = server.accept()
        with client, conn:
            found = inetd_socket(conn.fileno())
            assert found is not None
            with found.sock:
                assert (found.mode, found.type, found.peer) == ("nowait", socket.SOCK_STREAM, peer)
                found.sock.sendall(b"hi")
            assert client.recv(2) == b"hi"  # the original descriptor is still open
            conn.sendall(b"!")
            assert client.recv(1) == b"!"


def test_inetd_datagram_is_wait() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        found = inetd_socket(udp.fileno())
        assert found is not None
        with found.sock:
            assert (found.mode, found.type, found.peer) == ("wait", socket.SOCK_DGRAM, None)
            assert found.sock.getsockname() == udp.getsockname()


def test_inetd_not_a_socket(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as f:
        assert inetd_socket(f.fileno()) is None
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert (
            inetd_socket(listener.fileno()) is None
        )  # a listener: inetd "wait" stream, unsupported
    assert inetd_socket(10_000) is None
