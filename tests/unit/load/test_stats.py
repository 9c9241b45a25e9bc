"""Rates and summaries from merged worker reports (synthetic data, no sockets)."""

from __future__ import annotations

import pytest

from socketkit.endpoints import Endpoint
from socketkit.errors import UsageError
from socketkit.load.config import BenchConfig
from socketkit.load.histogram import Histogram
from socketkit.load.stats import (
    Latency,
    WorkerReport,
    merge_reports,
    percentile_curve,
    rate,
    summarize,
)

TARGET = Endpoint(host="127.0.0.1", port=7)


def report(latencies_ns: list[int], seconds: float, **counts: int) -> WorkerReport:
    hist = Histogram()
    hist.record_many(latencies_ns)
    return WorkerReport(
        histogram=hist.to_dict(),
        requests=len(latencies_ns),
        bytes=64 * len(latencies_ns),
        seconds=seconds,
        connections=counts.pop("connections", 1),
        **counts,
    )


def test_rate_is_count_over_seconds_and_zero_without_time() -> None:
    assert rate(500, 2.0) == 250.0
    assert rate(10, 0.0) == 0.0


def test_merge_adds_counts_and_keeps_the_longest_window() -> None:
    a = report([1000] * 300, 2.0, errors=1, connections=8)
    b = report([3000] * 100, 1.9, mismatches=2, losses=3, late=1, connections=8)
    hist, totals = merge_reports([a, b])
    assert hist.count == 400
    assert totals.requests == 400
    assert totals.bytes == 400 * 64
    assert (totals.errors, totals.mismatches, totals.losses, totals.late) == (1, 2, 3, 1)
    assert totals.connections == 16
    assert totals.seconds == 2.0


def test_summary_rates_and_percentiles_in_microseconds() -> None:
    # 1,000 requests over 2 s: 900 at 100 us, 90 at 1 ms, 10 at 5 ms.
    lat = [100_000] * 900 + [1_000_000] * 90 + [5_000_000] * 10
    hist, totals = merge_reports([report(lat[:500], 2.0), report(lat[500:], 2.0)])
    s = summarize(hist, totals, target="127.0.0.1:7", mode="rr", size=64, workers=2)
    assert s.requests == 1000
    assert s.requests_per_second == 500.0
    assert s.mib_per_second == pytest.approx(1000 * 64 / 2.0 / 1024 / 1024)
    assert s.latency_us.p50 == pytest.approx(100, rel=0.01)
    assert s.latency_us.p90 == pytest.approx(100, rel=0.01)
    assert s.latency_us.p99 == pytest.approx(1000, rel=0.01)
    assert s.latency_us.p999 == pytest.approx(5000, rel=0.01)
    assert s.latency_us.max == 5000
    assert s.latency_us.p50 >= 100  # never below the true value
    assert s.ok


def test_summary_is_not_ok_with_mismatches_or_timeouts() -> None:
    hist, totals = merge_reports([report([1000], 1.0, mismatches=1)])
    assert not summarize(hist, totals, target="t", mode="rr", size=64, workers=1).ok
    hist, totals = merge_reports([report([1000], 1.0, timeouts=1)])
    assert not summarize(hist, totals, target="t", mode="rr", size=64, workers=1).ok


def test_loss_ratio_counts_losses_against_everything_sent() -> None:
    hist, totals = merge_reports([report([1000] * 99, 1.0, losses=1)])
    s = summarize(hist, totals, target="t", mode="udp", size=64, workers=1)
    assert s.loss_ratio == pytest.approx(0.01)


def test_empty_run_summarizes_to_zeros() -> None:
    hist, totals = merge_reports([])
    s = summarize(hist, totals, target="t", mode="rr", size=64, workers=1)
    assert s.requests_per_second == 0.0
    assert s.latency_us == Latency()


def test_percentile_curve_rises_and_ends_at_the_maximum() -> None:
    hist = Histogram()
    hist.record_many(range(1_000, 1_000_000, 1_000))
    curve = percentile_curve(hist, points=50)
    values = [v for _, v in curve]
    assert values == sorted(values)
    assert curve[-1] == (100.0, hist.maximum / 1000.0)
    assert percentile_curve(Histogram()) == []


def test_config_splits_connections_requests_and_rate_over_workers() -> None:
    cfg = BenchConfig(TARGET, connections=10, requests=7, duration=None, rate=900.0, workers=3)
    shares = [cfg.share(i) for i in range(cfg.effective_workers)]
    assert [s.connections for s in shares] == [4, 3, 3]
    assert sum(s.requests or 0 for s in shares) == 7
    assert sum(s.rate or 0 for s in shares) == pytest.approx(900.0)


def test_config_uses_no_more_workers_than_connections() -> None:
    assert BenchConfig(TARGET, connections=1, workers=8).effective_workers == 1


def test_config_stream_depth_fills_the_window() -> None:
    assert BenchConfig(TARGET, mode="stream", size=64 * 1024, window=256 * 1024).depth == 4
    assert BenchConfig(TARGET, mode="stream", size=1024 * 1024, window=1024).depth == 1
    assert BenchConfig(TARGET, mode="rr", size=64).depth == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"connections": 0}, "--conns"),
        ({"size": 0}, "--size"),
        ({"mode": "udp", "size": 70000}, "datagram"),
        ({"duration": None}, "either --duration or --requests"),
        ({"requests": 5}, "either --duration or --requests"),
        ({"rate": 0.0}, "--rate"),
        ({"warmup": -1.0}, "--warmup"),
    ],
)
def test_config_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        BenchConfig(TARGET, **kwargs)  # type: ignore[arg-type]


def test_config_rejects_udp_over_unix() -> None:
    with pytest.raises(UsageError, match="--unix"):
        BenchConfig(Endpoint(path="/tmp/x.sock"), mode="udp")
