"""``socketkit serve --workers N``: processes sharing each port, supervised by the first."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest

from socketkit.cli.main import main
from socketkit.runtime.workers import MAX_RESTARTS
from tests.support import TIMEOUT, LineReader, serve_process

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT") or not os.path.isdir("/proc"),
    reason="SO_REUSEPORT and /proc are Linux's",
)


def worker_pids(reader: LineReader) -> dict[int, int]:
    """The pids serve printed before its "try:" line."""
    line = next(line for line in reader.lines if line.startswith("socketkit: workers:"))
    return {int(i): int(pid) for i, pid in re.findall(r"(\d+) pid (\d+)", line)}


def echo_port(reader: LineReader) -> int:
    row = next(line for line in reader.lines if line.startswith("echo\ttcp\t"))
    return int(row.split("\t")[2].rpartition(":")[2])


def echo_many(port: int, count: int) -> None:
    for i in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"m%d" % i)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(64):
                reply += chunk
            assert reply == b"m%d" % i


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = TIMEOUT) -> bool:
    """Poll (bounded) until a process we do not parent has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


def test_two_workers_share_tcp_and_udp_and_sum_their_statistics() -> None:
    with serve_process(
        "echo", "--port", "0", "--workers", "2", "-v", last="try:", merge_stderr=True
    ) as (proc, reader):
        pids = worker_pids(reader)
        assert sorted(pids) == [0, 1]
        assert pids[0] == proc.pid
        port = echo_port(reader)
        echo_many(port, 40)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            udp.sendto(b"dgram", ("127.0.0.1", port))
            assert udp.recvfrom(64)[0] == b"dgram"
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    output = "\n".join(reader.lines) + "\n" + rest.decode()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    # Both processes accepted some of the 40 connections (all to one: 2**-39).
    for index in (0, 1):
        # -v lines start with the time: "14:03:07.123 [worker 1] echo/tcp ..."
        assert re.search(
            rf"^\d\d:\d\d:\d\d\.\d{{3}} \[worker {index}\] echo/tcp .*: connection from",
            output,
            re.M,
        )
    summary = output.strip().splitlines()[-1]
    assert summary.startswith("socketkit: stopped (2 workers): 40 connections served"), summary
    assert "1 datagrams received, 1 datagrams sent" in summary
    assert wait_gone(pids[1])


def test_a_worker_that_dies_is_replaced() -> None:
    with serve_process(
        "echo", "--port", "0", "--no-udp", "--workers", "2", last="try:", merge_stderr=True
    ) as (proc, reader):
        old = worker_pids(reader)[1]
        os.kill(old, signal.SIGKILL)
        line = reader.until(lambda line: "worker 1 is now pid" in line)
        new = int(line.rpartition(" ")[2])
        assert new != old
        said = f"socketkit: [worker 0] worker 1 (pid {old}) was killed by SIGKILL; starting another"
        assert said in reader.lines  # a warning says who speaks; narration stays bare
        echo_many(echo_port(reader), 20)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, rest
    assert (
        rest.decode()
        .strip()
        .splitlines()[-1]
        .startswith("socketkit: stopped (2 workers): 20 connections served")
    )
    assert wait_gone(new)


def test_a_worker_stopped_with_sigterm_is_not_replaced() -> None:
    # A SIGTERM to the whole process group (a service manager's stop) reaches
    # the workers first sometimes: a worker that stopped on purpose is not a
    # death to make up for, or the restart limit would end in exit 70.
    with serve_process(
        "echo", "--port", "0", "--no-udp", "--workers", "3", last="try:", merge_stderr=True
    ) as (proc, reader):
        pids = worker_pids(reader)
        os.kill(pids[2], signal.SIGTERM)
        reader.until(lambda line: "worker 2" in line and "stopped on request" in line)
        assert wait_gone(pids[2])
        echo_many(echo_port(reader), 10)
        os.kill(pids[1], signal.SIGTERM)
        reader.until(lambda line: "worker 1" in line and "stopped on request" in line)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    output = "\n".join(reader.lines) + "\n" + rest.decode()
    assert proc.returncode == 0, output
    assert "starting another" not in output
    assert "1 of 3 processes remain" in output
    assert (
        rest.decode()
        .strip()
        .splitlines()[-1]
        .startswith("socketkit: stopped (3 workers): 10 connections served")
    )


def test_a_sigterm_to_the_process_group_stops_everything_with_exit_0() -> None:
    with serve_process(
        "echo",
        "--port",
        "0",
        "--workers",
        "3",
        last="try:",
        merge_stderr=True,
        new_session=True,
    ) as (proc, reader):
        pids = worker_pids(reader)
        echo_many(echo_port(reader), 6)
        os.killpg(proc.pid, signal.SIGTERM)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    output = "\n".join(reader.lines) + "\n" + rest.decode()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert "starting another" not in output
    assert "6 connections served" in output.strip().splitlines()[-1]
    assert all(wait_gone(pid) for pid in pids.values())


def test_workers_that_keep_dying_stop_the_server_with_exit_70() -> None:
    with serve_process(
        "echo", "--port", "0", "--no-udp", "--workers", "2", last="try:", merge_stderr=True
    ) as (proc, reader):
        pid = worker_pids(reader)[1]
        for _ in range(MAX_RESTARTS):
            os.kill(pid, signal.SIGKILL)
            reader.until(lambda line, old=pid: f"(pid {old}) was killed by SIGKILL" in line)
            line = reader.until(lambda line: "worker 1 is now pid" in line)
            pid = int(line.rpartition(" ")[2])
        os.kill(pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 70
    last = rest.decode().strip().splitlines()[-1]
    assert last.startswith(f"socketkit: serve workers keep dying ({MAX_RESTARTS} replaced"), last
    assert "the last was killed by SIGKILL" in last, last
    assert "Traceback" not in rest.decode()


def test_workers_stop_when_the_lead_is_killed() -> None:
    # No orphan may keep the port: a worker stops when its pipe to the lead closes.
    with serve_process("echo", "--port", "0", "--workers", "3", last="try:", merge_stderr=True) as (
        proc,
        reader,
    ):
        pids = worker_pids(reader)
        port = echo_port(reader)
        proc.kill()
        proc.wait(TIMEOUT)
    assert wait_gone(pids[1]) and wait_gone(pids[2])
    with socket.socket() as probe:
        probe.settimeout(TIMEOUT)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))


def test_workers_refuse_a_port_in_use_even_by_a_reuseport_socket(
    capsys: pytest.CaptureFixture[str],
) -> None:
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        code = main(["serve", "echo", "--port", str(port), "--no-udp", "--workers", "2"])
    finally:
        taken.close()
    assert code == 73
    err = capsys.readouterr().err
    assert err.startswith(f"socketkit: address already in use: 127.0.0.1:{port}")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--unix", "/tmp/sk-never.sock", "--no-tcp", "--no-udp", "--workers", "2"], "Unix"),
        (["--workers", "65"], "choose 1-64"),
    ],
)
def test_workers_usage_errors(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "echo", "--port", "0", *argv]) == 64
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1
    assert not os.path.exists("/tmp/sk-never.sock")


def test_rloop_with_workers_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # With rloop 0.5 a SIGTERM killed the lead at once and left its workers running.
    from socketkit.cli.main import main

    assert main(["serve", "echo", "--port", "0", "--workers", "2", "--loop", "rloop"]) == 64
    assert capsys.readouterr().err.startswith("socketkit: --loop rloop cannot run --workers")
