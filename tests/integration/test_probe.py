"""``socketkit probe`` against ``socketkit serve``: every check passes, on TCP, UDP and Unix,
IPv4 and IPv6, and the UDP audit reports honestly what the guards do.

serve exempts loopback sources from the UDP rate limit and reply budget by
default (they cannot be spoofed from the wire), so probing it over loopback
sees full RFC replies: amplification and rate-limit WARN. With the guard on
for loopback (``udp_loopback_exempt=False``, ``--udp-guard-loopback``) the
same probe sees the limits: PASS, and RFC 868's empty request goes
unanswered (the budget allows 0 bytes for it), which the probe reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from socketkit.endpoints import Endpoint
from socketkit.probe import SERVICES, CheckResult, ProbeOptions, Target, Verdict, probe_target
from socketkit.runtime import Limits, ServerThread, run, serve_in_thread
from tests.support import TIMEOUT

OPTIONS = ProbeOptions(timeout=min(TIMEOUT, 3.0), quiet_wait=0.3)
AMPLIFIERS = {"daytime", "qotd", "chargen", "time", "sum"}
"""Services whose RFC reply is larger than a 1-byte request."""


@pytest.fixture
def serve_all(loop_name: str) -> Iterator[ServerThread]:
    server = serve_in_thread(*SERVICES, loop=loop_name)
    try:
        yield server
    finally:
        server.stop(timeout=TIMEOUT)
    assert not server.loop_errors, server.loop_errors


def _probe(server: ServerThread, transport: str, loop: str) -> list[CheckResult]:
    results: list[CheckResult] = []
    for name in SERVICES:
        bound = server.address(name, "udp" if transport == "udp" else "tcp")
        target = Target(name, Endpoint(host=bound.host, port=bound.port), transport)  # type: ignore[arg-type]
        results += run(probe_target(target, OPTIONS), loop=loop)
    return results


def _not_passed(results: list[CheckResult]) -> dict[tuple[str, str], Verdict]:
    return {(r.service, r.check): r.verdict for r in results if r.verdict is not Verdict.PASS}


@pytest.mark.timeout(120)
def test_every_tcp_check_passes(serve_all: ServerThread, loop_name: str) -> None:
    results = _probe(serve_all, "tcp", loop_name)
    assert {r.kind for r in results} == {"conformance", "robustness"}
    assert _not_passed(results) == {}


@pytest.mark.udp_io
@pytest.mark.timeout(180)
def test_udp_conformance_passes_and_the_audit_sees_the_loopback_exemption(
    serve_all: ServerThread, loop_name: str
) -> None:
    results = _probe(serve_all, "udp", loop_name)
    expected = {(s, "amplification"): Verdict.WARN for s in AMPLIFIERS}
    expected |= {(s, "rate-limit"): Verdict.WARN for s in SERVICES if s != "discard"}
    assert _not_passed(results) == expected
    factors = {r.service: r.measure for r in results if r.check == "amplification"}
    assert factors["echo"] == 1 and factors["discard"] == 0 and factors["time"] == 4
    assert factors["chargen"] is not None and 1 < factors["chargen"] <= 512


@pytest.mark.udp_io
@pytest.mark.timeout(180)
def test_with_the_guard_on_for_loopback_the_audit_passes() -> None:
    limits = Limits(udp_loopback_exempt=False)
    with serve_in_thread(*SERVICES, tcp=False, limits=limits) as server:
        results = _probe(server, "udp", "asyncio")
    expected = {("time", "empty-datagram"): Verdict.FAIL}
    expected |= {(s, "empty-datagram"): Verdict.WARN for s in ("daytime", "qotd", "chargen")}
    assert _not_passed(results) == expected
    factors = {r.service: r.measure for r in results if r.check == "amplification"}
    assert all(f is not None and f <= 1 for f in factors.values()), factors
    limited = [r for r in results if r.check == "rate-limit"]
    assert all(r.measure is not None and r.measure < OPTIONS.burst for r in limited)


@pytest.mark.udp_io
@pytest.mark.timeout(180)
def test_ipv6_tcp_and_udp() -> None:
    with serve_in_thread(*SERVICES, host="::1") as server:
        tcp = _probe(server, "tcp", "asyncio")
        udp = _probe(server, "udp", "asyncio")
    assert {r.target.startswith("[::1]:") for r in tcp + udp} == {True}
    assert _not_passed(tcp) == {}
    assert {k: v for k, v in _not_passed(udp).items() if k[1] != "rate-limit"} == {
        (s, "amplification"): Verdict.WARN for s in AMPLIFIERS
    }
    assert ("echo", "loop-ports") not in _not_passed(udp)  # ::1 source ports 7, 19... dropped


@pytest.mark.timeout(120)
def test_unix_sockets(unix_dir: str, loop_name: str) -> None:
    with serve_in_thread(*SERVICES, tcp=False, udp=False, unix=unix_dir, loop=loop_name) as srv:
        results: list[CheckResult] = []
        for name in SERVICES:
            path = os.path.join(unix_dir, f"{name}.sock")
            assert str(srv.address(name, "unix")) == f"unix:{path}"
            target = Target(name, Endpoint(path=path), "unix")
            results += run(probe_target(target, OPTIONS), loop=loop_name)
    assert {r.transport for r in results} == {"unix"}
    assert len(results) > 20
    assert _not_passed(results) == {}
