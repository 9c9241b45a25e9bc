"""Every probe check catches a server broken in exactly the way it checks for.

A check that no broken server can fail is not a check: ``tests/probe_doubles.py``
holds one deliberately broken server per check. Each must be caught (not
PASS) by its check, and by no other check except those listed as also
noticing the same fault; WARN for amplification is allowed everywhere, since
daytime, qotd, chargen, time and sum amplify by the RFC's own design.
"""

from __future__ import annotations

import asyncio

import pytest

from socketkit.probe import CHECKS, ProbeOptions, Verdict, probe_target
from tests.probe_doubles import DOUBLES, running
from tests.support import TIMEOUT

OPTIONS = ProbeOptions(timeout=min(TIMEOUT, 2.0), quiet_wait=0.3, burst=200, rate=4000)


def test_every_check_has_a_broken_double() -> None:
    assert set(DOUBLES) == {check.name for check in CHECKS}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("check", sorted(DOUBLES))
def test_the_check_catches_its_double_and_others_do_not(check: str) -> None:
    broken = DOUBLES[check]
    with running(check) as (_double, target):
        results = asyncio.run(probe_target(target, OPTIONS))
    by_name = {r.check: r for r in results}
    assert check in by_name, f"{check} did not run against {target}"
    mine = by_name[check]
    assert mine.verdict in (Verdict.FAIL, Verdict.WARN), (
        f"{check} missed a server that {broken.fault}: {mine}"
    )
    assert mine.detail or mine.received
    for result in results:
        if result.check == check or result.check in broken.also:
            continue
        allowed = {Verdict.PASS} | ({Verdict.WARN} if result.check == "amplification" else set())
        assert result.verdict in allowed, (
            f"{result.check} also flagged a server that only {broken.fault}: {result}"
        )
