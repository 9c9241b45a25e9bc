"""``socketkit listen`` against ``socketkit send`` and against ncat, both directions.

Every process binds port 0 (or a port just freed, for ncat -l, which cannot
report the port it got); the bound address is read from the stderr line
``listen`` prints before it accepts, so nothing waits on a timer.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support import PY, TIMEOUT, closed_port


def read_line(fd: int, wanted: str, timeout: float = TIMEOUT) -> str:
    """Read ``fd`` until a line containing ``wanted``; return that line."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            for line in buffer.decode(errors="replace").splitlines():
                if wanted in line:
                    return line
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line with {wanted!r}: {buffer!r}"
            if sel.select(remaining):
                chunk = os.read(fd, 4096)
                assert chunk, f"the process ended: {buffer!r}"
                buffer += chunk


@contextlib.contextmanager
def listening(*argv: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start ``socketkit listen ARGV``; yield it and the address it printed."""
    proc = subprocess.Popen(
        [*PY, "listen", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = read_line(proc.stderr.fileno(), "listening on")
        yield proc, line.split("listening on ", 1)[1].split(" ", 1)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


def give(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """The listener's whole input, before its peer comes (a pipe holds it meanwhile)."""
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
    proc.stdin = None  # communicate() must not flush it again


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=TIMEOUT * 2)
    return proc.returncode, out, err


def ncat() -> str:
    path = shutil.which("ncat")
    if path is None:
        pytest.skip("ncat is not installed (Debian: apt-get install ncat)")
    return path


def test_listen_prints_a_loopback_address_for_port_0() -> None:
    with listening("0") as (_proc, address):
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) > 0


def test_listen_and_send_both_ways() -> None:
    with listening("0") as (server, address):
        give(server, b"from listen\n")
        client = subprocess.run(
            [*PY, "send", address],
            input=b"from send\n",
            capture_output=True,
            timeout=TIMEOUT * 2,
            check=False,
        )
        code, out, err = finish(server)
    assert client.returncode == 0, client.stderr
    assert code == 0, err
    assert out == b"from send\n"
    assert client.stdout == b"from listen\n"


def test_listen_big_transfer_byte_exact() -> None:
    payload = os.urandom(4 << 20)
    with listening("0") as (server, address):
        # the listener's stdin stays open: an empty input would send FIN at once,
        # and a peer's FIN makes send stop (the half-close model).
        client = subprocess.Popen(
            [*PY, "send", address], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        writer = threading.Thread(target=client.communicate, args=(payload, TIMEOUT * 3))
        writer.start()
        assert server.stdout is not None
        out = server.stdout.read()  # until the listener exits: after send's FIN
        writer.join(TIMEOUT * 3)
        code = server.wait(TIMEOUT)
    assert client.wait(TIMEOUT) == 0
    assert code == 0
    assert out == payload


def test_ncat_connects_to_listen_both_ways() -> None:
    with listening("0") as (server, address):
        host, _, port = address.rpartition(":")
        give(server, b"from listen\n")
        client = subprocess.run(
            [ncat(), host, port],
            input=b"from ncat\n",
            capture_output=True,
            timeout=TIMEOUT * 2,
            check=False,
        )
        code, out, err = finish(server)
    assert code == 0, err
    assert out == b"from ncat\n"
    assert client.stdout == b"from listen\n"


def test_send_connects_to_ncat_listen_both_ways() -> None:
    with closed_port() as port:
        pass  # free now; ncat -l cannot report a port it chose, so give it this one
    server = subprocess.Popen(
        [ncat(), "-v", "-l", "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        read_line(server.stderr.fileno(), "Listening on")
        give(server, b"from ncat\n")
        client = subprocess.run(
            [*PY, "send", f"127.0.0.1:{port}"],
            input=b"from send\n",
            capture_output=True,
            timeout=TIMEOUT * 2,
            check=False,
        )
        out, _err = server.communicate(timeout=TIMEOUT * 2)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(TIMEOUT)
    assert client.returncode == 0, client.stderr
    assert out == b"from send\n"
    assert client.stdout == b"from ncat\n"


def test_keep_open_serves_one_connection_after_another() -> None:
    with listening("0", "-k") as (server, address):
        for word in (b"one\n", b"two\n"):
            client = subprocess.run(
                [*PY, "send", address],
                input=word,
                capture_output=True,
                timeout=TIMEOUT * 2,
                check=False,
            )
            assert client.returncode == 0, client.stderr
        assert server.stdout is not None
        assert read_line(server.stdout.fileno(), "two") == "two"
        assert server.poll() is None  # still listening
        server.send_signal(signal.SIGINT)
        assert server.wait(TIMEOUT) == 130


def test_without_keep_open_a_second_client_is_refused() -> None:
    with listening("0") as (server, address):
        host, _, port = address.rpartition(":")
        first = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        try:
            assert server.stderr is not None
            # the listener closes once it accepted; a second connect is refused
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    socket.create_connection((host, int(port)), timeout=TIMEOUT).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < deadline, "the listening socket stayed open"
                time.sleep(0.01)
        finally:
            first.close()
        give(server, b"")
        code, _out, err = finish(server)
        assert code == 0, err


def test_udp_replies_go_to_the_last_sender() -> None:
    with listening("-u", "0", "--lines", "-q", "1") as (server, address):
        host, _, port = address.rpartition(":")
        first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        last = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        first.settimeout(TIMEOUT)
        last.settimeout(TIMEOUT)
        try:
            assert server.stdout is not None
            first.sendto(b"hello from first\n", (host, int(port)))
            read_line(server.stdout.fileno(), "hello from first")
            last.sendto(b"hello from last\n", (host, int(port)))
            read_line(server.stdout.fileno(), "hello from last")
            give(server, b"a\nb\n")
            code, _out, err = finish(server)
            assert last.recvfrom(100)[0] == b"a\n"
            assert last.recvfrom(100)[0] == b"b\n"  # --lines: two datagrams
        finally:
            first.close()
            last.close()
    assert code == 0, err


def test_unix_listen_and_send(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "nc.sock")
    with listening("--unix", path) as (server, address):
        assert address == f"unix:{path}"
        give(server, b"back\n")
        client = subprocess.run(
            [*PY, "send", f"unix:{path}"],
            input=b"over unix\n",
            capture_output=True,
            timeout=TIMEOUT * 2,
            check=False,
        )
        code, out, err = finish(server)
    assert client.returncode == 0, client.stderr
    assert code == 0, err
    assert out == b"over unix\n"
    assert client.stdout == b"back\n"
    assert not os.path.exists(path)  # our socket file is removed at the end


def test_keep_open_stops_when_nobody_reads_its_output() -> None:
    # `listen -k | head -c 3`: it used to log "output closed (still listening)" and go on
    # accepting peers it could only cut off.
    with listening("0", "-k") as (server, address):
        assert server.stdout is not None
        server.stdout.close()
        server.stdout = None
        host, _, port = address.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as peer:
            peer.sendall(b"into a closed pipe\n")
            peer.shutdown(socket.SHUT_WR)  # the first peer is done; -k would wait for another
            assert server.wait(TIMEOUT) == 0  # a quiet end, as for send | head
        assert server.stderr is not None
        assert b"still listening" not in server.stderr.read()
