"""End-to-end tests of issue 12 with the real engines started by the test:
systemd-socket-activate (socket activation and readiness), xinetd (inetd
mode) and HAProxy (PROXY protocol v2 in front of two serve instances).

The access log's text format is ``socketkit.logs.AccessRecord.text()``:
``<iso time> echo/tcp 127.0.0.1:PORT in=N out=N duration=Ns ended=WORD``.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engines import free_port, haproxy, socket_activate, xinetd
from tests.support import PY, TIMEOUT, LineReader, serve_process

ROOT = Path(__file__).resolve().parents[2]
SOCKETKIT = str(Path(sys.executable).with_name("socketkit"))  # has a shebang: xinetd-safe


def _echo_port(reader: LineReader) -> int:
    row = next(line for line in reader.lines if line.startswith("echo\ttcp\t"))
    return int(row.split("\t")[2].rpartition(":")[2])


def _round_trip(port: int, message: bytes) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    client.sendall(message)
    got = b""
    while len(got) < len(message):
        chunk = client.recv(4096)
        assert chunk, "closed before the echo came back"
        got += chunk
    assert got == message
    return client


def _haproxy_config(frontend: int, a: int, b: int) -> str:
    text = (ROOT / "contrib" / "haproxy" / "haproxy.cfg").read_text()
    text = text.replace("bind 127.0.0.1:7007", f"bind 127.0.0.1:{frontend}")
    text = text.replace("127.0.0.1:20007 ", f"127.0.0.1:{a} ")
    text = text.replace("127.0.0.1:30007 ", f"127.0.0.1:{b} ")
    return text.replace("inter 2s", "inter 200ms")


_SERVE = ("echo", "--port", "0", "--no-udp", "--proxy-protocol", "--access-log", "-")


@pytest.fixture
def two_serves() -> Iterator[tuple[LineReader, LineReader]]:
    with (
        serve_process(*_SERVE, last="try:", merge_stderr=True) as (_, a),
        serve_process(*_SERVE, last="try:", merge_stderr=True) as (_, b),
    ):
        yield a, b


def test_haproxy_two_serve_instances_see_the_real_clients(
    two_serves: tuple[LineReader, LineReader],
) -> None:
    a, b = two_serves
    frontend = free_port()
    with haproxy(_haproxy_config(frontend, _echo_port(a), _echo_port(b))):
        # HAProxy's checks (v2 LOCAL + "socketkit-health-check") reach both.
        for reader in (a, b):
            reader.until(lambda line: "echo/tcp" in line and "in=22 out=22" in line)
        clients = [_round_trip(frontend, f"hello {i}".encode()) for i in range(4)]
        ports = {c.getsockname()[1] for c in clients}
        for c in clients:
            c.close()
        seen: set[int] = set()
        for reader in (a, b):
            for _ in range(2):  # leastconn, all four open at once: two each
                line = reader.until(
                    lambda line: bool(re.search(r"echo/tcp 127\.0\.0\.1:(\d+) in=7", line))
                )
                match = re.search(r"echo/tcp 127\.0\.0\.1:(\d+) in=7 out=7 ", line)
                assert match, line
                seen.add(int(match.group(1)))
        assert seen == ports  # the clients' own ports, not HAProxy's


def test_proxy_protocol_refuses_a_client_without_header() -> None:
    with serve_process(*_SERVE, last="try:", merge_stderr=True) as (_, reader):
        port = _echo_port(reader)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert client.recv(100) == b""  # closed, nothing echoed
        reader.until(lambda line: "ended=proxy_rejected" in line)


def test_proxy_header_from_an_untrusted_source_is_refused() -> None:
    from socketkit.protocols.proxy import encode_v2

    argv = (*_SERVE, "--proxy-from", "192.0.2.0/24")  # loopback is not trusted here
    with serve_process(*argv, last="try:", merge_stderr=True) as (_, reader):
        port = _echo_port(reader)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            # closed at accept, before it says anything: a FIN, or an RST once it writes
            try:
                client.sendall(encode_v2(("198.51.100.1", 1234), ("127.0.0.1", port)) + b"hi")
                assert client.recv(100) == b""
            except (BrokenPipeError, ConnectionResetError):
                pass


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_socket_activation_with_readiness(tmp_path: Path, udp: bool) -> None:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    port = free_port(kind)
    notify = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(notify)
        manager.settimeout(TIMEOUT)
        args = [*(["--datagram"] if udp else []), "-l", f"127.0.0.1:{port}", "--fdname=echo"]
        args += ["-E", f"NOTIFY_SOCKET={notify}"]
        with socket_activate(args, [*PY, "serve"]) as engine:
            if udp:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.settimeout(TIMEOUT)
                    client.sendto(b"hello", ("127.0.0.1", port))
                    assert client.recv(100) == b"hello"
            else:
                _round_trip(port, b"hello").close()
            messages: list[bytes] = []
            while not any(m.startswith(b"READY=1") for m in messages):
                messages.append(manager.recv(4096))
            engine.process.send_signal(signal.SIGTERM)
            while not any(m.startswith(b"STOPPING=1") for m in messages):
                messages.append(manager.recv(4096))
            assert engine.process.wait(timeout=TIMEOUT) == 0
            ready = next(m for m in messages if m.startswith(b"READY=1"))
            assert b"\nSTATUS=serving echo/" + (b"udp" if udp else b"tcp") in ready
        # serve bound nothing itself: the only socket was systemd-socket-activate's.
        assert f"127.0.0.1:{port}" in " ".join(engine.output)


def test_socket_activation_of_a_unix_socket_by_order_with_watchdog(tmp_path: Path) -> None:
    """No FileDescriptorName=: the service list says which service; WATCHDOG_USEC is honoured."""
    path = str(tmp_path / "daytime.sock")
    notify = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(notify)
        manager.settimeout(TIMEOUT)
        args = ["-l", path, "-E", f"NOTIFY_SOCKET={notify}", "-E", "WATCHDOG_USEC=200000"]
        with socket_activate(args, [*PY, "serve", "daytime"]) as engine:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(TIMEOUT)
                client.connect(path)
                reply = b""
                while chunk := client.recv(100):
                    reply += chunk
                assert reply.endswith(b"\r\n") and len(reply) > 10  # a daytime line
            pings = 0
            while pings < 2:  # every 0.1 s (half of WATCHDOG_USEC), bounded by TIMEOUT
                pings += manager.recv(4096) == b"WATCHDOG=1"
            engine.process.send_signal(signal.SIGTERM)
            assert engine.process.wait(timeout=TIMEOUT) == 0
        assert Path(path).exists()  # the manager's socket file: not ours to remove


def _xinetd_service(port: int, socket_type: str, log: Path) -> str:
    protocol = "udp" if socket_type == "dgram" else "tcp"
    return f"""
