"""benchmarks/relays.py: both echo relay experiments keep the stream adapter's semantics.

Every test runs for SpliceRelay (Linux: splice(2)) and CopyRelay under
asyncio and uvloop (``arun``), with the client driven by the same loop and
every wait bounded by TIMEOUT. The idle deadline runs on ``ManualTimers``:
time moves only when a test advances it. (MirrorConnection, which replaced
these relays in the runtime, is tested in test_mirror.py.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from socketkit.runtime.limits import Limits
from socketkit.runtime.stats import Counters
from socketkit.runtime.timers import ManualTimers, Timers
from tests.support import TIMEOUT

# The relays are benchmark code, not part of the package: import them from benchmarks/.
_BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCHMARKS not in sys.path:
    sys.path.insert(0, _BENCHMARKS)

from relays import CopyRelay, SpliceRelay, splice_available  # noqa: E402

Run = Callable[[Callable[[], Awaitable[Any]]], Any]
Relay = SpliceRelay | CopyRelay


@pytest.fixture(params=["splice", "copy"])
def relay_cls(request: pytest.FixtureRequest) -> type[Relay]:
    if request.param == "splice":
        if not splice_available():
            pytest.skip("splice(2) is Linux-only")
        return SpliceRelay
    return CopyRelay


class Host:
    """Stands in for the server's listener: limits, counters, timers and the close callback."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.counters = Counters()
        self.label = "echo/tcp test"
        self.manual = ManualTimers()
        self.timers: Timers = self.manual
        self.closed: list[Relay] = []

    def connection_closed(self, conn: Relay) -> None:
        self.closed.append(conn)


async def relay_pair(
    cls: type[Relay], host: Host, family: int = socket.AF_INET
) -> tuple[Relay, socket.socket]:
    """A relay on one end of a connected pair, our client socket on the other."""
    if family == socket.AF_UNIX:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(TIMEOUT)
        theirs = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        ours, _ = listener.accept()
        listener.close()
    theirs.setblocking(False)
    relay = cls(host, ours, "peer", "source")
    relay.start()
    return relay, theirs


async def send_and_collect(client: socket.socket, payload: bytes) -> bytes:
    """Send everything while reading concurrently; half-close; read until EOF."""
    loop = asyncio.get_running_loop()

    async def sender() -> None:
        await loop.sock_sendall(client, payload)
        client.shutdown(socket.SHUT_WR)

    task = asyncio.ensure_future(sender())
    received = bytearray()
    while chunk := await asyncio.wait_for(loop.sock_recv(client, 1 << 20), TIMEOUT):
        received += chunk
    await asyncio.wait_for(task, TIMEOUT)
    return bytes(received)


BLOCK = b"x" * 65536
MAX_BLOCKS = 4096


async def push_until_stalled(client: socket.socket, stalled: Callable[[], bool]) -> int:
    """Send blocks until our send buffer is full *and* the server has stopped reading.

    Between refused sends the loop gets one turn (``sleep(0)``, not a timed
    wait): the server either reads more or backs up and stops, which
    ``stalled`` tells. Bounded by ``MAX_BLOCKS`` blocks and the test's timeout.
    """
    pushed = 0
    while pushed < MAX_BLOCKS * len(BLOCK):
        try:
            pushed += client.send(BLOCK)
        except BlockingIOError:
            if stalled():
                break
            await asyncio.sleep(0)
    return pushed


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX])
def test_every_byte_comes_back_then_the_relay_closes(
    relay_cls: type[Relay], arun: Run, family: int
) -> None:
    host = Host()
    payload = os.urandom(3 * 1024 * 1024 + 17)

    async def main() -> tuple[bytes, Relay]:
        relay, client = await relay_pair(relay_cls, host, family)
        try:
            got = await send_and_collect(client, payload)
            await asyncio.wait_for(relay.closed, TIMEOUT)
        finally:
            client.close()
        return got, relay

    got, relay = arun(main)
    assert got == payload
    assert host.closed == [relay]
    assert host.counters.bytes_received == host.counters.bytes_sent == len(payload)
    assert relay.bytes_in == relay.bytes_out == len(payload)


