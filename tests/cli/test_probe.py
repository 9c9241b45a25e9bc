"""``socketkit probe`` through ``main(argv)``: output forms, exit status, usage errors.

Against an echo server in a thread and the broken doubles of
``tests/probe_doubles.py`` (servers that need no socketkit runtime), plus one
subprocess run for the exit code and the absence of a traceback.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator

import pytest

from socketkit.cli.main import main
from socketkit.runtime import ServerThread, serve_in_thread
from tests.probe_doubles import running
from tests.support import PY, TIMEOUT, closed_port

FAST = ["--timeout", "2", "--burst", "50"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    logger = logging.getLogger("socketkit")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.fixture
def echo() -> Iterator[ServerThread]:
    with serve_in_thread("echo") as server:
        yield server


def _where(server: ServerThread, transport: str = "tcp") -> str:
    return str(server.address("echo", transport))


def test_piped_output_is_one_tab_separated_row_per_check(
    echo: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["probe", _where(echo), "--service", "echo", *FAST])
    out = capsys.readouterr().out
    rows = [line.split("\t") for line in out.splitlines()]
    assert code == 0
    assert len(rows) >= 9 and all(len(row) == 8 for row in rows)
    assert {row[0] for row in rows} == {"PASS"}
    assert {"echo-order", "echo-half-close", "reset-storm"} <= {row[3] for row in rows}
    assert all(row[1:3] == ["echo", "tcp"] for row in rows)


def test_gentle_leaves_out_the_robustness_checks(
    echo: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", _where(echo), "--service", "echo", "--gentle", *FAST]) == 0
    checks = {line.split("\t")[3] for line in capsys.readouterr().out.splitlines()}
    assert checks == {"echo-order", "echo-open", "echo-half-close"}


def test_json_has_results_summary_and_exit_status(
    echo: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["probe", _where(echo, "udp"), "--udp", "--service", "echo", "--json", *FAST])
    data = json.loads(capsys.readouterr().out)
    assert code == data["exit_status"] == 0
    checks = {r["check"]: r for r in data["results"]}
    assert checks["amplification"]["measure"] == 1
    assert checks["rate-limit"]["verdict"] == "WARN"  # loopback is exempt by default
    assert data["summary"] == [
        {
            "service": "echo",
            "transport": "udp",
            "pass": 3,
            "warn": 1,
            "fail": 0,
            "skip": 0,
            "amplification": 1.0,
            "note": "",
        }
    ]


def test_warn_exits_0_unless_strict(echo: ServerThread) -> None:
    args = ["probe", _where(echo, "udp"), "--udp", "--service", "echo", *FAST]
    assert main(args) == 0
    assert main([*args, "--strict"]) == 1


def test_a_fail_exits_1_and_names_what_came_back(capsys: pytest.CaptureFixture[str]) -> None:
    with running("time-value") as (_double, target):
        code = main(["probe", str(target.endpoint), "--service", "time", "--gentle", *FAST])
    out = capsys.readouterr().out
    assert code == 1
    fail = next(line for line in out.splitlines() if line.startswith("FAIL"))
    assert "time-value" in fail and "RFC 868" in fail and "1970" in fail


def test_host_scan_prints_rows_and_a_summary_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve_in_thread("echo", "discard") as server:
        ports = [f"--port=echo={server.address('echo').port}"]
        ports += [f"--port=discard={server.address('discard').port}"]
        code = main(
            [
                "probe",
                "--host-scan",
                "127.0.0.1",
                "--service",
                "echo",
                "--service",
                "discard",
                *ports,
                "--gentle",
                *FAST,
            ]
        )
    captured = capsys.readouterr()
    assert code == 0
    services = {tuple(line.split("\t")[1:3]) for line in captured.out.splitlines()}
    assert services == {("echo", "tcp"), ("echo", "udp"), ("discard", "tcp"), ("discard", "udp")}
    summary = [line.split("\t") for line in captured.err.splitlines() if "\t" in line]
    assert [row[:2] for row in summary] == [
        ["echo", "tcp"],
        ["echo", "udp"],
        ["discard", "tcp"],
        ["discard", "udp"],
    ]
    assert summary[1][6] == "1x" and summary[3][6] == "0x"


def test_a_scan_skips_what_does_not_listen(
    echo: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    with closed_port() as port:
        code = main(
            [
                "probe",
                "--host-scan",
                "127.0.0.1",
                "--service",
                "echo",
                "--service",
                "daytime",
                f"--port=echo={echo.address('echo').port}",
                f"--port=daytime={port}",
                "--gentle",
                *FAST,
            ]
        )
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    skipped = [row for row in rows if row[0] == "SKIP"]
    assert code == 0
    assert [row[1:4] for row in skipped] == [
        ["daytime", "tcp", "reach"],
        ["daytime", "udp", "reach"],
    ]
    assert "refused" in skipped[0][7] and "no UDP service" in skipped[1][7]
    assert {row[1] for row in rows if row[0] == "PASS"} == {"echo"}


def test_nothing_listening_is_refused_69(capsys: pytest.CaptureFixture[str]) -> None:
    with closed_port() as port:
        assert main(["probe", f"127.0.0.1:{port}", "--service", "echo", *FAST]) == 69
        assert "refused" in capsys.readouterr().err
        scan = ["probe", "--host-scan", "127.0.0.1", "--service", "echo", f"--port=echo={port}"]
        assert main([*scan, *FAST]) == 69


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["127.0.0.1:7"], "--service"),
        (["--service", "echo"], "HOST:PORT"),
        (["127.0.0.1:7", "--service", "echo", "--service", "sum"], "one --service"),
        (["--host-scan", "h", "127.0.0.1:7"], "takes no HOST:PORT"),
        (["--host-scan", "h", "--port", "echo"], "SERVICE=PORT"),
        (["127.0.0.1:7", "--service", "echo", "--port", "echo=7"], "goes with --host-scan"),
        (["127.0.0.1:7", "--service", "echo", "--connections", "1000"], "connections"),
        (["127.0.0.1:7", "--service", "nope"], "invalid choice"),
    ],
)
def test_usage_errors_exit_64(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", *args]) == 64
    assert says in capsys.readouterr().err


def test_help_shows_examples_verdicts_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    out = capsys.readouterr().out
    for text in ("--host-scan 127.0.0.1", "WARN", "exit status", "--gentle", "69"):
        assert text in out


def test_subprocess_refused_exit_code_without_traceback() -> None:
    with closed_port() as port:
        proc = subprocess.run(
            [*PY, "probe", f"127.0.0.1:{port}", "--service", "time"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
        )
    assert proc.returncode == 69
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("socketkit: connection refused")
