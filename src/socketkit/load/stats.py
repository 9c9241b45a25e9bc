"""What a benchmark run measured, computed from merged counts: pure, no I/O.

Rates are counts divided by the measured window, and percentiles come from
the merged histogram of every worker (never averaged across workers, since
the mean of two p99s is not the p99 of both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from math import log10

from socketkit.load.histogram import Histogram

__all__ = [
    "PERCENTILES",
    "BenchSummary",
    "Latency",
    "WorkerReport",
    "merge_reports",
    "percentile_curve",
    "rate",
    "summarize",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MIB = 1024 * 1024


def rate(count: float, seconds: float) -> float:
    """Events per second; 0 when no time passed (never a division error)."""
    return count / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class Latency:
    """Round-trip latency in microseconds (from the intended send time)."""

    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0
    min: float = 0.0
    mean: float = 0.0

    @classmethod
    def from_histogram(cls, hist: Histogram) -> Latency:
        """Nanosecond samples in, microseconds out."""
        p50, p90, p99, p999 = (hist.percentile(p) / 1000.0 for p in PERCENTILES)
        return cls(
            p50=p50,
            p90=p90,
            p99=p99,
            p999=p999,
            max=hist.maximum / 1000.0,
            min=hist.minimum / 1000.0,
            mean=hist.mean / 1000.0,
        )


@dataclass
class WorkerReport:
    """One worker's counts, as sent back to the parent process."""

    histogram: dict[str, object] = field(default_factory=dict)
    requests: int = 0
    """Measured requests whose echo came back complete and correct."""
    bytes: int = 0
    """Payload bytes of those requests (one direction)."""
    seconds: float = 0.0
    """Length of this worker's measured window."""
    errors: int = 0
    """Connections that failed (refused, reset, closed early)."""
    mismatches: int = 0
    """Echoes that differed from what was sent (or bytes nobody asked for)."""
    timeouts: int = 0
    """Measured requests still unanswered when the run ended (TCP)."""
    losses: int = 0
    """UDP requests with no reply within the loss timeout."""
    late: int = 0
    """UDP replies that came after their request was counted lost."""
    connections: int = 0
    """Connections that were open when the measurement started."""
    answered: int = 0
    """Every echo that came back, warm-up and drain included (for work-per-request figures)."""


def merge_reports(reports: Iterable[WorkerReport]) -> tuple[Histogram, WorkerReport]:
    """Add the workers' counts; the window is the longest worker's window."""
    hist = Histogram()
    total = WorkerReport()
    for r in reports:
        if r.histogram:
            hist.merge(Histogram.from_dict(r.histogram))
        total.requests += r.requests
        total.bytes += r.bytes
        total.errors += r.errors
        total.mismatches += r.mismatches
        total.timeouts += r.timeouts
        total.losses += r.losses
        total.late += r.late
        total.connections += r.connections
        total.answered += r.answered
        total.seconds = max(total.seconds, r.seconds)
    return hist, total


@dataclass(frozen=True)
class BenchSummary:
    """The result people read: ``socketkit bench`` prints this, ``--json`` dumps it."""

    target: str
    mode: str
    connections: int
    size: int
    workers: int
    seconds: float
    requests: int
    requests_per_second: float
    mib_per_second: float
    latency_us: Latency
    errors: int
    mismatches: int
    timeouts: int
    losses: int
    late: int
    answered: int = 0
    """Every echo that came back, warm-up and drain included."""
    rate: float | None = None
    """The open-loop rate asked for (None: closed loop, as fast as answers come)."""
    loop: str = ""
    histogram: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when every echo was correct and nothing failed."""
        return not (self.errors or self.mismatches or self.timeouts)

    @property
    def loss_ratio(self) -> float:
        sent = self.requests + self.losses
        return self.losses / sent if sent else 0.0


def summarize(
    hist: Histogram,
    totals: WorkerReport,
    *,
    target: str,
    mode: str,
    size: int,
    workers: int,
    rate_asked: float | None = None,
    loop: str = "",
) -> BenchSummary:
    """Rates and percentiles from merged counts."""
    seconds = totals.seconds
    return BenchSummary(
        target=target,
        mode=mode,
        connections=totals.connections,
        size=size,
        workers=workers,
        seconds=seconds,
        requests=totals.requests,
        requests_per_second=rate(totals.requests, seconds),
        mib_per_second=rate(totals.bytes / MIB, seconds),
        latency_us=Latency.from_histogram(hist),
        errors=totals.errors,
        mismatches=totals.mismatches,
        timeouts=totals.timeouts,
        losses=totals.losses,
        late=totals.late,
        answered=totals.answered,
        rate=rate_asked,
        loop=loop,
        histogram=hist.to_dict(),
    )


def percentile_curve(hist: Histogram, *, points: int = 200) -> list[tuple[float, float]]:
    """``(percentile, microseconds)`` pairs for an HDR-style percentile plot.

    The percentiles crowd towards 100 (1 - 10**-k steps), where tail
    latency lives, up to the last sample.
    """
    if hist.count == 0:
        return []
    curve: list[tuple[float, float]] = []
    last = 1.0 - 1.0 / hist.count if hist.count > 1 else 0.0
    nines = -log10(1.0 - last) if last > 0 else 0.0
    for i in range(points + 1):
        fraction = 1.0 - 10.0 ** (-nines * i / points) if nines else 0.0
        p = min(100.0, fraction * 100.0)
        curve.append((p, hist.percentile(p) / 1000.0))
    curve.append((100.0, hist.maximum / 1000.0))
    return curve
