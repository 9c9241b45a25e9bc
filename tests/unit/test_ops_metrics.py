"""How ``serve --workers --metrics`` adds up processes: publish, read back, merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from socketkit.runtime.metrics import (
    PUBLISH_DIR_ENV,
    PUBLISH_LEAD_ENV,
    ServiceStatistics,
    merge,
    publish,
    published,
    publishing_directory,
)
from socketkit.runtime.stats import ServerStatistics
from tests.support import TIMEOUT


def test_published_figures_come_back_and_merge_by_service(tmp_path: Path) -> None:
    publish(
        str(tmp_path),
        [ServiceStatistics("echo", "tcp", ServerStatistics(connections_served=3, bytes_sent=7))],
    )
    back = published(str(tmp_path))
    assert back == [
        ServiceStatistics("echo", "tcp", ServerStatistics(connections_served=3, bytes_sent=7))
    ]
    own = ServiceStatistics("echo", "tcp", ServerStatistics(connections_served=2, bytes_sent=1))
    udp = ServiceStatistics("echo", "udp", ServerStatistics(datagrams_received=5))
    assert merge([own, *back, udp]) == [
        ServiceStatistics("echo", "tcp", ServerStatistics(connections_served=5, bytes_sent=8)),
        udp,
    ]


def test_a_worker_that_is_gone_keeps_its_counts_but_no_open_connections(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    pid = int(gone.stdout)
    stats = {"connections_served": 4, "connections_active": 2, "not_a_field": 9}
    (tmp_path / f"worker-{pid}.json").write_text(
        json.dumps([{"service": "echo", "transport": "tcp", "statistics": stats}])
    )
    (tmp_path / "worker-1.json.tmp").write_text("half written")  # ignored
    (tmp_path / "worker-2.json").write_text("{broken")  # ignored, never raises
    assert published(str(tmp_path)) == [
        ServiceStatistics("echo", "tcp", ServerStatistics(connections_served=4))
    ]


def test_only_workers_publish(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(PUBLISH_DIR_ENV, raising=False)
    assert publishing_directory() is None
    monkeypatch.setenv(PUBLISH_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(PUBLISH_LEAD_ENV, str(os.getpid()))
    assert publishing_directory() is None  # the first process reads, never publishes
    monkeypatch.setenv(PUBLISH_LEAD_ENV, "1")
    assert publishing_directory() == str(tmp_path)
