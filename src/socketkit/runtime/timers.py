"""The one source of time for the runtime's deadlines, injectable for tests.

Idle timeouts, the linger after a close, the accept back-off, the shutdown
grace and the UDP token bucket all read ``Timers``. In production that is
``LoopTimers``, the running event loop's monotonic clock and ``call_later``;
tests pass ``ManualTimers`` and move time themselves with ``advance()``, so a
five-minute idle timeout is tested in microseconds and no test waits on a
real sub-second timer (trio's ``MockClock`` is the model: tests assert exact
virtual times and never sleep).

The protocols' own notion of time (daytime's date, time's seconds since
1900) is wall-clock time and stays the ``clock`` argument of ``Server``:
deadlines need a clock that never jumps, the services need the calendar.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Protocol

__all__ = ["Cancellable", "LoopTimers", "ManualTimers", "Timers"]


class Cancellable(Protocol):
    """A scheduled callback: ``asyncio.TimerHandle`` has this shape."""

    def cancel(self) -> None: ...


class Timers(Protocol):
    """Monotonic time and one-shot callbacks: all a deadline needs."""

    def now(self) -> float:
        """Seconds on a clock that never goes backwards (only differences mean anything)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable:
        """Run ``callback()`` on the loop's thread once ``delay`` seconds have passed."""
        ...


class LoopTimers:
    """The running event loop's clock and timers (the default)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable:
        return self._loop.call_later(delay, callback)


class _Scheduled:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """Virtual time: nothing fires until ``advance()`` says time has passed.

    Use it from the thread that runs the server's loop (in a test, inside
    the coroutine, or through ``ServerThread.call``). Callbacks run in
    deadline order, each seeing ``now()`` equal to its own deadline, and a
    callback that schedules another within the advanced span sees it run
    too, as real time would.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, _Scheduled]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable:
        item = _Scheduled(self._now + max(0.0, delay), callback)
        heapq.heappush(self._queue, (item.when, next(self._order), item))
        return item

    @property
    def pending(self) -> int:
        """Callbacks scheduled and not cancelled (tests assert on it)."""
        return sum(1 for _, _, item in self._queue if not item.cancelled)

    def next_deadline(self) -> float | None:
        """When the next callback is due, or None if nothing is scheduled."""
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    def advance(self, seconds: float) -> int:
        """Move time forward and run what became due; returns how many callbacks ran."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        ran = 0
        while self._queue and self._queue[0][0] <= target:
            when, _, item = heapq.heappop(self._queue)
            if item.cancelled:
                continue
            self._now = max(self._now, when)
            item.cancelled = True  # a handle cancelled after it ran is a no-op
            item.callback()
            ran += 1
        self._now = target
        return ran
