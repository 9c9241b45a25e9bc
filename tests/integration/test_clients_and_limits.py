"""Clients (Happy Eyeballs, relay) and the server's protection against greedy clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from socketkit import Binding, Endpoint, Limits, RelayOptions, Server, relay, serve_in_thread
from socketkit.client.connect import _race, interleave
from socketkit.errors import ConnectionRefused
from socketkit.runtime import ManualTimers
from socketkit.runtime.connection import IDLE_CHECKS
from tests.support import TIMEOUT, closed_port, recv_exactly, stalled_listener
from tests.virtual_time import loop_turns

Run = Callable[[Callable[[], Awaitable[Any]]], Any]

V4 = socket.AF_INET
V6 = socket.AF_INET6


def info(family: int, host: str, port: int) -> tuple[int, int, int, str, Any]:
    sockaddr: tuple[Any, ...] = (host, port) if family == V4 else (host, port, 0, 0)
    return (family, socket.SOCK_STREAM, 6, "", sockaddr)


def test_interleave_alternates_families_starting_with_the_first() -> None:
    infos = [info(V6, "::1", 1), info(V6, "::2", 1), info(V4, "1.0.0.1", 1), info(V4, "1.0.0.2", 1)]
    assert [i[4][0] for i in interleave(infos)] == ["::1", "1.0.0.1", "::2", "1.0.0.2"]
    assert interleave([]) == []


def test_happy_eyeballs_a_hanging_first_address_does_not_block_the_second(arun: Run) -> None:
    """Attempts are staggered: while the first hangs, the second starts and wins.

    Tried one at a time, the first connect would hang far beyond the test's
    timeout (its SYNs are dropped by a listener whose queue is full).
    """

    async def main() -> None:
        async with Server([Binding("echo", "tcp", "127.0.0.1", 0)]) as server:
            good = server.address("echo", "tcp")
            with stalled_listener() as (host, port):
                candidates = [info(V4, host, port), info(V4, "127.0.0.1", good.port or 0)]
                sock = await _race(candidates, 0.05, "test")
                try:
                    assert sock.getpeername()[1] == good.port
                finally:
                    sock.close()

    arun(main)


def test_happy_eyeballs_a_refused_address_moves_on_at_once(arun: Run) -> None:
    async def main() -> None:
        async with Server([Binding("echo", "tcp", "::1", 0)]) as server:
            good = server.address("echo", "tcp")
            with closed_port() as dead:
                candidates = [info(V4, "127.0.0.1", dead), info(V6, "::1", good.port or 0)]
                # A delay longer than the test's timeout: only "failed, so start the next" can pass.
                sock = await _race(candidates, TIMEOUT * 10, "test")
                try:
                    assert sock.family == V6
                finally:
                    sock.close()

    arun(main)


def test_every_address_refused_says_so(arun: Run) -> None:
    async def main() -> None:
        with closed_port() as a, closed_port() as b:
            candidates = [info(V4, "127.0.0.1", a), info(V4, "127.0.0.1", b)]
            with pytest.raises(ConnectionRefused, match="is the server running"):
                await _race(candidates, 0.01, f"localhost:{a}")

    arun(main)


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_relay_8_mib_both_ways_concurrently(arun: Run) -> None:
    """Send and receive run at once: a write-everything-first client would deadlock."""

    async def main() -> None:
        payload = os.urandom(8 * 1024 * 1024)
        received = bytearray()
        async with Server([Binding("echo", "tcp", "127.0.0.1", 0)]) as server:
            result = await relay(
                server.address("echo", "tcp"), chunks_of(payload, 65536), received.extend
            )
        assert bytes(received) == payload
        assert result.bytes_sent == result.bytes_received == len(payload)
        assert result.peer_closed

    arun(main)


def test_relay_quit_after_eof_with_a_peer_that_never_closes(arun: Run) -> None:
    async def main() -> None:
        received = bytearray()
        async with Server([Binding("echo", "tcp", "127.0.0.1", 0)]) as server:
            options = RelayOptions(half_close=False, quit_after_eof=0.05)
            result = await relay(
                server.address("echo", "tcp"),
                chunks_of(b"ping", 4),
                received.extend,
                options=options,
            )
        assert not result.peer_closed, "without FIN, the echo server never closes"
        assert result.bytes_sent == 4

    arun(main)


def test_a_client_that_never_reads_cannot_grow_server_memory() -> None:
    """Flow control: the server stops reading while its output to this client is queued.

    Without it, the server would keep reading (and buffering) everything the
    client sends, and the client's sends would never block.
    """
    limits = Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024, read_chunk=64 * 1024)
    cap = 256 * 1024 * 1024
    with serve_in_thread("echo", udp=False, limits=limits) as server:
        ep = server.address("echo", "tcp")
        sock = socket.create_connection((ep.host, ep.port), timeout=TIMEOUT)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(1.0)  # sending blocks for this long => the server stopped reading
            block = os.urandom(1024 * 1024)
            sent = 0
            try:
                while sent < cap:
                    sock.sendall(block)
                    sent += len(block)
            except TimeoutError:
                pass
            assert sent < cap, "the server kept reading from a client that never reads"
            stats = server.statistics()
            # What the server read but could not pass on is bounded by its limits.
            backlog = stats.bytes_received - stats.bytes_sent
            assert backlog <= limits.write_buffer_high + limits.read_chunk
            assert stats.bytes_received < 64 * 1024 * 1024
            # The client was slow, not wrong: everything it sent comes back intact.
            sock.settimeout(TIMEOUT)
            sock.shutdown(socket.SHUT_WR)
            echoed = recv_exactly(sock, 1024 * 1024)
            assert echoed == block
        finally:
            sock.close()


def test_out_of_file_descriptors_the_server_backs_off_and_recovers(unix_dir: str) -> None:
    """EMFILE on accept: a short back-off and a warning, never a crash or a spinning core."""
    soft = 40
    code = (
        "import resource, sys;"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {soft}));"
        "from socketkit.cli.main import main;"
        "sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "echo", "--port", "0", "--no-udp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    clients: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks only until serve prints its endpoint
        host, _, port = line.split("\t")[2].rpartition(":")
        address = (host, int(port))
        for _ in range(soft + 10):  # more clients than the server has descriptors
            s = socket.create_connection(address, timeout=TIMEOUT)
            s.settimeout(TIMEOUT)
            clients.append(s)
        # The last client waits in the backlog; prove the server is alive for early ones.
        clients[0].sendall(b"alive")
        assert recv_exactly(clients[0], 5) == b"alive"
        for s in clients[:-1]:
            s.close()
        # Once descriptors are free again, the waiting client is accepted and served.
        clients[-1].sendall(b"recovered")
        assert recv_exactly(clients[-1], 9) == b"recovered"
        clients[-1].close()
        proc.send_signal(2)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        for s in clients:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "cannot accept (Too many open files)" in err
    assert "accept errors" in out
    assert "Traceback" not in err
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] != soft  # ours was untouched


def test_refused_endpoint_for_relay(arun: Run) -> None:
    async def main() -> None:
        with closed_port() as port, pytest.raises(ConnectionRefused):
            await relay(Endpoint("127.0.0.1", port), chunks_of(b"x", 1), print)

    arun(main)


def test_a_pipelining_sum_client_is_paced_and_others_are_served(arun: Run) -> None:
    """One client pipelining requests without reading its replies is throttled by
    back-pressure (reading stops while its answers wait), and another client is
    answered meanwhile.

    Before, sum answered every line past a cap inside the read callback: the
    flooder was never slowed and the others waited for seconds.

    No "sending blocked for a second" check: the idle watch, on virtual time,
    is the witness. Time moves one idle check per round of real I/O; the
    server can only time the flooder out once it read nothing from it for a
    whole idle timeout, while the flooder still had requests to send.
    """
    cap = 128 * 1024 * 1024
    idle = 300.0
    clock = ManualTimers()

    async def main() -> None:
        limits = Limits(idle_timeout=idle, shutdown_grace=0)
        async with Server(
            [Binding("sum", "tcp", "127.0.0.1", 0)], limits=limits, timers=clock
        ) as server:
            ep = server.address("sum", "tcp")
            loop = asyncio.get_running_loop()
            flooder = socket.socket()
            flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            flooder.setblocking(False)
            sent = 0

            async def flood() -> None:
                nonlocal sent
                # 1 MiB of requests, each answered with 25 bytes ("ERR expected two
                # numbers"): the replies back up after a few MiB, not tens of them.
                block = b"\n" * (1024 * 1024)
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    while sent < cap:
                        await loop.sock_sendall(flooder, block)
                        sent += len(block)

            async def probe() -> bytes:
                reader, writer = await asyncio.open_connection(ep.host, ep.port)
                try:
                    writer.write(b"2 3\n")
                    return await reader.readline()
                finally:
                    writer.close()

            await asyncio.wait_for(loop.sock_connect(flooder, (ep.host, ep.port)), TIMEOUT)
            sender = asyncio.create_task(flood())
            answered_meanwhile = b""
            read: list[int] = []
            try:
                for _ in range(1000):  # a count, not a timer: ~10 idle checks suffice
                    if sender.done() or server.statistics().connections_timed_out:
                        break
                    clock.advance(idle / IDLE_CHECKS)
                    read.append(server.statistics().bytes_received)
                    if not answered_meanwhile and read[-2:-1] == read[-1:]:
                        # The flooder is held back right now: another client is served.
                        answered_meanwhile = await asyncio.wait_for(probe(), TIMEOUT)
                    await loop_turns(1)
                stats = server.statistics()
            finally:
                sender.cancel()
                await asyncio.wait({sender})
                flooder.close()
            assert sent < cap, "the server kept reading from a client that never reads"
            assert answered_meanwhile == b"5\n"
            assert stats.connections_timed_out == 1, "the server kept reading from the flooder"
            assert stats.connections_aborted == 1  # its replies could never be delivered
            assert stats.bytes_received < 64 * 1024 * 1024

    arun(main)
