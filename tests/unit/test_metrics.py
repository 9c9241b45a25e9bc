"""Prometheus metrics: scraped over HTTP, parsed with prometheus-client's own parser."""

from __future__ import annotations

import dataclasses
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

import pytest
from prometheus_client.parser import text_string_to_metric_families

from socketkit.runtime.metrics import (
    LabelledStatistics,
    ServiceStatistics,
    StatisticsCollector,
    start_metrics_server,
)
from socketkit.runtime.stats import ServerStatistics
from tests.support import TIMEOUT

ECHO_TCP = ServerStatistics(
    connections_served=5,
    connections_active=2,
    connections_refused=3,
    connections_timed_out=1,
    connections_aborted=4,
    bytes_received=1000,
    bytes_sent=999,
    accept_errors=6,
)
ECHO_UDP = ServerStatistics(
    datagrams_received=40,
    datagrams_sent=30,
    datagrams_dropped=1,
    datagrams_refused=7,
    datagrams_rate_limited=2,
    replies_trimmed=8,
    replies_over_budget=9,
    bytes_received=400,
    bytes_sent=300,
)


class Snapshots:
    """A snapshot function whose answer the test changes between scrapes."""

    def __init__(self, items: Sequence[LabelledStatistics]) -> None:
        self.items = list(items)
        self.calls = 0
        self.threads: set[str] = set()

    def __call__(self) -> Sequence[LabelledStatistics]:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        return self.items


@pytest.fixture
def served() -> Iterator[tuple[str, Snapshots]]:
    snaps = Snapshots(
        [ServiceStatistics("echo", "tcp", ECHO_TCP), ServiceStatistics("echo", "udp", ECHO_UDP)]
    )
    address, stop = start_metrics_server("127.0.0.1", 0, StatisticsCollector(snaps))
    try:
        yield f"http://{address[0]}:{address[1]}/metrics", snaps
    finally:
        stop()
        stop()  # idempotent


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def key(name: str, service: str = "echo", transport: str = "tcp", **extra: str):  # type: ignore[no-untyped-def]
    labels = {"service": service, "transport": transport, **extra}
    return (name, tuple(sorted(labels.items())))


def test_scrape_reports_every_figure(served: tuple[str, Snapshots]) -> None:
    url, snaps = served
    s = scrape(url)
    assert s[key("socketkit_connections_served_total")] == 5
    assert s[key("socketkit_connections_active")] == 2
    assert s[key("socketkit_connections_refused_total", reason="limit")] == 3
    assert s[key("socketkit_connections_closed_total", reason="idle_timeout")] == 1
    assert s[key("socketkit_connections_closed_total", reason="aborted")] == 4
    assert s[key("socketkit_bytes_received_total")] == 1000
    assert s[key("socketkit_bytes_sent_total")] == 999
    assert s[key("socketkit_accept_errors_total")] == 6
    udp = {"transport": "udp"}
    assert s[key("socketkit_datagrams_received_total", **udp)] == 40
    assert s[key("socketkit_datagrams_sent_total", **udp)] == 30
    assert s[key("socketkit_datagrams_dropped_total", reason="source", **udp)] == 7
    assert s[key("socketkit_datagrams_dropped_total", reason="rate_limited", **udp)] == 2
    assert s[key("socketkit_datagrams_dropped_total", reason="service", **udp)] == 1
    assert s[key("socketkit_udp_replies_limited_total", action="trimmed", **udp)] == 8
    assert s[key("socketkit_udp_replies_limited_total", action="not_sent", **udp)] == 9
    assert s[key("socketkit_bytes_received_total", **udp)] == 400
    assert snaps.calls == 1
    assert threading.current_thread().name not in snaps.threads  # served from its own thread


def test_figures_follow_the_snapshot(served: tuple[str, Snapshots]) -> None:
    url, snaps = served
    assert scrape(url)[key("socketkit_bytes_sent_total")] == 999
    snaps.items = [ServiceStatistics("sum", "unix", ServerStatistics(bytes_sent=12))]
    s = scrape(url)
    assert s[key("socketkit_bytes_sent_total", "sum", "unix")] == 12
    assert key("socketkit_bytes_sent_total") not in s
    # Only our collector: no process-wide default metrics.
    assert not any(name.startswith(("python_", "process_")) for name, _ in s)


def test_every_statistics_field_is_exported(served: tuple[str, Snapshots]) -> None:
    url, snaps = served
    ones = ServerStatistics(**{f.name: 1 for f in dataclasses.fields(ServerStatistics)})
    snaps.items = [ServiceStatistics("echo", "tcp", ones)]
    total = sum(v for (name, _), v in scrape(url).items() if not name.endswith("_created"))
    assert total == len(dataclasses.fields(ServerStatistics))


def test_snapshot_error_fails_the_scrape_not_the_server() -> None:
    calls = 0

    def snapshot() -> Sequence[LabelledStatistics]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("loop busy")
        return []

    address, stop = start_metrics_server("127.0.0.1", 0, StatisticsCollector(snapshot))
    try:
        url = f"http://127.0.0.1:{address[1]}/metrics"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url, timeout=TIMEOUT)
        assert scrape(url) == {}
    finally:
        stop()


def test_ipv6_loopback_and_bound_port() -> None:
    address, stop = start_metrics_server("::1", 0, StatisticsCollector(lambda: []))
    try:
        assert address[0] == "::1" and address[1] > 0
        assert scrape(f"http://[::1]:{address[1]}/metrics") == {}
    finally:
        stop()


def test_stop_closes_the_port() -> None:
    address, stop = start_metrics_server("127.0.0.1", 0, StatisticsCollector(lambda: []))
    stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/metrics", timeout=TIMEOUT)
