"""The real-engine harness (tests/engines.py) against our own building blocks:

- HAProxy with the shipped contrib/haproxy/haproxy.cfg in front of two small
  PROXY-v2 echo backends built on ``ProxyHeaderParser`` (what HAProxy really
  sends, and that its tcp-check health check passes);
- xinetd running a script built on ``inetd_socket()``, for a stream service
  (nowait) and a datagram service (wait);
- systemd-analyze accepting the shipped contrib/systemd units.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from socketkit.protocols.proxy import PENDING, ProxyAccepted, ProxyHeaderParser, ProxyResult
from tests.engines import free_port, haproxy, require, xinetd
from tests.support import TIMEOUT, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"


class ProxyEchoBackend:
    """A loopback echo server that requires a PROXY header first and records it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.headers: list[ProxyResult] = []
        self.payloads: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        parser = ProxyHeaderParser()
        result: ProxyResult = PENDING
        received = bytearray()
        with conn:
            try:
                while result is PENDING:
                    data = conn.recv(4096)
                    if not data:
                        return
                    result = parser.feed(data)
                self.headers.append(result)
                if not isinstance(result, ProxyAccepted):
                    return
                data = result.rest
                while True:
                    if data:
                        received += data
                        conn.sendall(data)
                    data = conn.recv(4096)
                    if not data:
                        break
            except OSError:
                pass
            finally:
                self.payloads.append(bytes(received))

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=TIMEOUT)


@pytest.fixture
def backends() -> Iterator[tuple[ProxyEchoBackend, ProxyEchoBackend]]:
    a, b = ProxyEchoBackend(), ProxyEchoBackend()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _contrib_haproxy(frontend: int, a: int, b: int) -> str:
    """The shipped example with its loopback ports replaced by free ones."""
    text = (CONTRIB / "haproxy" / "haproxy.cfg").read_text()
    text = text.replace("bind 127.0.0.1:7007", f"bind 127.0.0.1:{frontend}")
    text = text.replace("127.0.0.1:20007 ", f"127.0.0.1:{a} ")
    text = text.replace("127.0.0.1:30007 ", f"127.0.0.1:{b} ")
    text = text.replace("inter 2s", "inter 200ms")  # checks come quickly in the test
    assert text.count(f":{a} ") == 1 and text.count(f":{b} ") == 1
    return text


def test_haproxy_sends_proxy_v2_with_the_real_client(
    backends: tuple[ProxyEchoBackend, ProxyEchoBackend],
) -> None:
    a, b = backends
    frontend = free_port()
    with haproxy(_contrib_haproxy(frontend, a.port, b.port)):
        # The health check (tcp-check send/expect) reaches both, after a header.
        for backend in (a, b):
            wait_until(
                lambda be=backend: b"socketkit-health-check" in be.payloads,  # type: ignore[misc]
                "a health check",
            )
        # HAProxy's checks carry a v2 LOCAL header (no addresses).
        assert all(
            isinstance(h, ProxyAccepted) and (h.version, h.command, h.source) == (2, "LOCAL", None)
            for h in a.headers + b.headers
        ), a.headers + b.headers
        clients = []
        for i in range(4):
            client = socket.create_connection(("127.0.0.1", frontend), timeout=TIMEOUT)
            message = f"hello {i}".encode()
            client.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = client.recv(100)
                assert chunk, "haproxy closed before the echo came back"
                got += chunk
            assert got == message
            clients.append(client)
        client_ports = {c.getsockname()[1] for c in clients}
        for c in clients:
            c.close()
        # Each client's header names the client and the frontend it reached.
        proxied = [
            h
            for h in a.headers + b.headers
            if isinstance(h, ProxyAccepted) and h.source is not None and h.source[1] in client_ports
        ]
        assert len(proxied) == 4
        for header in proxied:
            assert (header.version, header.command, header.family) == (2, "PROXY", "TCP4")
            assert header.source is not None and header.source[0] == "127.0.0.1"
            assert header.destination == ("127.0.0.1", frontend)
        # leastconn with all four open at once: both backends got clients.
        assert {id(a), id(b)} == {id(be) for be in (a, b) for h in be.headers if h in proxied}


def _xinetd_config(port: int, script: Path, socket_type: str) -> str:
    wait = "yes" if socket_type == "dgram" else "no"
    protocol = "udp" if socket_type == "dgram" else "tcp"
    return f"""
service socketkit-test-{protocol}
{{
    type        = UNLISTED
    socket_type = {socket_type}
    protocol    = {protocol}
    wait        = {wait}
    user        = root
    bind        = 127.0.0.1
    port        = {port}
    server      = {script}
    instances   = 4
}}
"""


