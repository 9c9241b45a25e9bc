"""IPv6 link-local addresses with a zone (``[fe80::1%v0]:PORT``) under every loop.

uvloop's ``getaddrinfo`` drops the scope id, so the clients resolve numeric
addresses themselves (``socketkit.endpoints.numeric_sockaddrs``). A link-local
address needs an interface that is not loopback: the test makes a private
network namespace (``unshare -n``) with a veth pair and gives one end
``fe80::1``, so nothing touches the machine's real network.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from socketkit.endpoints import numeric_sockaddrs
from tests.support import PY, TIMEOUT

SCRIPT = textwrap.dedent(
    """
    import json, socket, subprocess, sys, threading
    PY, TIMEOUT = json.loads(sys.argv[1]), float(sys.argv[2])
    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=TIMEOUT)
    ip("link", "set", "lo", "up")
    ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip("link", "set", "v0", "up")
    ip("link", "set", "v1", "up")
    ip("addr", "add", "fe80::1/64", "dev", "v0", "nodad")
    index = socket.if_nametoindex("v0")

    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.bind(("fe80::1", 0, 0, index))
    listener.listen(8)
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("fe80::1", port, 0, index))
    udp.settimeout(TIMEOUT)

    def serve_tcp():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(TIMEOUT)
                data = b""
                while not data.endswith(b"\\n"):
                    chunk = conn.recv(100)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"tcp got " + data)

    def serve_udp():
        while True:
            try:
                data, addr = udp.recvfrom(100)
            except OSError:
                return
            udp.sendto(b"udp got " + data, addr)

    threading.Thread(target=serve_tcp, daemon=True).start()
    threading.Thread(target=serve_udp, daemon=True).start()
    results = {}
    for loop in ("asyncio", "uvloop"):
        for zone in ("v0", str(index)):
            for extra in ([], ["-u", "-q", "1"]):
                key = f"{loop} %{zone} {' '.join(extra) or 'tcp'}"
                done = subprocess.run(
                    [*PY, "send", f"[fe80::1%{zone}]:{port}", "hi", "--loop", loop, *extra],
                    capture_output=True, timeout=TIMEOUT * 3,
                )
                results[key] = [done.returncode, done.stdout.decode(), done.stderr.decode()]
    print(json.dumps(results))
    """
)


def _unshare() -> str:
    path = shutil.which("unshare")
    if path is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run([path, "-n", "true"], capture_output=True, timeout=TIMEOUT)
    if probe.returncode != 0:
        pytest.skip("creating a network namespace (unshare -n) is not permitted here")
    return path


def test_numeric_sockaddrs_keeps_the_scope_id() -> None:
    infos = numeric_sockaddrs("fe80::1%1", 7, socket.SOCK_STREAM)
    assert infos is not None
    assert infos[0][4] == ("fe80::1", 7, 0, 1)


def test_send_reaches_a_link_local_address_with_a_zone_on_every_loop() -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed")
    unshare = _unshare()
    done = subprocess.run(
        [unshare, "-n", sys.executable, "-c", SCRIPT, json.dumps(PY), str(TIMEOUT)],
        capture_output=True,
        timeout=TIMEOUT * 20,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    results = json.loads(done.stdout)
    assert len(results) == 8
    for key, (code, out, err) in results.items():
        assert code == 0, f"{key}: exit {code}: {err}"
        want = "udp got hi\n" if "-u" in key else "tcp got hi\n"
        assert out == want, f"{key}: {out!r} {err!r}"