service socketkit-echo-{protocol}
{{
    type           = UNLISTED
    socket_type    = {socket_type}
    protocol       = {protocol}
    wait           = {"yes" if socket_type == "dgram" else "no"}
    user           = root
    bind           = 127.0.0.1
    port           = {port}
    server         = {SOCKETKIT}
    server_args    = serve echo --inetd --idle-timeout 1
    log_type       = FILE {log}
    log_on_success = PID EXIT
}}
"""


def _exits(log: Path, count: int) -> list[str]:
    """Wait (bounded) until xinetd logged ``count`` EXIT lines: each serve it started ended."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        lines = [
            line
            for line in (log.read_text() if log.exists() else "").splitlines()
            if "EXIT" in line
        ]
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"serve did not exit; xinetd log: {lines}"
        time.sleep(0.02)  # polling xinetd's log file, bounded by TIMEOUT


def test_xinetd_stream_nowait(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "xinetd.log"
    with xinetd(_xinetd_service(port, "stream", log)):
        for word in (b"one", b"two"):  # one serve process per connection
            client = _round_trip(port, word)
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b""  # serve exits when the client closes
            client.close()
        exits = _exits(log, 2)
    assert all("status=0" in line for line in exits), exits


def test_xinetd_datagram_wait(tmp_path: Path) -> None:
    port, log = free_port(socket.SOCK_DGRAM), tmp_path / "xinetd.log"
    with (
        xinetd(_xinetd_service(port, "dgram", log)),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        client.settimeout(TIMEOUT)
        for word in (b"one", b"two"):
            client.sendto(word, ("127.0.0.1", port))
            assert client.recv(100) == word
        # One serve read both datagrams, then left after a second without any.
        exits = _exits(log, 1)
    assert len(exits) == 1 and "status=0" in exits[0], exits
