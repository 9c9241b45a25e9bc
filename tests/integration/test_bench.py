"""``socketkit.load`` against real servers on loopback: correct echoes pass, corrupt ones are caught.

Short runs (a fraction of a second each): these check correctness and
accounting, never speed. Performance targets live in benchmarks/.
"""

from __future__ import annotations

import contextlib
import os
import socketserver
import threading
from collections.abc import Iterator

import pytest

from socketkit.endpoints import Endpoint
from socketkit.errors import ConnectionRefused
from socketkit.load import BenchConfig, run_bench
from socketkit.runtime import serve_in_thread
from tests.support import TIMEOUT, closed_port

SHORT = {"duration": 0.4, "warmup": 0.1, "timeout": 1.0}


def _corrupt(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:] if data else data


class _CorruptStream(socketserver.BaseRequestHandler):
    """Echoes every chunk with its first byte flipped."""

    def handle(self) -> None:
        self.request.settimeout(TIMEOUT)
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(_corrupt(data))


class _CorruptDatagram(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(_corrupt(data), self.client_address)


class _ThreadingTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


@contextlib.contextmanager
def corrupting_server(udp: bool = False) -> Iterator[Endpoint]:
    """A deliberately broken echo server on 127.0.0.1, port 0, in a thread."""
    server: socketserver.BaseServer
    if udp:
        server = socketserver.UDPServer(("127.0.0.1", 0), _CorruptDatagram)
    else:
        server = _ThreadingTCP(("127.0.0.1", 0), _CorruptStream)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Endpoint(host=str(host), port=int(port))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def echo() -> Iterator[dict[str, Endpoint]]:
    """Our echo server (TCP, UDP, Unix) on the default loop, in a thread."""
    directory = os.path.join("/tmp", f"sk-bench-{os.getpid()}")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "echo.sock")
    with serve_in_thread("echo", unix=path) as server:
        yield {
            "tcp": server.address("echo", "tcp"),
            "udp": server.address("echo", "udp"),
            "unix": server.address("echo", "unix"),
        }
    with contextlib.suppress(OSError):
        os.rmdir(directory)


@pytest.mark.parametrize(
    ("mode", "transport", "size", "conns"),
    [
        ("rr", "tcp", 64, 8),
        ("rr", "tcp", 16 * 1024, 4),
        ("stream", "tcp", 64 * 1024, 4),
        ("udp", "udp", 1024, 8),
        ("rr", "unix", 512, 4),
    ],
)
def test_our_echo_server_passes_with_zero_errors(
    echo: dict[str, Endpoint], mode: str, transport: str, size: int, conns: int
) -> None:
    config = BenchConfig(
        echo[transport],
        mode=mode,  # type: ignore[arg-type]
        size=size,
        connections=conns,
        workers=1,
        **SHORT,  # type: ignore[arg-type]
    )
    s = run_bench(config)
    assert s.requests > 0
    assert (s.errors, s.mismatches, s.timeouts, s.late) == (0, 0, 0, 0)
    assert s.connections == conns
    assert s.latency_us.min > 0
    assert s.latency_us.p50 <= s.latency_us.p99 <= s.latency_us.max
    assert s.requests_per_second == pytest.approx(s.requests / 0.4)
    assert s.mib_per_second == pytest.approx(s.requests * size / 0.4 / 1024 / 1024)


def test_requests_mode_counts_exactly_that_many_over_two_processes(
    echo: dict[str, Endpoint],
) -> None:
    config = BenchConfig(
        echo["tcp"], connections=4, requests=3000, duration=None, warmup=0.1, workers=2
    )
    s = run_bench(config)
    assert s.workers == 2
    assert s.requests == 3000
    assert s.ok
    assert s.seconds > 0


def test_open_loop_rate_sends_on_schedule(echo: dict[str, Endpoint]) -> None:
    """400 requests at 2,000/s cannot finish before the schedule allows (~0.2 s).

    A closed loop would finish them as fast as the server answers; only a
    lower bound is asserted, so a slow machine cannot fail it.
    """
    config = BenchConfig(
        echo["tcp"],
        connections=4,
        rate=2000.0,
        requests=400,
        duration=None,
        warmup=0.0,
        workers=1,
        timeout=1.0,
    )
    s = run_bench(config)
    assert s.ok
    assert s.requests == 400
    assert s.seconds >= 0.19


def test_corrupting_stream_server_is_caught_as_mismatches() -> None:
    with corrupting_server() as target:
        s = run_bench(BenchConfig(target, connections=2, workers=1, **SHORT))  # type: ignore[arg-type]
    assert s.mismatches > 0
    assert s.requests == 0
    assert not s.ok


def test_corrupting_datagram_server_is_caught_as_mismatches() -> None:
    with corrupting_server(udp=True) as target:
        s = run_bench(
            BenchConfig(
                target, mode="udp", connections=2, workers=1, duration=0.4, warmup=0, timeout=0.1
            )
        )
    assert s.mismatches > 0
    assert s.requests == 0
    assert s.late == 0


def test_silent_udp_server_is_counted_as_losses() -> None:
    with contextlib.ExitStack() as stack:
        import socket

        sink = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sink.bind(("127.0.0.1", 0))
        target = Endpoint(host="127.0.0.1", port=sink.getsockname()[1])
        s = run_bench(
            BenchConfig(
                target, mode="udp", connections=2, workers=1, duration=0.3, warmup=0, timeout=0.1
            )
        )
    assert s.requests == 0
    assert s.losses >= 2
    assert s.mismatches == 0


def test_nobody_listening_is_a_clear_refusal() -> None:
    with closed_port() as port, pytest.raises(ConnectionRefused, match="refused"):
        run_bench(BenchConfig(Endpoint(host="127.0.0.1", port=port), workers=1, **SHORT))  # type: ignore[arg-type]
