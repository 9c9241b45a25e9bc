"""The Locust users against real servers: a master and two workers, headless, on loopback.

Every Locust process is a subprocess (importing Locust patches the standard
library for gevent, which must not happen inside the test runner), started
with a timeout and ended by its own handle. Results come from Locust's own
CSV statistics.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_bench import corrupting_server
from tests.support import TIMEOUT, serve_process

# find_spec, not importorskip: importing Locust here would patch this process for gevent.
if importlib.util.find_spec("locust") is None:
    pytest.skip("the optional [locust] extra is not installed", allow_module_level=True)

LOCUSTFILE = Path(__file__).resolve().parents[2] / "contrib" / "locust" / "locustfile.py"
LOCUST = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
RUN_SECONDS = 3
WAIT = TIMEOUT * 3 + RUN_SECONDS


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _started(argv: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
        if proc.stdout:
            proc.stdout.close()


def _stats(prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {row["Type"] or "Aggregated": row for row in csv.DictReader(f)}


@contextlib.contextmanager
def _echo_and_sum() -> Iterator[tuple[str, str]]:
    with serve_process("echo", "sum", "--port", "echo=0", "--port", "sum=0", last="sum\tudp") as (
        _,
        reader,
    ):
        address = {
            tuple(line.split("\t")[:2]): line.split("\t")[2]
            for line in reader.lines
            if line.count("\t") >= 2
        }
        yield address[("echo", "tcp")], address[("sum", "udp")]


def test_master_and_two_workers_make_verified_requests_without_failures(tmp_path: Path) -> None:
    port = _free_port()
    prefix = tmp_path / "run"
    with _echo_and_sum() as (echo, sum_udp):
        master_argv = [
            *LOCUST,
            "--master",
            "--headless",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "2",
            "--expect-workers-max-wait",
            str(int(WAIT)),
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            f"{RUN_SECONDS}s",
            "--csv",
            str(prefix),
            "--echo-host",
            f"tcp://{echo}",
            "--sum-host",
            f"udp://{sum_udp}",
            "--echo-size",
            "300",
        ]
        worker_argv = [
            *LOCUST,
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(port),
        ]
        with (
            _started(master_argv, tmp_path) as master,
            _started(worker_argv, tmp_path) as one,
            _started(worker_argv, tmp_path) as two,
        ):
            master_out, _ = master.communicate(timeout=WAIT)
            worker_outs = [w.communicate(timeout=TIMEOUT)[0] for w in (one, two)]
    assert master.returncode == 0, master_out
    assert [one.returncode, two.returncode] == [0, 0], worker_outs
    assert "2 workers connected" in master_out or "workers connected: 2" in master_out.lower()
    stats = _stats(prefix)
    assert int(stats["ECHO"]["Request Count"]) > 0
    assert int(stats["SUM"]["Request Count"]) > 0
    assert stats["ECHO"]["Name"] == "echo 300 B"
    assert float(stats["ECHO"]["Average Content Size"]) == 300.0
    assert [int(stats[k]["Failure Count"]) for k in ("ECHO", "SUM", "Aggregated")] == [0, 0, 0]
    assert "Traceback" not in master_out + "".join(worker_outs)


def test_a_corrupted_echo_is_a_locust_failure_with_the_reason(tmp_path: Path) -> None:
    prefix = tmp_path / "bad"
    with corrupting_server() as target:
        run = subprocess.run(
            [
                *LOCUST,
                "EchoUser",
                "--headless",
                "-u",
                "2",
                "-r",
                "2",
                "-t",
                "2s",  # Locust writes its CSV once a second: give it a second write
                "--csv",
                str(prefix),
                "--host",
                f"tcp://{target}",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
    stats = _stats(prefix)
    assert int(stats["ECHO"]["Request Count"]) > 0
    assert stats["ECHO"]["Failure Count"] == stats["ECHO"]["Request Count"]
    failures = Path(f"{prefix}_failures.csv").read_text()
    assert "came back different" in failures
    assert run.returncode == 1  # Locust's own verdict: there were failures
