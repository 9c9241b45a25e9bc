"""``send`` the way netcat users type it, and its output path (issues 16 and 11).

Flags: -u -4 -6 -n -s -p -w -N -i --peer-idle-timeout --lines --no-newline,
the ``HOST PORT`` form, and the usage errors for ambiguous arguments. Then
Ctrl-C while stdout is blocked, and the bounded output writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from socketkit.cli.main import main
from socketkit.client.netcat import OutputWriter, RelayOptions, relay_socket, split_lines
from socketkit.errors import TimedOut
from socketkit.runtime import ServerThread
from socketkit.runtime.timers import ManualTimers
from tests.support import PY, TIMEOUT, closed_port, one_shot_server, stalled_listener


def run_cli(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*PY, *argv], input=stdin, capture_output=True, timeout=TIMEOUT * 3, check=False
    )


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    return text


def tell_peer(conn: socket.socket) -> None:
    """Answer with the client's address as the server sees it."""
    host, port = conn.getpeername()[:2]
    conn.sendall(f"{host} {port}\n".encode())


@contextlib.contextmanager
def udp_sizer() -> Iterator[tuple[str, int]]:
    """A UDP server that answers each datagram with ``<its length>``: counts datagrams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(70000)
            except OSError:
                return
            sock.sendto(b"<%d>" % len(data), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        sock.close()
        thread.join(TIMEOUT)


# -- usage: every ambiguous or impossible combination is one line, exit 64 ------


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["send", "-n", "localhost:7", "x"], "-n (no DNS) allows only numeric addresses"),
        (["send", "--unix", "/tmp/x.sock", "127.0.0.1:41007"], "name two peers - give one"),
        (["send", "--unix", "/tmp/x.sock", "[::1]:7"], "name two peers"),
        (["send", "--unix", "/tmp/x.sock", "-4", "hi"], "-4/-6 applies to IP addresses"),
        (["send", "127.0.0.1:7", "--lines", "x"], "--lines frames UDP datagrams; add -u"),
        (["send", "127.0.0.1:7", "-N", "--no-shutdown", "x"], "contradict"),
        (["send", "-6", "127.0.0.1:7", "x"], "is not an IPv6 (-6) address"),
        (["send", "-4", "[::1]:7", "x"], "is not an IPv4 (-4) address"),
        (["send", "-s", "::1", "127.0.0.1:7", "x"], "not the same IP version"),
        (["send", "-s", "localhost", "127.0.0.1:7", "x"], "-s needs a local IP address"),
        (["send", "127.0.0.1:7", "a", "b"], "one word too many (quote the message)"),
        (["send", "-p", "70000", "127.0.0.1:7", "x"], "bad source port 70000"),
        (["send", "myhost"], "expected HOST:PORT or HOST PORT, e.g. socketkit send myhost:10007"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], wanted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 64
    err = capsys.readouterr().err
    assert wanted in err
    assert err.count("\n") == 1, err


def test_help_states_the_datagram_framing_and_netcat_flags() -> None:
    done = run_cli("send", "--help")
    text = " ".join(done.stdout.decode().split())
    assert "UDP: one datagram per read of input" in text
    assert "--lines UDP: one datagram per input line" in text
    assert "-N, --shutdown" in text and "accepted for nc -N users" in text
    assert "-n, --numeric" in text and "--no-newline" in text


# -- the netcat flags against real peers ------------------------------------------


def test_host_port_form_and_numeric_only(echo_server: ServerThread) -> None:
    ep = echo_server.address("echo", "tcp")
    done = run_cli("send", "-n", str(ep.host), str(ep.port), "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello\n"


def test_no_newline_keeps_its_long_form(echo_server: ServerThread) -> None:
    done = run_cli("send", str(echo_server.address("echo", "tcp")), "hi", "--no-newline")
    assert done.stdout == b"hi"


def test_minus_4_keeps_the_ipv4_address_of_a_name() -> None:
    with one_shot_server(tell_peer) as ep:
        port = ep.rsplit(":", 1)[1]
        done = run_cli("send", "-4", f"localhost:{port}", "--no-shutdown", "-q", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"127.0.0.1 ")


def test_source_address_and_port() -> None:
    with closed_port() as free:
        pass  # a port nobody holds now: good enough for one bind in this test
    with one_shot_server(tell_peer) as ep:
        done = run_cli("send", "-s", "127.0.0.2", "-p", str(free), ep, "--no-shutdown", "-q", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"127.0.0.2 {free}\n".encode()


def test_minus_w_is_the_connect_timeout() -> None:
    with stalled_listener() as (host, port):
        started = time.monotonic()
        done = run_cli("send", "-w", "0.5", f"{host}:{port}", "x")
        took = time.monotonic() - started
    assert done.returncode == 75
    assert "timed out after 0.5 s" in one_line(done.stderr)
    assert took < TIMEOUT


def test_minus_N_is_accepted_and_sends_fin(echo_server: ServerThread) -> None:
    done = run_cli("send", "-N", str(echo_server.address("echo", "tcp")), stdin=b"fin\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"fin\n"  # echo closes only after our FIN: we sent it


def test_udp_lines_one_datagram_per_line() -> None:
    with udp_sizer() as (host, port):
        per_line = run_cli(
            "send", "-u", f"{host}:{port}", "--lines", "-q", "1", stdin=b"1 2\n3 4\n"
        )
        per_read = run_cli("send", "--udp", f"{host}:{port}", "-q", "1", stdin=b"1 2\n3 4\n")
    assert per_line.returncode == 0, per_line.stderr
    assert per_line.stdout == b"<4><4>"
    assert per_read.stdout == b"<8>"


def test_idle_timeout_when_nothing_moves_either_way() -> None:
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        release.wait(TIMEOUT)

    with one_shot_server(silent) as ep:
        proc = subprocess.Popen(
            [*PY, "send", ep, "-i", "0.3"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            _, err = proc.communicate(timeout=TIMEOUT)  # stdin stays open until then? no:
        finally:
            release.set()
    # communicate() closed stdin at once, so input ended (FIN); the peer stayed
    # silent and kept the connection: no traffic either way.
    assert proc.returncode == 75
    assert "no traffic to or from" in one_line(err)


# -- idle timeouts on virtual time (no waiting) ---------------------------------------


async def _settle() -> None:
    """A few loop turns: a future set by a timer callback wakes its waiters in two or three."""
    for _ in range(20):
        await asyncio.sleep(0)


async def _paced_upload(
    options: RelayOptions, steps: int, step: float
) -> tuple[BaseException | None, float]:
    """Upload ``steps`` chunks, ``step`` virtual seconds apart, to a peer that never answers."""
    timers = ManualTimers()
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    feed: asyncio.Queue[bytes] = asyncio.Queue()

    async def source() -> AsyncIterator[bytes]:
        while chunk := await feed.get():
            yield chunk

    task = loop.create_task(
        relay_socket(ours, "peer", source(), lambda _d: None, options=options, timers=timers)
    )
    try:
        for _ in range(steps):
            feed.put_nowait(b"x" * 10)
            assert await loop.sock_recv(theirs, 100) == b"x" * 10  # it went out: activity
            timers.advance(step)
            await _settle()  # let a fired deadline reach the relay
            if task.done():
                break
        error = None
        if task.done():
            error = task.exception()
        return error, timers.now()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        theirs.close()


def test_an_upload_that_keeps_sending_is_not_idle(arun: Any) -> None:
    error, now = arun(lambda: _paced_upload(RelayOptions(idle_timeout=1.0), steps=10, step=0.6))
    assert error is None
    assert now == pytest.approx(6.0)  # six virtual seconds of upload, timeout 1 s


def test_peer_idle_timeout_keeps_the_old_meaning(arun: Any) -> None:
    error, now = arun(
        lambda: _paced_upload(RelayOptions(peer_idle_timeout=1.0), steps=10, step=0.6)
    )
    assert isinstance(error, TimedOut)
    assert "nothing from peer for 1 s (--peer-idle-timeout)" in str(error)
    assert now == pytest.approx(1.2)  # the step that crossed 1.0 s


def test_idle_timeout_fires_after_the_last_activity(arun: Any) -> None:
    error, now = arun(lambda: _paced_upload(RelayOptions(idle_timeout=1.0), steps=2, step=1.5))
    # sent at 0 (deadline 1.0): advancing 1.5 crosses it
    assert isinstance(error, TimedOut)
    assert now == pytest.approx(1.5)


def test_split_lines(arun: Any) -> None:
    async def collect(chunks: list[bytes], limit: int) -> list[bytes]:
        async def source() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return [line async for line in split_lines(source(), limit)]

    assert arun(lambda: collect([b"1 2\n3", b" 4\n", b"tail"], 100)) == [
        b"1 2\n",
        b"3 4\n",
        b"tail",
    ]
    assert arun(lambda: collect([b"abcdefg\n"], 4)) == [b"abcd", b"efg\n"]


# -- output: never blocks the loop, bounded, complete --------------------------------


def test_output_writer_is_bounded_and_complete(arun: Any) -> None:
    read_end, write_end = os.pipe()
    chunks = [bytes([i]) * 65536 for i in range(40)]  # 2.5 MiB, far more than a pipe holds
    got = bytearray()

    def slow_reader() -> None:
        while len(got) < 40 * 65536:
            data = os.read(read_end, 4096)
            if not data:
                return
            got.extend(data)

    async def write_all() -> int:
        writer = OutputWriter(write_end, max_pending=4)
        most = 0
        for chunk in chunks:
            await writer.write(chunk)
            most = max(most, writer._pending)
        await writer.drain()
        writer.close()
        return most

    reader = threading.Thread(target=slow_reader)
    reader.start()
    try:
        most = arun(write_all)
    finally:
        reader.join(TIMEOUT)
        os.close(read_end)
        os.close(write_end)
    assert most <= 4  # never more than four chunks in memory
    assert bytes(got) == b"".join(chunks)


def _pipe_fill(fd: int) -> int:
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def _endless(conn: socket.socket) -> None:
    line = b"chargen " * 9 + b"\r\n"
    with contextlib.suppress(OSError):
        for _ in range(1_000_000):
            conn.sendall(line * 100)


def test_one_ctrl_c_ends_send_while_stdout_is_blocked() -> None:
    with one_shot_server(_endless) as ep:
        read_end, write_end = os.pipe()
        proc = subprocess.Popen(
            [*PY, "send", ep], stdin=subprocess.PIPE, stdout=write_end, stderr=subprocess.PIPE
        )
        os.close(write_end)
        try:
            deadline = time.monotonic() + TIMEOUT
            while _pipe_fill(read_end) < 65536:  # the pipe is full: our reader is asleep
                assert time.monotonic() < deadline, "the pipe never filled"
                assert proc.poll() is None
                time.sleep(0.01)
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(TIMEOUT)
            took = time.monotonic() - started
            assert proc.stderr is not None
            err = proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(TIMEOUT)
            os.close(read_end)
            assert proc.stdin is not None and proc.stderr is not None
            proc.stdin.close()
            proc.stderr.close()
    assert code == 130, err
    assert "Traceback" not in err
    # ncat, socat and nc exit within milliseconds; 0.5 s is the bound,
    # loosened by the suite's factor on a loaded machine.
    assert took < 0.5 * float(os.environ.get("SOCKETKIT_TEST_TIMEOUT_FACTOR", "1")), took