# Serves one connection (stream, nowait) or one datagram (dgram, wait) on
# standard input, answering with what inetd_socket() saw.
_INETD_SCRIPT = """
from socketkit.runtime.activation import inetd_socket
found = inetd_socket(0)
if found is None:
    raise SystemExit("not a socket")
found.sock.settimeout(5)
if found.mode == "nowait":
    data = found.sock.recv(100)
    found.sock.sendall(b"nowait %s peer=%s:%d" % (data, found.peer[0].encode(), found.peer[1]))
else:
    data, peer = found.sock.recvfrom(100)
    found.sock.sendto(b"wait " + data, peer)
"""


@pytest.fixture
def inetd_script(tmp_path: Path) -> Path:
    # xinetd passes the basename as argv[0], so "server = .venv/bin/python"
    # would start the system python: a shebang with the full path keeps the venv.
    path = tmp_path / "inetd_probe.py"
    path.write_text(f"#!{sys.executable}\n{_INETD_SCRIPT}")
    path.chmod(0o755)
    return path


def test_xinetd_stream_nowait(inetd_script: Path) -> None:
    port = free_port()
    with xinetd(_xinetd_config(port, inetd_script, "stream")):
        for word in (b"one", b"two"):  # a process per connection
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
                client.sendall(word)
                reply = client.recv(200)
                me = client.getsockname()
                assert reply == b"nowait %s peer=%s:%d" % (word, me[0].encode(), me[1])


def test_xinetd_datagram_wait(inetd_script: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with (
        xinetd(_xinetd_config(port, inetd_script, "dgram")),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        client.settimeout(TIMEOUT)
        client.sendto(b"ping", ("127.0.0.1", port))
        assert client.recv(100) == b"wait ping"


def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the units, ExecStart pointed at this venv's
    socketkit (verify requires the binary to exist; the shipped path is
    /usr/local/bin/socketkit)."""
    analyze = require("systemd-analyze", "systemd")
    units = sorted((CONTRIB / "systemd").iterdir())
    names = {u.name for u in units}
    assert "socketkit.service" in names
    sockets = sorted(n for n in names if n.endswith(".socket"))
    assert len(sockets) == 7
    executable = Path(sys.executable).with_name("socketkit")
    assert executable.exists(), executable
    for unit in units:
        text = unit.read_text()
        if unit.name == "socketkit.service":
            assert "ExecStart=/usr/local/bin/socketkit serve\n" in text
            text = text.replace("/usr/local/bin/socketkit", str(executable))
            for setting in (
                "DynamicUser=yes",
                "NoNewPrivileges=yes",
                "ProtectSystem=strict",
                "ProtectHome=yes",
                "PrivateTmp=yes",
                "CapabilityBoundingSet=\n",
                "RestrictAddressFamilies=",
                "Type=notify",
                "WatchdogSec=",
            ):
                assert setting in text, setting
        (tmp_path / unit.name).write_text(text)
    ports = []
    for name in sockets:
        text = (tmp_path / name).read_text()
        service = name.removeprefix("socketkit-").removesuffix(".socket")
        assert f"FileDescriptorName={service}\n" in text
        stream = re.findall(r"^ListenStream=127\.0\.0\.1:(\d+)$", text, re.MULTILINE)
        dgram = re.findall(r"^ListenDatagram=127\.0\.0\.1:(\d+)$", text, re.MULTILINE)
        assert stream == dgram and len(stream) == 1
        ports.append(int(stream[0]))
    assert sorted(ports) == [7, 9, 13, 17, 19, 37, 10100]
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / n) for n in sorted(names))],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")


def test_systemd_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above could fail: a typo in the service is reported."""
    analyze = require("systemd-analyze", "systemd")
    text = (CONTRIB / "systemd" / "socketkit.service").read_text()
    text = text.replace(
        "/usr/local/bin/socketkit", str(Path(sys.executable).with_name("socketkit"))
    )
    (tmp_path / "socketkit.service").write_text(text.replace("Type=notify", "Type=notfy"))
    for unit in (CONTRIB / "systemd").glob("*.socket"):
        shutil.copy(unit, tmp_path / unit.name)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "socketkit.service")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert "Failed to parse service type" in done.stderr
