"""The latency histogram: bucket layout, percentiles, exact merging (synthetic data)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketkit.load.histogram import SUB_BITS, Histogram, bucket_bounds, bucket_index

RELATIVE_ERROR = 1.0 / (1 << (SUB_BITS - 1))


def exact_percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def test_small_values_are_exact() -> None:
    hist = Histogram()
    hist.record_many(range(1, 101))
    assert hist.percentile(50) == 50
    assert hist.percentile(90) == 90
    assert hist.percentile(99) == 99
    assert hist.percentile(100) == 100
    assert hist.minimum == 1
    assert hist.maximum == 100
    assert hist.mean == pytest.approx(50.5)


def test_empty_histogram_reports_zero() -> None:
    hist = Histogram()
    assert hist.count == 0
    assert hist.percentile(99) == 0
    assert hist.mean == 0.0


def test_percentile_outside_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        Histogram().percentile(101)


@given(st.integers(min_value=0, max_value=2**62))
def test_every_value_lies_within_its_bucket(value: int) -> None:
    low, high = bucket_bounds(bucket_index(value))
    assert low <= value <= high
    assert high - low <= max(0, value * RELATIVE_ERROR)


def test_buckets_tile_the_number_line() -> None:
    previous_high = -1
    for index in range(bucket_index(2**40) + 1):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        assert bucket_index(low) == index
        assert bucket_index(high) == index
        previous_high = high


@given(
    st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=300),
    st.sampled_from([0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentile_is_never_below_and_at_most_one_bucket_above(
    values: list[int], p: float
) -> None:
    hist = Histogram()
    hist.record_many(values)
    exact = exact_percentile(values, p)
    got = hist.percentile(p)
    assert exact <= got <= max(exact, math.floor(exact * (1 + RELATIVE_ERROR)) + 1)
    assert got <= max(values)


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(7)
    parts = [[int(rng.lognormvariate(11, 1.2)) for _ in range(5000)] for _ in range(4)]
    merged = Histogram()
    for part in parts:
        h = Histogram()
        h.record_many(part)
        merged.merge(Histogram.from_dict(h.to_dict()))
    whole = Histogram()
    whole.record_many(v for part in parts for v in part)
    assert merged.count == whole.count == 20000
    assert merged.total == whole.total
    assert (merged.minimum, merged.maximum) == (whole.minimum, whole.maximum)
    assert list(merged.buckets()) == list(whole.buckets())
    for p in (50, 90, 99, 99.9):
        assert merged.percentile(p) == whole.percentile(p)


def test_merged_p99_is_not_the_average_of_p99s() -> None:
    """One fast worker and one slow one: the union's p99 is the slow worker's tail."""
    fast, slow = Histogram(), Histogram()
    fast.record_many([100] * 990 + [200] * 10)
    slow.record_many([10_000] * 1000)
    merged = Histogram()
    merged.merge(fast)
    merged.merge(slow)
    assert merged.percentile(50) == 200
    assert merged.percentile(99) == slow.percentile(99)
    average = (fast.percentile(99) + slow.percentile(99)) / 2
    assert merged.percentile(99) != pytest.approx(average)


def test_merging_an_empty_histogram_changes_nothing() -> None:
    hist = Histogram()
    hist.record_many([5, 7])
    hist.merge(Histogram())
    assert (hist.count, hist.minimum, hist.maximum) == (2, 5, 7)


def test_negative_samples_count_as_zero() -> None:
    hist = Histogram()
    hist.record(-3)
    assert (hist.count, hist.minimum, hist.maximum) == (1, 0, 0)


def test_from_dict_refuses_another_layout() -> None:
    data = Histogram().to_dict()
    data["sub_bits"] = SUB_BITS + 1
    with pytest.raises(ValueError, match="layout"):
        Histogram.from_dict(data)
