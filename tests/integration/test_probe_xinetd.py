"""``socketkit probe`` against the real xinetd: its verdicts match what xinetd really does.

xinetd (Debian's 2.3.15) runs its internal echo, discard, daytime, chargen
and time services, stream and dgram, from a generated configuration bound
to 127.0.0.1 on free ports, in the foreground (-dontfork) with a pidfile in
a temporary directory, and is stopped by its PID. What it was found to do
(docs/probe.md has the table):

- chargen's ring has 93 characters (no space, no ``~``), and once every 95
  lines the pattern steps back by one character: chargen-lines FAIL,
  chargen-ring WARN; a UDP chargen reply is 1024 bytes, twice RFC 864's 512;
- every dgram service answers datagrams from ports 7, 9, 13, 17, 19, 37 and
  below 1024 (loop-ports WARN);
- no per-source rate limit, but its default ``cps = 50 10`` shuts a
  service's port for 10 s after a burst, for everyone (rate-limit WARN), or
  datagrams that arrive together are lost (fewer replies than sent); the
  same limit turns a stream service off when more than 50 connections
  arrive in a second (idle-connections or reset-storm FAIL with --connections 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from socketkit.probe import ProbeOptions, Verdict, probe_host, probe_target, scan_targets
from socketkit.probe.model import Target
from tests.support import TIMEOUT

XINETD = "/usr/sbin/xinetd"
SERVICES = ("echo", "discard", "daytime", "chargen", "time")

pytestmark = pytest.mark.skipif(
    not os.path.exists(XINETD), reason="xinetd is not installed (apt-get install xinetd)"
)


@dataclass
class Xinetd:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    directory: str


def _free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (found by binding port 0)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free for both TCP and UDP")


def _config(ports: dict[str, int], log: str, cps: str | None = None) -> str:
    limit = f"\tcps = {cps}\n" if cps else ""
    parts = [f"defaults\n{{\n\tlog_type = FILE {log}\n{limit}}}\n"]
    for name, port in ports.items():
        for kind, proto, wait in (("stream", "tcp", "no"), ("dgram", "udp", "yes")):
            parts.append(
                f"service {name}\n{{\n\ttype = INTERNAL UNLISTED\n\tid = {name}-{kind}\n"
                f"\tsocket_type = {kind}\n\tprotocol = {proto}\n\tuser = root\n"
                f"\twait = {wait}\n\tport = {port}\n\tbind = 127.0.0.1\n}}\n"
            )
    return "".join(parts)


def _ready(ports: dict[str, int], proc: subprocess.Popen[bytes]) -> None:
    """Bounded readiness: every stream port accepts, within TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    waiting = set(ports.values())
    while waiting:
        assert proc.poll() is None, f"xinetd exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"xinetd did not listen on {sorted(waiting)}"
        for port in list(waiting):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.2),
            ):
                waiting.discard(port)
        if waiting:
            time.sleep(0.05)  # polling a child we cannot get a signal from


@contextlib.contextmanager
def xinetd(cps: str | None = None) -> Iterator[Xinetd]:
    """xinetd on free loopback ports; ``cps`` overrides its connection-rate limit."""
    directory = tempfile.mkdtemp(prefix="sk-xinetd-")
    ports = {name: _free_port() for name in SERVICES}
    conf = os.path.join(directory, "xinetd.conf")
    with open(conf, "w") as f:
        f.write(_config(ports, os.path.join(directory, "log"), cps))
    pidfile = os.path.join(directory, "pid")
    proc = subprocess.Popen(
        [XINETD, "-f", conf, "-dontfork", "-pidfile", pidfile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _ready(ports, proc)
        yield Xinetd(proc, ports, directory)
    finally:
        proc.send_signal(signal.SIGTERM)  # by PID: the one we started
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)
        shutil.rmtree(directory, ignore_errors=True)


# What xinetd really does, check by check: anything not listed is PASS.
EXPECTED: dict[tuple[str, str, str], Verdict] = {
    ("chargen", "tcp", "chargen-lines"): Verdict.FAIL,
    ("chargen", "tcp", "chargen-ring"): Verdict.WARN,
    ("chargen", "udp", "chargen-datagram"): Verdict.FAIL,
    **{(s, "udp", "amplification"): Verdict.WARN for s in ("daytime", "chargen", "time")},
    **{(s, "udp", "loop-ports"): Verdict.WARN for s in ("echo", "daytime", "chargen", "time")},
}
RATE_LIMIT = {"echo", "daytime", "chargen", "time"}
"""xinetd never answers a whole burst: its cps limit shuts the port (WARN) or, when the
burst is not counted as fast enough, it loses datagrams that arrive together (PASS,
fewer replies). Which one depends on the machine's load, so both are accepted."""

OPTIONS = ProbeOptions(timeout=min(TIMEOUT, 3.0), quiet_wait=0.4, connections=8)


@pytest.mark.timeout(300)
def test_probe_verdicts_match_what_xinetd_does() -> None:
    with xinetd() as server:
        targets = scan_targets("127.0.0.1", server.ports, services=SERVICES)
        results = asyncio.run(probe_host(targets, OPTIONS))
        assert server.proc.poll() is None
    found = {(r.service, r.transport, r.check): r for r in results}
    assert "reach" not in {r.check for r in results}, "every xinetd service answered"
    for key, result in found.items():
        if key[2] == "rate-limit":
            assert result.measure is not None and result.measure < OPTIONS.burst, result
            continue
        assert result.verdict is EXPECTED.get(key, Verdict.PASS), result
    assert {s for s, _t, c in found if c == "rate-limit"} == RATE_LIMIT
    assert set(EXPECTED) <= set(found)
    # The measured facts behind the verdicts.
    assert "1024 B" in found["chargen", "udp", "chargen-datagram"].received
    assert found["chargen", "udp", "amplification"].measure == 1024
    assert found["time", "udp", "amplification"].measure == 4
    assert found["echo", "udp", "amplification"].measure == 1
    assert "7,9,13,17,19,37,1023" in found["echo", "udp", "loop-ports"].received
    assert "leaves out" in found["chargen", "tcp", "chargen-ring"].detail


@pytest.mark.timeout(120)
def test_a_connection_storm_switches_an_xinetd_service_off() -> None:
    """xinetd's cps limit (N connections a second, then the service is off for 10 s).

    The limit is set to 10 a second here, not the default 50: in one
    bare-environment CI run here the default never tripped (both checks PASS),
    most likely because xinetd forks for each connection and accepted fewer
    than 50 in a second. At 10 a second a storm of 200 trips it with room to spare.
    """
    options = ProbeOptions(timeout=min(TIMEOUT, 3.0), quiet_wait=0.4, connections=200)
    with xinetd(cps="10 10") as server:
        target = Target(
            "discard",
            scan_targets("127.0.0.1", server.ports, services=["discard"])[0].endpoint,
            "tcp",
        )
        results = asyncio.run(probe_target(target, options))
    by_name = {r.check: r for r in results}
    assert by_name["discard-silent"].verdict is Verdict.PASS
    # The first robustness check with more than ~50 connections in a second trips it.
    tripped = by_name["idle-connections"], by_name["reset-storm"]
    assert any(r.verdict is Verdict.FAIL for r in tripped), tripped
    assert any(
        "refused" in r.detail or "timed out" in r.detail or "fresh" in r.received for r in tripped
    )
