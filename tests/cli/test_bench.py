"""``socketkit bench`` from the command line: output, exit codes, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from socketkit.cli.bench import parse_size
from socketkit.cli.main import main
from socketkit.runtime import ServerThread, serve_in_thread
from tests.integration.test_bench import corrupting_server
from tests.support import TIMEOUT, closed_port

QUICK = ["--duration", "0.3", "--warmup", "0", "--workers", "1"]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with serve_in_thread("echo") as running:
        yield running


def test_json_result_has_rates_percentiles_and_zero_errors(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    address = str(server.address("echo", "tcp"))
    code = main(["bench", address, "--conns", "4", "--size", "1K", "--json", *QUICK])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["mode"] == "rr"
    assert data["size"] == 1024
    assert data["connections"] == 4
    assert data["requests"] > 0
    assert data["requests_per_second"] == pytest.approx(data["requests"] / data["seconds"])
    assert set(data["latency_us"]) >= {"p50", "p90", "p99", "p999", "max"}
    assert (data["errors"], data["mismatches"], data["ok"]) == (0, 0, True)
    assert "histogram" not in data


def test_text_has_header_human_labels_and_json_spelling(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    address = str(server.address("echo", "udp"))
    assert main(["bench", address, "--mode", "udp", "--conns", "3", "--size", "100", *QUICK]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(
        f"socketkit bench: mode udp, 3 connections x 100 B, 0.3 s, target {address} (1 worker on "
    )
    labelled = {line.split()[0]: line for line in lines[1:]}
    assert set(labelled) == {"requests", "rate", "latency", "failures", "udp"}
    assert int(labelled["requests"].split()[1].replace(",", "")) > 0
    assert "requests/s" in labelled["rate"] and "MiB/s" in labelled["rate"]
    assert [w for w in labelled["latency"].split() if w.startswith("p") or w == "max"] == [
        "p50",
        "p90",
        "p99",
        "p999",
        "max",
    ]
    assert labelled["failures"].split(None, 1)[1] == "0 errors, 0 mismatches, 0 timeouts"
    assert labelled["udp"].split(None, 1)[1] == "0 lost (0.00%), 0 late"
    assert "_us" not in out and "p99.9" not in out and "MB/s" not in out


def test_interval_reports_cover_the_run_and_add_up(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    address = str(server.address("echo", "tcp"))
    argv = ["bench", address, "-i", "0.2", "--duration", "0.6", "--warmup", "0.2", "--workers"]
    assert main([*argv, "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["interval", "requests", "requests/s", "MiB/s"]
    rows = [
        line
        for line in lines[2:]
        if not line.startswith(("requests ", "rate", "latency", "failures"))
    ]
    assert len(rows) >= 3
    assert rows[0].endswith("(warm-up)")
    assert not rows[-1].endswith("(warm-up)")
    for row in rows:
        span, _, rest = row.partition(" s ")
        start, end = (float(x) for x in span.split("-"))
        count, per_second, mib = (float(x.replace(",", "")) for x in rest.split()[:3])
        assert end >= start
        if end - start >= 0.1:  # the printed times are rounded to 10 ms
            assert per_second == pytest.approx(count / (end - start), rel=0.1)
        assert mib == pytest.approx(per_second * 64 / 2**20, rel=0.02, abs=0.01)
    # Two workers: the intervals come in the JSON too, with the same spelling.
    assert main([*argv, "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["intervals"]) >= 3
    assert set(data["intervals"][0]) == {
        "start",
        "end",
        "requests",
        "requests_per_second",
        "mib_per_second",
        "warmup",
    }
    measured = sum(i["requests"] for i in data["intervals"] if not i["warmup"])
    assert measured >= data["requests"] > 0


def test_corrupting_server_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with corrupting_server() as target:
        code = main(["bench", str(target), "--conns", "2", *QUICK])
    err = capsys.readouterr().err
    assert code == 1
    assert "echoes differed from what was sent" in err
    assert len(err.strip().splitlines()) == 1


def test_refused_connection_exits_69(capsys: pytest.CaptureFixture[str]) -> None:
    with closed_port() as port:
        code = main(["bench", f"127.0.0.1:{port}", *QUICK])
    assert code == 69
    assert "refused" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench"], "give HOST:PORT"),
        (["bench", "127.0.0.1:7", "--unix", "/tmp/x.sock"], "not both"),
        (["bench", "--unix", "/tmp/x.sock", "--mode", "udp"], "--unix is for stream"),
        (["bench", "127.0.0.1:7", "--size", "lots"], "expected a size"),
        (["bench", "127.0.0.1:7", "--duration", "1", "--requests", "5"], "not allowed with"),
        (["bench", "127.0.0.1:7", "--mode", "udp", "--size", "64K"], "UDP datagram"),
    ],
)
def test_usage_errors_exit_64(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 64
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_plot_without_matplotlib_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    assert main(["bench", "127.0.0.1:7", "--plot", "x.png", *QUICK]) == 64
    err = capsys.readouterr().err
    assert "pip install 'socketkit[plot]'" in err
    assert len(err.strip().splitlines()) == 1


def test_plot_writes_a_png(server: ServerThread, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the optional [plot] extra is not installed")
    target = tmp_path / "latency.png"
    address = str(server.address("echo", "tcp"))
    assert main(["bench", address, "--plot", str(target), "--json", *QUICK]) == 0
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("text", "value"), [("64", 64), ("1K", 1024), ("16KiB", 16384), ("1m", 1 << 20)]
)
def test_sizes_take_binary_suffixes(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_help_has_examples_and_subprocess_errors_have_no_traceback() -> None:
    help_run = subprocess.run(
        [sys.executable, "-m", "socketkit", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert help_run.returncode == 0
    assert "examples:" in help_run.stdout
    assert "--rate" in help_run.stdout
    with closed_port() as port:
        refused = subprocess.run(
            [sys.executable, "-m", "socketkit", "bench", f"127.0.0.1:{port}", "--workers", "2"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
        )
    assert refused.returncode == 69
    assert "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1
