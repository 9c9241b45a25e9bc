"""runtime/splice.py: both echo relays keep the stream adapter's semantics.

Every test runs for SpliceRelay (Linux: splice(2)), CopyRelay and
MirrorConnection (the loop's own transport), under
asyncio and uvloop (``arun``), with the client driven by the same loop and
every wait bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit.runtime.limits import Limits
from socketkit.runtime.splice import CopyRelay, MirrorConnection, SpliceRelay, splice_available
from socketkit.runtime.stats import Counters

Run = Callable[[Callable[[], Awaitable[Any]]], Any]
Relay = SpliceRelay | CopyRelay | MirrorConnection


@pytest.fixture(params=["splice", "copy", "mirror"])
def relay_cls(request: pytest.FixtureRequest) -> type[Relay]:
    if request.param == "splice":
        if not splice_available():
            pytest.skip("splice(2) is Linux-only")
        return SpliceRelay
    return CopyRelay if request.param == "copy" else MirrorConnection


class Host:
    """Stands in for the server's listener: limits, counters and the close callback."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.counters = Counters()
        self.label = "echo/tcp test"
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
        theirs = socket.create_connection(listener.getsockname(), timeout=5)
        ours, _ = listener.accept()
        listener.close()
    theirs.setblocking(False)
    if cls is MirrorConnection:
        mirror = MirrorConnection(host, "peer", "source")
        await asyncio.get_running_loop().connect_accepted_socket(lambda: mirror, ours)
        return mirror, theirs
    relay = cls(host, ours, "peer", "source")  # type: ignore[call-arg]
    relay.start()  # type: ignore[union-attr]
    return relay, theirs


async def send_and_collect(client: socket.socket, payload: bytes) -> bytes:
    """Send everything while reading concurrently; half-close; read until EOF."""
    loop = asyncio.get_running_loop()

    async def sender() -> None:
        await loop.sock_sendall(client, payload)
        client.shutdown(socket.SHUT_WR)

    task = asyncio.ensure_future(sender())
    received = bytearray()
    while chunk := await loop.sock_recv(client, 1 << 20):
        received += chunk
    await task
    return bytes(received)


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
            await asyncio.wait_for(relay.closed, 5)
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
        block = b"x" * 65536
        pushed = 0
        try:
            # Push until the kernel refuses: bounded by buffers, not by us reading forever.
            for _ in range(4096):
                try:
                    pushed += client.send(block)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    try:
                        pushed += client.send(block)
                    except BlockingIOError:
                        break
            assert relay.wants_flush()
            # Now read everything back: the relay resumes and nothing was lost.
            client.shutdown(socket.SHUT_WR)
            received = 0
            while chunk := await loop.sock_recv(client, 1 << 20):
                received += len(chunk)
            assert received == pushed
        finally:
            client.close()
        return pushed

    pushed = arun(main)
    assert pushed < 4096 * 65536  # the client was stopped long before the loop's bound
    assert host.counters.bytes_sent == pushed


def test_idle_connections_are_closed_and_counted(relay_cls: type[Relay], arun: Run) -> None:
    host = Host(Limits(idle_timeout=0.05))

    async def main() -> bytes:
        relay, client = await relay_pair(relay_cls, host)
        try:
            data = await asyncio.get_running_loop().sock_recv(client, 10)  # EOF when closed
            await asyncio.wait_for(relay.closed, 5)
        finally:
            client.close()
        return data

    assert arun(main) == b""
    assert host.counters.connections_timed_out == 1


def test_abort_resets_and_close_is_graceful(relay_cls: type[Relay], arun: Run) -> None:
    host = Host()

    async def main() -> None:
        relay, client = await relay_pair(relay_cls, host)
        relay.abort()
        relay.abort()
        try:  # the relays reset; a transport's abort may close with FIN
            assert await asyncio.get_running_loop().sock_recv(client, 10) == b""
        except ConnectionResetError:
            pass
        await asyncio.wait_for(relay.closed, 5)
        client.close()
        relay2, client2 = await relay_pair(relay_cls, host)
        relay2.close()
        assert await asyncio.get_running_loop().sock_recv(client2, 10) == b""
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
                await read_to_the_end()
        finally:
            client.close()

    arun(main)
    assert host.counters.bytes_received == 0
    assert host.counters.bytes_sent == 0
