"""runtime/timers.py: ManualTimers' virtual time, exactly, and LoopTimers on a real loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit.runtime.timers import LoopTimers, ManualTimers, Timers
from tests.support import TIMEOUT

Run = Callable[[Callable[[], Awaitable[Any]]], Any]


def recorder(
    timers: ManualTimers, log: list[tuple[str, float]]
) -> Callable[[str], Callable[[], None]]:
    """``note(name)``: a callback that records its name and the virtual time it ran at."""

    def note(name: str) -> Callable[[], None]:
        return lambda: log.append((name, timers.now()))

    return note


def test_nothing_runs_until_time_is_advanced() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    timers.call_later(0.0, recorder(timers, ran)("zero delay"))
    assert ran == []  # not even a zero delay runs on its own
    assert timers.now() == 0.0
    assert timers.advance(0.0) == 1
    assert ran == [("zero delay", 0.0)]


def test_callbacks_run_in_deadline_order_each_at_its_own_deadline() -> None:
    timers = ManualTimers(start=100.0)
    ran: list[tuple[str, float]] = []
    note = recorder(timers, ran)
    timers.call_later(3.0, note("c"))
    timers.call_later(1.0, note("a"))
    timers.call_later(2.0, note("b"))
    assert timers.advance(10.0) == 3
    assert ran == [("a", 101.0), ("b", 102.0), ("c", 103.0)]
    assert timers.now() == 110.0  # the full span, not the last deadline


def test_equal_deadlines_run_in_the_order_they_were_scheduled() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    note = recorder(timers, ran)
    for name in ("first", "second", "third"):
        timers.call_later(5.0, note(name))
    timers.advance(5.0)
    assert ran == [("first", 5.0), ("second", 5.0), ("third", 5.0)]


def test_a_deadline_exactly_at_the_target_runs_and_one_just_after_does_not() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    note = recorder(timers, ran)
    timers.call_later(1.0, note("at"))
    timers.call_later(1.0 + 1e-9, note("after"))
    assert timers.advance(1.0) == 1
    assert ran == [("at", 1.0)]
    assert timers.pending == 1
    assert timers.advance(1e-9) == 1
    assert ran[-1][0] == "after"


def test_advancing_in_steps_runs_each_callback_once() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    timers.call_later(0.75, recorder(timers, ran)("x"))
    assert [timers.advance(0.25) for _ in range(4)] == [0, 0, 1, 0]
    assert ran == [("x", 0.75)]
    assert timers.now() == 1.0


def test_a_callback_scheduled_within_the_advanced_span_runs_too() -> None:
    """A periodic check (the idle watch's shape) reschedules itself from inside its callback."""
    timers = ManualTimers()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(timers.now())
        timers.call_later(0.25, tick)

    timers.call_later(0.25, tick)
    assert timers.advance(1.0) == 4
    assert ticks == [0.25, 0.5, 0.75, 1.0]
    assert timers.pending == 1
    assert timers.next_deadline() == 1.25


def test_a_callback_scheduling_one_beyond_the_span_leaves_it_pending() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    note = recorder(timers, ran)
    timers.call_later(1.0, lambda: timers.call_later(5.0, note("later")))
    assert timers.advance(2.0) == 1
    assert ran == []
    assert timers.next_deadline() == 6.0
    assert timers.advance(4.0) == 1
    assert ran == [("later", 6.0)]


def test_a_zero_delay_scheduled_inside_a_callback_runs_at_that_callbacks_time() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    note = recorder(timers, ran)
    timers.call_later(2.0, lambda: timers.call_later(0.0, note("soon")))
    timers.call_later(3.0, note("three"))
    timers.advance(10.0)
    assert ran == [("soon", 2.0), ("three", 3.0)]


def test_a_negative_delay_is_treated_as_now() -> None:
    timers = ManualTimers(start=7.0)
    ran: list[tuple[str, float]] = []
    timers.call_later(-3.0, recorder(timers, ran)("late"))
    assert timers.next_deadline() == 7.0
    timers.advance(0.0)
    assert ran == [("late", 7.0)]


def test_cancel_before_the_deadline_skips_the_callback() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    note = recorder(timers, ran)
    keep = timers.call_later(1.0, note("keep"))
    drop = timers.call_later(0.5, note("drop"))
    assert timers.pending == 2
    drop.cancel()
    drop.cancel()  # idempotent
    assert timers.pending == 1
    assert timers.next_deadline() == 1.0  # a cancelled head is not a deadline
    assert timers.advance(2.0) == 1  # cancelled ones are not counted as run
    assert ran == [("keep", 1.0)]
    keep.cancel()  # after it ran: a no-op
    assert timers.pending == 0


def test_a_callback_can_cancel_a_later_one_in_the_same_span() -> None:
    timers = ManualTimers()
    ran: list[tuple[str, float]] = []
    note = recorder(timers, ran)
    victim = timers.call_later(2.0, note("victim"))
    timers.call_later(1.0, victim.cancel)
    assert timers.advance(3.0) == 1
    assert ran == []


def test_negative_advance_is_refused_and_changes_nothing() -> None:
    timers = ManualTimers(start=5.0)
    ran: list[tuple[str, float]] = []
    timers.call_later(1.0, recorder(timers, ran)("x"))
    with pytest.raises(ValueError, match="forward"):
        timers.advance(-0.001)
    assert timers.now() == 5.0
    assert timers.pending == 1
    assert ran == []


def test_pending_and_next_deadline_when_empty() -> None:
    timers = ManualTimers()
    assert timers.pending == 0
    assert timers.next_deadline() is None
    assert timers.advance(1e6) == 0
    assert timers.now() == 1e6


def test_the_clock_only_moves_when_advanced() -> None:
    timers = ManualTimers(start=42.0)
    assert timers.now() == timers.now() == 42.0
    timers.advance(0.5)
    assert timers.now() == 42.5


def test_both_kinds_satisfy_the_protocol() -> None:
    def use(timers: Timers) -> float:
        return timers.now()

    assert use(ManualTimers(start=1.0)) == 1.0

    async def main() -> float:
        return use(LoopTimers())

    assert asyncio.run(main()) >= 0.0


# -- LoopTimers: the running loop's clock and call_later ------------------------------


def test_loop_timers_read_the_running_loops_clock(arun: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        timers = LoopTimers()
        before = loop.time()
        now = timers.now()
        assert before <= now <= loop.time()

    arun(main)


def test_loop_timers_need_a_loop() -> None:
    with pytest.raises(RuntimeError):
        LoopTimers()  # no running loop and none given
    loop = asyncio.new_event_loop()
    try:
        timers = LoopTimers(loop)
        assert timers.now() == pytest.approx(loop.time(), abs=1.0)
    finally:
        loop.close()


def test_loop_timers_call_later_runs_on_the_loop_and_cancel_stops_it(arun: Run) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        timers = LoopTimers()
        ran: list[str] = []
        done = loop.create_future()
        cancelled = timers.call_later(0.0, lambda: ran.append("cancelled"))
        cancelled.cancel()
        timers.call_later(0.0, lambda: ran.append("first"))
        timers.call_later(0.0, lambda: done.set_result(None))
        await asyncio.wait_for(done, TIMEOUT)
        return ran

    assert arun(main) == ["first"]
