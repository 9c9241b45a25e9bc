"""``serve --metrics``, ``--access-log``, ``--log-format`` and ``--timestamps`` as an operator runs them."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from socketkit.protocols.proxy import encode_v1
from tests.support import PY, TIMEOUT, LineReader, recv_exactly, serve_process


def _port(reader: LineReader, transport: str = "tcp") -> int:
    row = next(line for line in reader.lines if line.startswith(f"echo\t{transport}\t"))
    return int(row.split("\t")[2].rpartition(":")[2])


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_count_what_was_sent_while_traffic_flows(tmp_path: Path) -> None:
    argv = ("echo", "--port", "0", "--metrics", "0", "--access-log", str(tmp_path / "access"))
    with serve_process(*argv, last="try:", merge_stderr=True) as (_, reader):
        url = re.search(r"metrics at (http://\S+)", "\n".join(reader.lines))
        assert url, reader.lines
        assert url.group(1).startswith("http://127.0.0.1:")  # loopback by default
        port = _port(reader)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as open_one:
            open_one.sendall(b"x" * 1000)
            assert recv_exactly(open_one, 1000) == b"x" * 1000
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
                    c.sendall(b"hello")
                    assert recv_exactly(c, 5) == b"hello"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(TIMEOUT)
                u.sendto(b"dgram", ("127.0.0.1", _port(reader, "udp")))
                assert u.recv(100) == b"dgram"
            got = _scrape(url.group(1))  # while one connection is still open
        tcp = '{service="echo",transport="tcp"}'
        udp = '{service="echo",transport="udp"}'
        assert got[f"socketkit_connections_served_total{tcp}"] == 4
        assert got[f"socketkit_connections_active{tcp}"] >= 1
        assert got[f"socketkit_bytes_received_total{tcp}"] == 1015
        assert got[f"socketkit_bytes_sent_total{tcp}"] == 1015
        assert got[f"socketkit_datagrams_received_total{udp}"] == 1
        assert got[f"socketkit_datagrams_sent_total{udp}"] == 1
        assert (
            got['socketkit_proxy_rejected_total{reason="invalid",service="echo",transport="tcp"}']
            == 0
        )
        records = (tmp_path / "access").read_text()  # each record is flushed as written
        assert "echo/udp 127.0.0.1:" in records
        assert "in=5 out=5 duration=0.000s ended=answered" in records


def test_access_log_json_without_verbose(tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    argv = ("echo", "--port", "0", "--no-udp", "--access-log", str(log), "--log-format", "json")
    with serve_process(*argv, last="try:", merge_stderr=True) as (proc, reader):
        with socket.create_connection(("127.0.0.1", _port(reader)), timeout=TIMEOUT) as c:
            c.sendall(b"abc")
            assert recv_exactly(c, 3) == b"abc"
            own = c.getsockname()[1]
        proc.send_signal(2)  # Ctrl-C: a graceful stop writes every record first
        assert proc.wait(TIMEOUT) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 1
    record = records[0]
    assert record["peer"] == f"127.0.0.1:{own}"
    assert (record["service"], record["transport"], record["bytes_in"], record["bytes_out"]) == (
        "echo",
        "tcp",
        3,
        3,
    )
    assert record["ended"] == "closed" and record["time"].endswith("Z")


def test_verbose_narration_with_timestamps() -> None:
    argv = ("echo", "--port", "0", "--no-udp", "-v", "--timestamps")
    with serve_process(*argv, last="try:", merge_stderr=True) as (_, reader):
        with socket.create_connection(("127.0.0.1", _port(reader)), timeout=TIMEOUT) as c:
            c.sendall(b"hi")
            assert recv_exactly(c, 2) == b"hi"
        line = reader.until(lambda text: "connection from" in text)
        assert re.match(r"\d\d:\d\d:\d\d\.\d{3} echo/tcp ", line), line


def test_bad_operator_flags_are_one_line_each(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    cases = [
        (["--proxy-from", "not-a-net"], "bad --proxy-from 'not-a-net'", 64),
        (["--access-log", str(tmp_path / "no" / "such" / "dir")], "--access-log ", 64),
        (["--inetd"], "--inetd: standard input is not", 64),
        (["--metrics", str(taken.getsockname()[1])], "(--metrics)", 73),
    ]
    with taken:
        _one_line_each(cases)


def _one_line_each(cases: list[tuple[list[str], str, int]]) -> None:
    for extra, said, code in cases:
        done = subprocess.run(
            [*PY, "serve", "echo", "--port", "0", *extra],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == code, (extra, done.stderr)
        assert done.stderr.startswith("socketkit: ") and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_workers_share_proxy_protocol_and_access_log(tmp_path: Path) -> None:
    """Both settings reach the worker processes: every connection, whichever served it,
    is read through its PROXY header and logged under the real client."""
    log = tmp_path / "access"
    argv = ("echo", "--port", "0", "--no-udp", "--workers", "2", "--proxy-protocol")
    with serve_process(*argv, "--access-log", str(log), last="try:", merge_stderr=True) as (
        proc,
        reader,
    ):
        port = _port(reader)
        for i in range(8):
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
                c.sendall(encode_v1((f"198.51.100.{i + 1}", 1000 + i), ("127.0.0.1", port)))
                c.sendall(b"hi")
                assert recv_exactly(c, 2) == b"hi"
        proc.send_signal(2)
        assert proc.wait(TIMEOUT) == 0
    lines = log.read_text().splitlines()
    assert sorted(line.split()[2] for line in lines) == sorted(
        f"198.51.100.{i + 1}:{1000 + i}" for i in range(8)
    )


def test_metrics_sum_every_worker() -> None:
    """With --workers, /metrics adds the workers' published figures to the first process's."""
    argv = ("echo", "--port", "0", "--no-udp", "--workers", "2", "--metrics", "0")
    with serve_process(*argv, last="try:", merge_stderr=True) as (proc, reader):
        url = re.search(r"metrics at (http://\S+)", "\n".join(reader.lines))
        assert url, reader.lines
        port = _port(reader)
        clients = [
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(20)
        ]
        for client in clients:  # 20 at once: the kernel spreads them over both processes
            client.sendall(b"hello")
        for client in clients:
            assert recv_exactly(client, 5) == b"hello"
            client.close()
        tcp = '{service="echo",transport="tcp"}'
        deadline = time.monotonic() + TIMEOUT
        while True:  # a worker publishes every 0.25 s: poll, bounded
            got = _scrape(url.group(1))
            if got[f"socketkit_connections_served_total{tcp}"] == 20:
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        assert got[f"socketkit_bytes_received_total{tcp}"] == 100
        assert got[f"socketkit_bytes_sent_total{tcp}"] == 100
        proc.send_signal(2)
        assert proc.wait(TIMEOUT) == 0
        summary = reader.until(lambda line: line.startswith("socketkit: stopped"))
        assert "20 connections served, 100 bytes received" in summary
