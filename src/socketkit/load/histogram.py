"""A log-linear latency histogram (HDR-style) that merges exactly.

Why not keep every sample: a worker doing 100,000 requests a second for a
minute would keep millions of numbers, and sending them between processes
would cost more than the measurement. Why not average percentiles across
workers: the average of two p99s is not the p99 of the union. A histogram
with one fixed bucket layout fixes both: workers count samples into the same
buckets, and merging is adding counts, exactly.

Layout (values are integers, nanoseconds here): values below ``2**SUB_BITS``
have a bucket each (exact); above that, every power-of-two range is split
into ``2**(SUB_BITS-1)`` equal buckets, so a bucket is never wider than
``1 / 2**(SUB_BITS-1)`` of the values in it: with ``SUB_BITS = 8`` the
relative error of any reported value is below 0.8 %. Minimum, maximum and
sum are kept exactly beside the counts.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from math import ceil

__all__ = ["SUB_BITS", "Histogram", "bucket_bounds", "bucket_index"]

SUB_BITS = 8
_SUB = 1 << SUB_BITS
_HALF = _SUB >> 1
_MAX_BITS = 64
_BUCKETS = _SUB + (_MAX_BITS - SUB_BITS) * _HALF


def bucket_index(value: int) -> int:
    """The bucket of a value >= 0 (values >= 2**64 share the last bucket)."""
    if value < _SUB:
        return value if value > 0 else 0
    shift = value.bit_length() - SUB_BITS
    index = _SUB + (shift - 1) * _HALF + ((value >> shift) - _HALF)
    return index if index < _BUCKETS else _BUCKETS - 1


def bucket_bounds(index: int) -> tuple[int, int]:
    """Lowest and highest value that land in bucket ``index`` (both inclusive)."""
    if index < _SUB:
        return index, index
    shift, mantissa = divmod(index - _SUB, _HALF)
    shift += 1
    low = (mantissa + _HALF) << shift
    return low, low + (1 << shift) - 1


class Histogram:
    """Counts of integer samples in log-linear buckets; ``merge`` is exact."""

    __slots__ = ("_counts", "count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self._counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0
        self.minimum = 0
        self.maximum = 0

    def record(self, value: int) -> None:
        """Count one sample (negative values count as 0)."""
        if value < 0:
            value = 0
        if value < _SUB:
            index = value
        else:
            shift = value.bit_length() - SUB_BITS
            index = _SUB + (shift - 1) * _HALF + ((value >> shift) - _HALF)
            if index >= _BUCKETS:
                index = _BUCKETS - 1
        self._counts[index] += 1
        if self.count == 0 or value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        self.count += 1
        self.total += value

    def record_many(self, values: Iterable[int]) -> None:
        """Count many samples: the same result as ``record`` each, at a third of the cost.

        The load generator appends raw samples to a list on its hot path and
        folds them here in batches (one method call per batch, not per request).
        """
        batch = [v if v > 0 else 0 for v in values]
        if not batch:
            return
        counts = self._counts
        sub, half, buckets, sub_bits = _SUB, _HALF, _BUCKETS, SUB_BITS
        for v in batch:
            if v < sub:
                counts[v] += 1
            else:
                shift = v.bit_length() - sub_bits
                index = sub + (shift - 1) * half + ((v >> shift) - half)
                counts[index if index < buckets else buckets - 1] += 1
        low = min(batch)
        if self.count == 0 or low < self.minimum:
            self.minimum = low
        self.maximum = max(self.maximum, max(batch))
        self.count += len(batch)
        self.total += sum(batch)

    def merge(self, other: Histogram) -> None:
        """Add another histogram's samples to this one (exact)."""
        if other.count == 0:
            return
        counts = self._counts
        for index, n in other.buckets():
            counts[index] += n
        if self.count == 0 or other.minimum < self.minimum:
            self.minimum = other.minimum
        self.maximum = max(self.maximum, other.maximum)
        self.count += other.count
        self.total += other.total

    def buckets(self) -> Iterator[tuple[int, int]]:
        """``(index, count)`` of every non-empty bucket, lowest first."""
        for index, n in enumerate(self._counts):
            if n:
                yield index, n

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, p: float) -> int:
        """The value at or below which ``p`` percent of the samples lie.

        Reported as the highest value of the bucket the sample falls in
        (never below the true value, at most 0.8 % above it), clamped to
        the exact minimum and maximum. 0 for an empty histogram.
        """
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile {p} is outside 0-100")
        if self.count == 0:
            return 0
        if p >= 100.0:
            return self.maximum
        rank = max(1, ceil(p / 100.0 * self.count))
        seen = 0
        for index, n in self.buckets():
            seen += n
            if seen >= rank:
                value = bucket_bounds(index)[1]
                return max(self.minimum, min(value, self.maximum))
        return self.maximum

    # -- moving between processes ------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """A compact picklable/JSON form: only the non-empty buckets."""
        return {
            "sub_bits": SUB_BITS,
            "count": self.count,
            "total": self.total,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "buckets": {str(i): n for i, n in self.buckets()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Histogram:
        if data.get("sub_bits") != SUB_BITS:
            raise ValueError("histogram made with another bucket layout")
        hist = cls()
        buckets = data["buckets"]
        assert isinstance(buckets, Mapping)
        for key, n in buckets.items():
            hist._counts[int(key)] += int(n)
        hist.count = _int(data["count"])
        hist.total = _int(data["total"])
        hist.minimum = _int(data["minimum"])
        hist.maximum = _int(data["maximum"])
        return hist


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value
