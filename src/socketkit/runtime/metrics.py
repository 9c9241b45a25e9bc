"""Prometheus metrics for ``serve --metrics``, with the reference ``prometheus-client``.

The runtime keeps its counters in ``ServerStatistics``; this module does not
count anything itself. A ``StatisticsCollector`` calls a ``snapshot()``
function at scrape time and turns each (service, transport, statistics)
item into samples, so the figures are exactly the ones the shutdown summary
prints. For ``serve --workers`` each worker publishes its own figures to a file
(``publish``, every ``PUBLISH_INTERVAL`` seconds and at its shutdown), and
the first process's snapshot adds them to its own (``published``,
``merge``): one item per service and transport, whichever process served
it, each process counted once.

Metric names (all carry ``service`` and ``transport`` labels):

- ``socketkit_connections_served_total``, ``socketkit_connections_active`` (gauge)
- ``socketkit_connections_refused_total{reason}``: ``limit`` (the total or
  per-source cap)
- ``socketkit_connections_closed_total{reason}``: ``idle_timeout``, ``aborted``
- ``socketkit_bytes_received_total``, ``socketkit_bytes_sent_total``
- ``socketkit_datagrams_received_total``, ``socketkit_datagrams_sent_total``
- ``socketkit_datagrams_dropped_total{reason}``: ``source`` (loop and
  reflection guards), ``rate_limited``, ``service`` (no reply for another reason)
- ``socketkit_udp_replies_limited_total{action}``: ``trimmed``, ``not_sent``
  (the amplification budget)
- ``socketkit_accept_errors_total``

A ``ServerStatistics`` field not in the tables below is still exported, as
``socketkit_<field>_total``, so a counter added later is never silently lost.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_wsgi_server
from prometheus_client.registry import Collector, CollectorRegistry

from socketkit.runtime.stats import ServerStatistics, combine_statistics

__all__ = [
    "PUBLISH_DIR_ENV",
    "PUBLISH_INTERVAL",
    "PUBLISH_LEAD_ENV",
    "LabelledStatistics",
    "ServiceStatistics",
    "StatisticsCollector",
    "merge",
    "publish",
    "published",
    "publishing_directory",
    "start_metrics_server",
]


class LabelledStatistics(Protocol):
    """What ``snapshot()`` yields: one item per service and transport."""

    @property
    def service(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def statistics(self) -> ServerStatistics: ...


@dataclass(frozen=True)
class ServiceStatistics:
    """A ready-made ``LabelledStatistics``."""

    service: str
    transport: str
    statistics: ServerStatistics


_LABELS = ["service", "transport"]

# Plain counters: field -> (metric name without _total, help).
_COUNTERS: dict[str, tuple[str, str]] = {
    "connections_served": ("socketkit_connections_served", "Connections served."),
    "bytes_received": ("socketkit_bytes_received", "Bytes received from clients."),
    "bytes_sent": ("socketkit_bytes_sent", "Bytes sent to clients."),
    "datagrams_received": ("socketkit_datagrams_received", "Datagrams received."),
    "datagrams_sent": ("socketkit_datagrams_sent", "Datagrams sent."),
    "accept_errors": (
        "socketkit_accept_errors",
        "accept() failures (such as EMFILE), each followed by a back-off.",
    ),
}
_GAUGES: dict[str, tuple[str, str]] = {
    "connections_active": ("socketkit_connections_active", "Connections open now."),
}
# Counters with a reason label: metric -> (help, label name, {field: label value}).
_LABELLED: dict[str, tuple[str, str, dict[str, str]]] = {
    "socketkit_connections_refused": (
        "Connections accepted and closed at once, by reason.",
        "reason",
        {"connections_refused": "limit"},
    ),
    "socketkit_connections_closed": (
        "Connections closed by the server, by reason.",
        "reason",
        {"connections_timed_out": "idle_timeout", "connections_aborted": "aborted"},
    ),
    "socketkit_datagrams_dropped": (
        "Datagrams not answered, by reason.",
        "reason",
        {
            "datagrams_refused": "source",
            "datagrams_rate_limited": "rate_limited",
            "datagrams_dropped": "service",
        },
    ),
    "socketkit_proxy_rejected": (
        "Connections closed before their service for their PROXY header, by reason.",
        "reason",
        {"proxy_untrusted": "untrusted", "proxy_invalid": "invalid", "proxy_missing": "missing"},
    ),
    "socketkit_udp_replies_limited": (
        "UDP replies cut or not sent by the amplification budget.",
        "action",
        {"replies_trimmed": "trimmed", "replies_over_budget": "not_sent"},
    ),
}


def _known_fields() -> set[str]:
    known = set(_COUNTERS) | set(_GAUGES)
    for _, _, mapping in _LABELLED.values():
        known |= set(mapping)
    return known


class StatisticsCollector(Collector):
    """A prometheus-client collector reading ``snapshot()`` at every scrape.

    ``snapshot`` runs in the HTTP server's thread: it must be safe to call
    from there (reading a frozen ``ServerStatistics`` the loop hands over, or
    asking the loop with ``run_coroutine_threadsafe`` and a timeout). If it
    raises, the scrape fails with HTTP 500 and the server keeps running.
    """

    def __init__(self, snapshot: Callable[[], Sequence[LabelledStatistics]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []  # no snapshot at registration time

    def collect(self) -> Iterator[Metric]:
        items = list(self._snapshot())
        for fname, (name, doc) in _COUNTERS.items():
            counter = CounterMetricFamily(name, doc, labels=_LABELS)
            for item in items:
                counter.add_metric(_labels(item), getattr(item.statistics, fname, 0))
            yield counter
        for fname, (name, doc) in _GAUGES.items():
            gauge = GaugeMetricFamily(name, doc, labels=_LABELS)
            for item in items:
                gauge.add_metric(_labels(item), getattr(item.statistics, fname, 0))
            yield gauge
        for name, (doc, label, mapping) in _LABELLED.items():
            counter = CounterMetricFamily(name, doc, labels=[*_LABELS, label])
            for item in items:
                for fname, value in mapping.items():
                    counter.add_metric([*_labels(item), value], getattr(item.statistics, fname, 0))
            yield counter
        known = _known_fields()
        for f in fields(ServerStatistics):
            if f.name in known:
                continue
            counter = CounterMetricFamily(
                f"socketkit_{f.name}", f.name.replace("_", " "), labels=_LABELS
            )
            for item in items:
                counter.add_metric(_labels(item), getattr(item.statistics, f.name, 0))
            yield counter


def _labels(item: LabelledStatistics) -> list[str]:
    return [item.service, item.transport]


def start_metrics_server(
    host: str, port: int, collector: Collector
) -> tuple[tuple[Any, ...], Callable[[], None]]:
    """Serve ``/metrics`` (any path, in fact) over HTTP from a daemon thread.

    Binds ``host`` (loopback unless the operator says otherwise; IPv6
    literals work) and ``port`` (0 for any free port). Returns the bound
    address as ``getsockname()`` gives it, and a ``stop()`` that closes the
    listener and joins the thread (idempotent). Only ``collector`` is served,
    not the process-wide default registry. Raises ``OSError`` when the bind
    fails (the caller turns it into a ``SocketkitError``).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    httpd, thread = start_wsgi_server(port, addr=host, registry=registry)
    address: tuple[Any, ...] = httpd.socket.getsockname()
    lock = threading.Lock()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        with lock:
            if stopped:
                return
            stopped = True
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5.0)

    return address, stop


