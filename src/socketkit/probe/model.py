"""What a probe is made of: targets, options, verdicts and results (plain data, no I/O).

Why plain dataclasses: the CLI renders them as a table, tab-separated lines
or JSON, and tests assert on them, so nothing here prints or talks to the
network.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from socketkit.endpoints import Endpoint

__all__ = [
    "Check",
    "CheckResult",
    "Kind",
    "Outcome",
    "ProbeOptions",
    "Target",
    "Transport",
    "Verdict",
]

Transport = Literal["tcp", "udp", "unix"]
Kind = Literal["conformance", "robustness", "security"]


class Verdict(enum.Enum):
    """PASS and FAIL are about the RFC; WARN is a risk worth knowing; SKIP could not run."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Target:
    """One service at one address over one transport."""

    service: str
    endpoint: Endpoint
    transport: Transport

    def __str__(self) -> str:
        return f"{self.service} {self.transport} {self.endpoint}"


@dataclass(frozen=True)
class ProbeOptions:
    """Every bound the probe keeps: counts, rates and time."""

    timeout: float = 3.0
    """Seconds any one wait for the server may take."""
    quiet_wait: float = 0.5
    """Seconds of silence taken as "no reply" (discard, dropped datagrams)."""
    gentle: bool = False
    """Skip the robustness checks (tiny writes, garbage, storms, idle connections)."""
    connections: int = 16
    """Connections opened by the storm and idle checks (at most MAX_CONNECTIONS)."""
    burst: int = 200
    """Datagrams sent by the rate-limit check."""
    rate: float = 2000.0
    """Datagrams per second the rate-limit check sends at most."""
    clock_tolerance: float = 2.0
    """Seconds a time server may differ from ours before a WARN."""

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 60 or not 0 < self.quiet_wait <= 10:
            raise ValueError("timeout must be in (0, 60] s and quiet_wait in (0, 10] s")
        if not 1 <= self.connections <= MAX_CONNECTIONS:
            raise ValueError(f"connections must be 1-{MAX_CONNECTIONS}")
        if not 1 <= self.burst <= MAX_BURST or not 0 < self.rate <= MAX_RATE:
            raise ValueError(f"burst must be 1-{MAX_BURST}, rate in (0, {MAX_RATE:g}]")


MAX_CONNECTIONS = 256
MAX_BURST = 2000
MAX_RATE = 10000.0


@dataclass(frozen=True)
class Outcome:
    """What one check function found."""

    verdict: Verdict
    sent: str = ""
    """What was sent, for people (escaped, shortened)."""
    received: str = ""
    """What came back, for people (escaped, shortened)."""
    detail: str = ""
    """Why this verdict; for WARN, what an attacker could do with it."""
    measure: float | None = None
    """A number the check measured (amplification factor, clock offset), if any."""


CheckFunction = Callable[[Target, ProbeOptions], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    """One check as data: adding a check is adding one of these to ``CHECKS``."""

    name: str
    clause: str
    """The RFC clause (or our sum specification) it rests on."""
    services: frozenset[str]
    transports: frozenset[str]
    kind: Kind
    function: CheckFunction = field(repr=False, compare=False)

    def applies(self, target: Target) -> bool:
        return target.service in self.services and target.transport in self.transports


@dataclass(frozen=True)
class CheckResult:
    """One row of the report."""

    check: str
    service: str
    transport: str
    target: str
    kind: str
    clause: str
    verdict: Verdict
    sent: str
    received: str
    detail: str
    measure: float | None = None


def worst(results: Sequence[CheckResult]) -> Verdict:
    """FAIL over WARN over PASS; SKIP counts as nothing."""
    found = {r.verdict for r in results}
    for verdict in (Verdict.FAIL, Verdict.WARN, Verdict.PASS):
        if verdict in found:
            return verdict
    return Verdict.SKIP