def test_read_chunk_bounds_each_splice(relay_cls: type[Relay], arun: Run) -> None:
    host = Host(Limits(read_chunk=16))

    async def main() -> bytes:
        _relay, client = await relay_pair(relay_cls, host)
        try:
            return await send_and_collect(client, b"0123456789" * 100)
        finally:
            client.close()

    assert arun(main) == b"0123456789" * 100


def test_a_client_that_never_reads_is_not_read_from(relay_cls: type[Relay], arun: Run) -> None:
    """Flow control: once our replies back up, we stop taking the client's bytes."""
    host = Host(Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024))

    async def main() -> int:
        relay, client = await relay_pair(relay_cls, host)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        loop = asyncio.get_running_loop()
        try:
            # Push until the kernel refuses: bounded by buffers, not by us reading forever.
            pushed = await push_until_stalled(client, lambda: relay.pending_output() > 0)
            assert relay.wants_flush()
            # Now read everything back: the relay resumes and nothing was lost.
            client.shutdown(socket.SHUT_WR)
            received = 0
            while chunk := await asyncio.wait_for(loop.sock_recv(client, 1 << 20), TIMEOUT):
                received += len(chunk)
            assert received == pushed
            await asyncio.wait_for(relay.closed, TIMEOUT)
        finally:
            client.close()
        return pushed

    pushed = arun(main)
    assert pushed < MAX_BLOCKS * len(BLOCK)  # the client was stopped long before the bound
    assert host.counters.bytes_sent == pushed


def test_idle_connections_are_closed_and_counted(relay_cls: type[Relay], arun: Run) -> None:
    host = Host(Limits(idle_timeout=4.0))
    timers = host.manual

    async def main() -> bytes:
        relay, client = await relay_pair(relay_cls, host)
        loop = asyncio.get_running_loop()
        try:
            timers.advance(3.0)
            assert not relay.closed.done()
            # Traffic at t=3 moves the deadline to t=7.
            await loop.sock_sendall(client, b"ping")
            assert await asyncio.wait_for(loop.sock_recv(client, 10), TIMEOUT) == b"ping"
            timers.advance(1.0)
            assert not relay.closed.done()
            timers.advance(3.0)
            assert relay.closed.done()
            data = await asyncio.wait_for(loop.sock_recv(client, 10), TIMEOUT)  # EOF: closed
            await asyncio.wait_for(relay.closed, TIMEOUT)
        finally:
            client.close()
        return data

    assert arun(main) == b""
    assert host.counters.connections_timed_out == 1
    assert host.manual.pending == 0  # the idle timer went with the relay


def test_abort_resets_and_close_is_graceful(relay_cls: type[Relay], arun: Run) -> None:
    host = Host()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        relay, client = await relay_pair(relay_cls, host)
        relay.abort()
        relay.abort()
        with pytest.raises(ConnectionResetError):  # SO_LINGER 0: the peer sees a reset
            await asyncio.wait_for(loop.sock_recv(client, 10), TIMEOUT)
        await asyncio.wait_for(relay.closed, TIMEOUT)
        client.close()
        relay2, client2 = await relay_pair(relay_cls, host)
        relay2.close()
        assert await asyncio.wait_for(loop.sock_recv(client2, 10), TIMEOUT) == b""
        client2.close()

    arun(main)
    assert host.counters.connections_aborted == 1
    assert len(host.closed) == 2


def test_stop_reading_takes_no_new_bytes(relay_cls: type[Relay], arun: Run) -> None:
    host = Host()

    async def main() -> None:
        relay, client = await relay_pair(relay_cls, host)
        try:
            relay.stop_reading()
            client.send(b"late")
            relay.close()
            loop = asyncio.get_running_loop()

            async def read_to_the_end() -> None:
                while await loop.sock_recv(client, 10):
                    pass

            # Closing with unread bytes makes the kernel reset rather than FIN.
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(read_to_the_end(), TIMEOUT)
        finally:
            client.close()

    arun(main)
    assert host.counters.bytes_received == 0
    assert host.counters.bytes_sent == 0
