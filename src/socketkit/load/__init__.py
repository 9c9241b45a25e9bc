"""The load generator behind ``socketkit bench``: verified echo load and its statistics.

``histogram`` and ``stats`` are pure (no I/O); ``worker`` drives sockets on one
event loop; ``runner`` spreads the load over processes and merges the results.
"""

from __future__ import annotations

from socketkit.load.config import MODES, BenchConfig, default_workers
from socketkit.load.histogram import Histogram
from socketkit.load.runner import Progress, run_bench
from socketkit.load.stats import BenchSummary, Latency, WorkerReport, merge_reports, summarize

__all__ = [
    "MODES",
    "BenchConfig",
    "BenchSummary",
    "Histogram",
    "Latency",
    "Progress",
    "WorkerReport",
    "default_workers",
    "merge_reports",
    "run_bench",
    "summarize",
]
