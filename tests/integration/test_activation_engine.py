"""The LISTEN_FDS contract end to end: the real systemd-socket-activate passes
sockets to a process that calls ``inherited_sockets()``."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

from tests.engines import free_port, socket_activate
from tests.support import TIMEOUT

# Reports what it inherited as one JSON line, then (for a stream listener)
# accepts the connection that woke it and says "ok", so the test knows the
# adopted socket really is the one it connected to.
_REPORTER = r"""
import json, socket
from socketkit.runtime.activation import Notifier, inherited_sockets
found = inherited_sockets()
print(json.dumps([[s.fd, s.name, s.type.name, s.listening,
       s.address if isinstance(s.address, str) else list(s.address)] for s in found]),
      flush=True)
Notifier().ready("reported")
for s in found:
    if s.listening:
        conn, _ = s.sock.accept()
        conn.sendall(b"ok")
        conn.close()
    else:
        data, peer = s.sock.recvfrom(100)
        s.sock.sendto(b"ok:" + data, peer)
"""


def _report(engine_output: list[str]) -> list[list[object]]:
    for line in engine_output:
        if line.startswith("[["):
            return json.loads(line)  # type: ignore[no-any-return]
    raise AssertionError(f"no report in {engine_output}")


def test_tcp_listener_with_name_and_readiness(tmp_path: Path) -> None:
    port = free_port()
    notify = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ready:
        ready.bind(notify)
        ready.settimeout(TIMEOUT)
        args = ["-l", f"127.0.0.1:{port}", "--fdname=echo", "-E", f"NOTIFY_SOCKET={notify}"]
        with socket_activate(args, [sys.executable, "-c", _REPORTER]) as engine:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
                assert client.recv(2) == b"ok"
            assert ready.recv(4096) == b"READY=1\nSTATUS=reported"
            engine.wait_line(r"^\[\[")
            assert _report(engine.output) == [[3, "echo", "SOCK_STREAM", True, ["127.0.0.1", port]]]
            assert engine.process.wait(timeout=TIMEOUT) == 0


def test_udp_socket_with_name() -> None:
    port = free_port(socket.SOCK_DGRAM)
    args = ["--datagram", "-l", f"127.0.0.1:{port}", "--fdname=daytime"]
    with socket_activate(args, [sys.executable, "-c", _REPORTER]) as engine:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT)
            client.sendto(b"hi", ("127.0.0.1", port))
            assert client.recv(100) == b"ok:hi"
        engine.wait_line(r"^\[\[")
        assert _report(engine.output) == [[3, "daytime", "SOCK_DGRAM", False, ["127.0.0.1", port]]]


def test_several_sockets_in_order(tmp_path: Path) -> None:
    first, second = free_port(), free_port()
    unix = str(tmp_path / "sum.sock")
    args = [
        "-l",
        f"127.0.0.1:{first}",
        "-l",
        f"127.0.0.1:{second}",
        "-l",
        unix,
        "--fdname=echo:daytime:sum",
    ]
    with socket_activate(args, [sys.executable, "-c", _REPORTER]) as engine:
        with socket.create_connection(("127.0.0.1", first), timeout=TIMEOUT) as client:
            assert client.recv(2) == b"ok"
        with socket.create_connection(("127.0.0.1", second), timeout=TIMEOUT) as client:
            assert client.recv(2) == b"ok"
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(TIMEOUT)
            client.connect(unix)
            assert client.recv(2) == b"ok"
        assert engine.process.wait(timeout=TIMEOUT) == 0
        assert _report(engine.output) == [
            [3, "echo", "SOCK_STREAM", True, ["127.0.0.1", first]],
            [4, "daytime", "SOCK_STREAM", True, ["127.0.0.1", second]],
            [5, "sum", "SOCK_STREAM", True, unix],
        ]
