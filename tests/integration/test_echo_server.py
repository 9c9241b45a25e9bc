"""The echo server on real loopback sockets, under asyncio and uvloop.

Server and clients share one strict event loop (``arun``): any exception the
loop reports fails the test, and everything waits under a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit import Binding, Endpoint, Limits, Server, echo
from socketkit.errors import ConnectionRefused
from tests.support import TIMEOUT

Run = Callable[[Callable[[], Awaitable[Any]]], Any]

MESSAGE = b"This is the message.  It will be repeated."


def tcp(host: str = "127.0.0.1") -> list[Binding]:
    return [Binding("echo", "tcp", host, 0)]


async def open_client(ep: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if ep.path is not None:
        return await asyncio.open_unix_connection(ep.path)
    return await asyncio.open_connection(ep.host, ep.port)


async def exchange(ep: Endpoint, payload: bytes) -> bytes:
    """Send payload, half-close, read to EOF: what a careful client does."""
    reader, writer = await open_client(ep)
    try:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def assert_closed_at_once(ep: Endpoint) -> None:
    """The server accepts and closes the connection without reading a byte."""
    reader, writer = await open_client(ep)
    try:
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tcp_echo_ipv4_and_ipv6(arun: Run, host: str) -> None:
    async def main() -> None:
        async with Server(tcp(host)) as server:
            ep = server.address("echo", "tcp")
            assert ep.host == host and ep.port
            assert await exchange(ep, MESSAGE) == MESSAGE
            result = await echo(MESSAGE, ep)
            assert result.matches

    arun(main)


def test_dual_stack_serves_ipv4_and_ipv6_on_one_socket(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp("::")) as server:
            (endpoint,) = server.endpoints
            assert endpoint.family == "IPv4+IPv6"
            port = endpoint.address.port
            assert await exchange(Endpoint("127.0.0.1", port), b"v4") == b"v4"
            assert await exchange(Endpoint("::1", port), b"v6") == b"v6"

    arun(main)


def test_port_zero_gives_tcp_and_udp_one_port(arun: Run) -> None:
    async def main() -> None:
        bindings = [Binding("echo", "tcp", "127.0.0.1", 0), Binding("echo", "udp", "127.0.0.1", 0)]
        async with Server(bindings) as server:
            assert server.address("echo", "tcp").port == server.address("echo", "udp").port

    arun(main)


def test_udp_echo_all_byte_values(arun: Run) -> None:
    async def main() -> None:
        async with Server([Binding("echo", "udp", "127.0.0.1", 0)]) as server:
            ep = server.address("echo", "udp")
            every = bytes(range(256))
            result = await echo(every, ep, udp=True, timeout=TIMEOUT)
            assert result.received == every
            stats = server.statistics()
            assert (stats.datagrams_received, stats.datagrams_sent) == (1, 1)

    arun(main)


def test_unix_echo_all_byte_values(arun: Run, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "e.sock")

    async def main() -> None:
        async with Server([Binding("echo", "unix", path=path)]) as server:
            ep = server.address("echo", "unix")
            every = bytes(range(256)) * 4
            assert await exchange(ep, every) == every
            assert (await echo(every, ep)).received == every

    arun(main)
    assert not os.path.exists(path), "the socket file is removed at shutdown"


def test_stale_unix_socket_file_is_replaced(arun: Run, unix_dir: str) -> None:
    path = os.path.join(unix_dir, "stale.sock")
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(path)
    leftover.close()  # the file stays, nobody listens: what a crash leaves

    async def main() -> None:
        async with Server([Binding("echo", "unix", path=path)]) as server:
            assert await exchange(server.address("echo", "unix"), b"ok") == b"ok"

    arun(main)


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_chunk_16_server_reads_in_16_byte_chunks(arun: Run) -> None:
    recorder = Recorder()
    logger = logging.getLogger("socketkit.server")
    logger.addHandler(recorder)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    async def main() -> None:
        limits = Limits(read_chunk=16)
        async with Server(tcp(), limits=limits, narrate=True) as server:
            ep = server.address("echo", "tcp")
            result = await echo(MESSAGE, ep, chunk=16)
            assert result.received == MESSAGE
            assert max(result.chunks) <= 16
            assert len(result.chunks) >= 3

    try:
        arun(main)
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)
    received = [m for m in recorder.messages if "received " in m and " bytes from " in m]
    sizes = [int(m.split("received ")[1].split()[0]) for m in received]
    assert max(sizes) <= 16
    assert sum(sizes) == len(MESSAGE)
    text = "\n".join(recorder.messages)
    assert "connection from 127.0.0.1:" in text
    assert "closed" in text


def test_half_close_gets_everything_then_server_closes(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp()) as server:
            reader, writer = await open_client(server.address("echo", "tcp"))
            writer.write(b"first part, ")
            writer.write(b"second part")
            writer.write_eof()
            assert await reader.read() == b"first part, second part"  # read() ends at EOF
            writer.close()
            await writer.wait_closed()

    arun(main)


def test_100_concurrent_clients_and_a_slow_one_delays_nobody(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp()) as server:
            ep = server.address("echo", "tcp")
            # A slow client sends half a message and stalls, connection open.
            slow_reader, slow_writer = await open_client(ep)
            slow_writer.write(b"half a mess")
            await slow_writer.drain()
            assert await slow_reader.readexactly(11) == b"half a mess"
            # A second client is served completely while the first one stalls.
            assert await exchange(ep, b"quick") == b"quick"
            payloads = [os.urandom(1000 + i * 37) for i in range(100)]
            results = await asyncio.gather(*(exchange(ep, p) for p in payloads))
            assert results == payloads
            slow_writer.write(b"age")
            slow_writer.write_eof()
            assert await slow_reader.read() == b"age"
            slow_writer.close()
            await slow_writer.wait_closed()
            assert server.statistics().connections_served == 102

    arun(main)


def test_client_reset_mid_message_does_not_disturb_others(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp()) as server:
            ep = server.address("echo", "tcp")
            loop = asyncio.get_running_loop()
            steady_reader, steady_writer = await open_client(ep)
            steady_writer.write(b"before ")
            await steady_writer.drain()
            # Another client sends part of a message and resets (RST, not FIN).
            rude = socket.socket()
            rude.setblocking(False)
            await loop.sock_connect(rude, (ep.host, ep.port))
            await loop.sock_sendall(rude, b"partial mess" * 1000)
            rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            rude.close()
            steady_writer.write(b"and after")
            steady_writer.write_eof()
            assert await steady_reader.read() == b"before and after"
            steady_writer.close()
            await steady_writer.wait_closed()
            assert await exchange(ep, b"new client") == b"new client"

    arun(main)


def test_graceful_shutdown_finishes_in_flight_echo(arun: Run) -> None:
    async def main() -> None:
        big = os.urandom(2 * 1024 * 1024)
        server = Server(tcp(), limits=Limits(shutdown_grace=TIMEOUT))
        await server.start()
        ep = server.address("echo", "tcp")
        reader, writer = await open_client(ep)
        writer.write(big[:1000])
        await writer.drain()
        assert await reader.readexactly(1000) == big[:1000]
        shutdown = server.request_shutdown()
        # No new connections once shutdown has begun...
        with pytest.raises(ConnectionRefusedError):
            await exchange(ep, b"late")
        # ...but the open one finishes its message, every byte of it.
        writer.write(big[1000:])
        writer.write_eof()
        rest = await reader.read()
        assert rest == big[1000:]
        writer.close()
        await writer.wait_closed()
        stats = await shutdown
        assert stats.bytes_sent == stats.bytes_received == len(big)
        assert stats.connections_aborted == 0

    arun(main)


def test_shutdown_after_grace_closes_idle_connections(arun: Run) -> None:
    async def main() -> None:
        server = Server(tcp(), limits=Limits(shutdown_grace=0.05))
        await server.start()
        reader, writer = await open_client(server.address("echo", "tcp"))
        writer.write(b"owed")
        await writer.drain()
        stats = await server.shutdown()
        # The bytes it had received were echoed before the close.
        assert await reader.read() == b"owed"
        assert stats.connections_active == 0
        writer.close()
        await writer.wait_closed()

    arun(main)


def test_connection_cap_refuses_cleanly_while_others_keep_working(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp(), limits=Limits(max_connections=2)) as server:
            ep = server.address("echo", "tcp")
            first = await open_client(ep)
            second = await open_client(ep)
            for reader, writer in (first, second):
                writer.write(b"ping")
                await writer.drain()
                assert await reader.readexactly(4) == b"ping"
            await assert_closed_at_once(ep)
            for reader, writer in (first, second):
                writer.write(b"still here")
                writer.write_eof()
                assert await reader.read() == b"still here"
                writer.close()
                await writer.wait_closed()
            assert server.statistics().connections_refused == 1
            assert await exchange(ep, b"room again") == b"room again"

    arun(main)


def test_per_source_cap(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp(), limits=Limits(max_connections_per_source=1)) as server:
            ep = server.address("echo", "tcp")
            reader, writer = await open_client(ep)
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
            await assert_closed_at_once(ep)
            assert server.statistics().connections_refused == 1
            writer.close()
            await writer.wait_closed()

    arun(main)


def test_idle_timeout_closes_silent_connection(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp(), limits=Limits(idle_timeout=0.2)) as server:
            reader, writer = await open_client(server.address("echo", "tcp"))
            assert await reader.read() == b""  # the server closed it
            writer.close()
            await writer.wait_closed()
            assert server.statistics().connections_timed_out == 1

    arun(main)


def test_refused_when_nobody_listens(arun: Run) -> None:
    async def main() -> None:
        server = Server(tcp())
        await server.start()
        ep = server.address("echo", "tcp")
        await server.shutdown()
        with pytest.raises(ConnectionRefused, match="is the server running"):
            await echo(b"x", ep)

    arun(main)


def test_statistics_count_the_bytes_of_connections_still_open(arun: Run) -> None:
    # The echo fast path counts bytes lazily; statistics() must still be exact.
    async def main() -> None:
        async with Server(tcp()) as server:
            reader, writer = await open_client(server.address("echo", "tcp"))
            for _ in range(3):
                writer.write(b"x" * 1000)
                assert await reader.readexactly(1000) == b"x" * 1000
            stats = server.statistics()
            assert stats.connections_active == 1
            assert stats.bytes_received == stats.bytes_sent == 3000
            writer.close()
            await writer.wait_closed()
            final = await server.shutdown()  # reported at close too: counted once, not twice
            assert final.bytes_received == final.bytes_sent == 3000

    arun(main)


def test_idle_timeout_aborts_a_client_that_sends_and_never_reads(arun: Run) -> None:
    # Pending output is not progress: otherwise this client holds its slot forever.
    async def main() -> None:
        async with Server(tcp(), limits=Limits(idle_timeout=0.2)) as server:
            ep = server.address("echo", "tcp")
            loop = asyncio.get_running_loop()
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(client, (ep.host, ep.port)), TIMEOUT)
                chunk = b"x" * (1 << 20)
                reset: OSError | None = None
                for _ in range(256):  # at most 256 MiB; the buffers hold ~15
                    try:
                        await asyncio.wait_for(loop.sock_sendall(client, chunk), TIMEOUT)
                    except (ConnectionResetError, BrokenPipeError) as exc:
                        reset = exc  # the server's abort
                        break
                assert reset is not None
            finally:
                client.close()
            stats = server.statistics()
            assert stats.connections_timed_out == 1
            assert stats.connections_aborted == 1

    arun(main)


def test_idle_timeout_spares_a_connection_that_keeps_talking(arun: Run) -> None:
    async def main() -> None:
        async with Server(tcp(), limits=Limits(idle_timeout=0.2)) as server:
            reader, writer = await open_client(server.address("echo", "tcp"))
            loop = asyncio.get_running_loop()
            end = loop.time() + 0.8  # four idle timeouts of steady round trips
            for _ in range(1_000_000):
                if loop.time() >= end:
                    break
                writer.write(b"x")
                assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"x"
            assert server.statistics().connections_timed_out == 0
            writer.close()
            await writer.wait_closed()

    arun(main)