# -- serve --workers: each worker publishes its figures, the first process sums them --

PUBLISH_DIR_ENV = "SOCKETKIT_METRICS_DIR"
"""A directory where worker processes publish their figures (set by ``serve --metrics``)."""
PUBLISH_LEAD_ENV = "SOCKETKIT_METRICS_LEAD"
"""The pid of the process that serves /metrics (it reads, never publishes)."""
PUBLISH_INTERVAL = 0.25
"""Seconds between a worker's publications: how stale a scrape's worker figures may be."""


def publishing_directory() -> str | None:
    """Where this process publishes its figures, or None (not a worker of ``--metrics``).

    Why files and not a pipe to the first process: the worker processes are
    started and supervised by ``runtime/workers.py``, whose channel carries
    their life cycle only; a file per worker, replaced atomically, needs no
    protocol, survives a worker that dies (its counters stay counted), and
    is the same shape as prometheus-client's own multiprocess mode.
    """
    directory = os.environ.get(PUBLISH_DIR_ENV)
    if not directory or os.environ.get(PUBLISH_LEAD_ENV) == str(os.getpid()):
        return None
    return directory


def publish(directory: str, items: Iterable[LabelledStatistics]) -> None:
    """Write this process's figures to ``directory/worker-PID.json`` atomically (rename)."""
    data = [
        {"service": i.service, "transport": i.transport, "statistics": asdict(i.statistics)}
        for i in items
    ]
    path = os.path.join(directory, f"worker-{os.getpid()}.json")
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(temporary, path)
    except OSError:
        pass  # the first process went away with its directory; nothing to tell


def published(directory: str) -> list[ServiceStatistics]:
    """Every worker's last publication; a worker no longer running counts 0 connections open."""
    found: list[ServiceStatistics] = []
    known = {f.name for f in fields(ServerStatistics)}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for name in names:
        if not (name.startswith("worker-") and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as source:
                data = json.load(source)
            pid = int(name[len("worker-") : -len(".json")])
        except (OSError, ValueError):
            continue
        alive = _running(pid)
        for entry in data if isinstance(data, list) else []:
            try:
                values = {k: int(v) for k, v in entry["statistics"].items() if k in known}
                if not alive:
                    values["connections_active"] = 0
                found.append(
                    ServiceStatistics(
                        str(entry["service"]), str(entry["transport"]), ServerStatistics(**values)
                    )
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
    return found


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def merge(items: Iterable[LabelledStatistics]) -> list[ServiceStatistics]:
    """One item per service and transport, the figures summed (endpoints, workers)."""
    merged: dict[tuple[str, str], list[ServerStatistics]] = {}
    for item in items:
        merged.setdefault((item.service, item.transport), []).append(item.statistics)
    return [
        ServiceStatistics(service, transport, combine_statistics(parts))
        for (service, transport), parts in merged.items()
    ]
