"""Interval reports (iperf3's ``-i``): requests/s and MiB/s over each slice of a run.

Pure: fed ``(elapsed seconds, answers so far)`` samples from the progress
callback, it closes an interval at the first sample on or after each
boundary. Rates use the samples' own times, so an interval that closed a
little late is still exact about what it counted. The end of the warm-up is
always a boundary (then every ``every`` seconds after it), so no interval
mixes warm-up answers with measured ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from socketkit.load.stats import MIB, rate

__all__ = ["Interval", "IntervalMeter"]


@dataclass(frozen=True)
class Interval:
    """One slice of the run, from ``start`` to ``end`` seconds after the common start."""

    start: float
    end: float
    requests: int
    """Verified answers in this slice (warm-up slices included, flagged)."""
    requests_per_second: float
    mib_per_second: float
    """Echoed payload, one direction, in MiB/s (the unit every command uses)."""
    warmup: bool
    """The slice began before the measured window (its answers are not counted in the totals)."""


class IntervalMeter:
    """Turns cumulative progress samples into :class:`Interval` records."""

    def __init__(self, every: float, size: int, warmup: float) -> None:
        if not every > 0:
            raise ValueError("interval must be > 0 seconds")
        self.every = every
        self.size = size
        self.warmup = warmup
        self._start = 0.0
        self._answered = 0
        self._next = self._boundary_after(0.0)
        self.intervals: list[Interval] = []

    def sample(self, elapsed: float, answered: int) -> Interval | None:
        """Feed one sample; returns the interval it closed, if any."""
        if elapsed < self._next:
            return None
        return self._close(elapsed, answered)

    def finish(self, elapsed: float, answered: int) -> Interval | None:
        """The run ended: close the last, shorter interval if anything happened in it."""
        if elapsed <= self._start or (answered == self._answered and elapsed - self._start < 0.01):
            return None
        return self._close(elapsed, answered)

    def _close(self, elapsed: float, answered: int) -> Interval:
        seconds = elapsed - self._start
        count = max(0, answered - self._answered)
        interval = Interval(
            start=self._start,
            end=elapsed,
            requests=count,
            requests_per_second=rate(count, seconds),
            mib_per_second=rate(count * self.size / MIB, seconds),
            warmup=self._start < self.warmup - 1e-9,
        )
        self.intervals.append(interval)
        self._start = elapsed
        self._answered = answered
        self._next = self._boundary_after(elapsed)
        return interval

    def _boundary_after(self, elapsed: float) -> float:
        """The first boundary after ``elapsed``: every ``every`` s, restarting at the warm-up's end."""
        every, warmup = self.every, self.warmup
        if elapsed < warmup:
            return min((math.floor(elapsed / every) + 1) * every, warmup)
        return warmup + (math.floor((elapsed - warmup) / every) + 1) * every
