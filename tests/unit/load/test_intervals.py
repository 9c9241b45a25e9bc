"""Interval reports from progress samples: pure arithmetic, no sockets."""

from __future__ import annotations

from random import Random

import pytest

from socketkit.load.histogram import Histogram
from socketkit.load.intervals import IntervalMeter


def test_an_interval_closes_at_the_first_sample_past_each_boundary() -> None:
    meter = IntervalMeter(1.0, size=1024, warmup=1.0)
    assert meter.sample(0.5, 100) is None
    first = meter.sample(1.02, 1020)
    assert first is not None
    assert (first.start, first.end, first.requests, first.warmup) == (0.0, 1.02, 1020, True)
    assert first.requests_per_second == pytest.approx(1000)
    assert first.mib_per_second == pytest.approx(1000 * 1024 / 2**20)
    assert meter.sample(1.5, 1500) is None
    second = meter.sample(2.0, 2020)
    assert second is not None
    assert (second.start, second.requests, second.warmup) == (1.02, 1000, False)
    assert second.requests_per_second == pytest.approx(1000 / 0.98)


def test_a_late_sample_skips_boundaries_instead_of_inventing_empty_intervals() -> None:
    meter = IntervalMeter(0.5, size=64, warmup=0.0)
    closed = meter.sample(1.6, 800)
    assert closed is not None and closed.requests == 800
    assert meter.sample(1.9, 900) is None  # the next boundary is 2.0, not 1.0
    assert meter.sample(2.0, 1000) is not None
    assert [i.warmup for i in meter.intervals] == [False, False]


def test_finish_closes_a_short_last_interval_only_when_something_happened() -> None:
    meter = IntervalMeter(1.0, size=64, warmup=0.0)
    assert meter.sample(1.0, 10) is not None
    last = meter.finish(1.4, 14)
    assert last is not None and (last.requests, last.end) == (4, 1.4)
    assert meter.finish(1.4, 14) is None
    assert len(meter.intervals) == 2


def test_counts_never_go_negative_and_zero_time_is_not_a_division_error() -> None:
    meter = IntervalMeter(1.0, size=64, warmup=0.0)
    assert meter.sample(1.0, 10) is not None
    dip = meter.sample(2.0, 5)  # a worker's counter reset cannot make a negative rate
    assert dip is not None and dip.requests == 0 and dip.requests_per_second == 0
    with pytest.raises(ValueError, match="interval"):
        IntervalMeter(0, size=64, warmup=0.0)


def test_record_many_counts_exactly_as_record_does() -> None:
    rng = Random(3)
    values = [
        rng.choice((-5, 0, 1, 255, 256, 10**6, 2**70)) + rng.randrange(10**7) for _ in range(5000)
    ]
    one, many = Histogram(), Histogram()
    for v in values:
        one.record(v)
    many.record_many(values[:2000])
    many.record_many(values[2000:])
    many.record_many([])
    assert many.to_dict() == one.to_dict()
    assert (many.count, many.minimum, many.maximum, many.total) == (
        one.count,
        one.minimum,
        one.maximum,
        one.total,
    )


def test_the_end_of_the_warm_up_is_always_a_boundary() -> None:
    # A 1.5 s warm-up with 1 s intervals: 0-1 and 1-1.5 are warm-up, then 1.5-2.5...
    meter = IntervalMeter(1.0, size=64, warmup=1.5)
    assert meter.sample(1.01, 101) is not None
    assert meter.sample(1.4, 140) is None
    straddle = meter.sample(1.51, 151)
    assert straddle is not None and straddle.warmup and straddle.requests == 50
    assert meter.sample(2.4, 240) is None  # next boundary: 2.5, not 2.0
    measured = meter.sample(2.5, 250)
    assert measured is not None and not measured.warmup
    assert (measured.start, measured.requests) == (1.51, 99)
