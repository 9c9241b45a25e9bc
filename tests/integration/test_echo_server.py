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
from socketkit.runtime.connection import IDLE_CHECKS
from tests.support import TIMEOUT
from tests.virtual_time import VirtualClock, loop_turns

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


@pytest.mark.udp_io
def test_port_zero_gives_tcp_and_udp_one_port(arun: Run) -> None:
    async def main() -> None:
        bindings = [Binding("echo", "tcp", "127.0.0.1", 0), Binding("echo", "udp", "127.0.0.1", 0)]
        async with Server(bindings) as server:
            assert server.address("echo", "tcp").port == server.address("echo", "udp").port

    arun(main)


@pytest.mark.udp_io
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
    """An idle connection is served until the grace runs out, then closed (FIN) at exactly
    ``shutdown_grace`` virtual seconds; being closable, it is not aborted."""
    grace = 5.0
    clock = VirtualClock()

    async def main() -> None:
        limits = Limits(shutdown_grace=grace, idle_timeout=None)
        server = Server(tcp(), limits=limits, timers=clock)
        await server.start()
        reader, writer = await open_client(server.address("echo", "tcp"))
        writer.write(b"owed")
        assert await reader.readexactly(4) == b"owed"  # the server holds the connection
        shutdown = server.request_shutdown()
        await clock.until(lambda: clock.next_deadline() == grace)
        assert clock.advance(grace - 0.25) == 0
        writer.write(b"still")  # served all through the grace
        assert await reader.readexactly(5) == b"still"
        assert not shutdown.done()
        assert clock.advance(0.25) == 1  # the grace is over: close what is open
        assert await reader.read() == b""  # a FIN, not a reset
        stats = await asyncio.wait_for(shutdown, TIMEOUT)
        assert clock.now() == grace
        assert (stats.connections_active, stats.connections_aborted) == (0, 0)
        assert stats.bytes_sent == 9
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


IDLE = 300.0
"""The default idle timeout, run on virtual time: five minutes take microseconds."""
CHECK = IDLE / IDLE_CHECKS
MAX_CHECKS = 1000
WATCHED = Limits(idle_timeout=IDLE, shutdown_grace=0)
"""No grace at the end: a test that fails midway is not left waiting on virtual time."""


def test_idle_timeout_closes_silent_connection(arun: Run) -> None:
    """A client silent from the start is closed at the 4th check: exactly IDLE."""
    clock = VirtualClock()

    async def main() -> None:
        async with Server(tcp(), limits=WATCHED, timers=clock) as server:
            reader, writer = await open_client(server.address("echo", "tcp"))
            await clock.until(lambda: clock.pending == 1)  # the connection is watched
            assert clock.next_deadline() == CHECK
            for _ in range(IDLE_CHECKS - 1):
                clock.advance(CHECK)
                assert server.statistics().connections_timed_out == 0
            clock.advance(CHECK)
            assert server.statistics().connections_timed_out == 1
            assert clock.now() == IDLE
            assert await reader.read() == b""  # the server closed it (FIN)
            writer.close()
            await writer.wait_closed()
            assert server.statistics().connections_aborted == 0

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
    """Pending output is not progress: otherwise this client holds its slot forever.

    The client sends until the server's flow control stops reading it. Virtual
    time moves one idle check per round of real I/O, so the server cannot tell
    this from a client sending for hours; it must abort (the echo it owes can
    never be delivered) once nothing moved for IDLE, and never while it reads.
    """
    clock = VirtualClock()

    async def main() -> None:
        async with Server(tcp(), limits=WATCHED, timers=clock) as server:
            ep = server.address("echo", "tcp")
            loop = asyncio.get_running_loop()
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)

            async def send_until_reset() -> OSError | None:
                chunk = b"x" * (1 << 20)
                for _ in range(256):  # at most 256 MiB; the buffers hold ~15
                    try:
                        await loop.sock_sendall(client, chunk)
                    except (ConnectionResetError, BrokenPipeError) as exc:
                        return exc  # the server's abort
                return None

            sender: asyncio.Task[OSError | None] | None = None
            try:
                await asyncio.wait_for(loop.sock_connect(client, (ep.host, ep.port)), TIMEOUT)
                sender = asyncio.create_task(send_until_reset())
                seen: list[tuple[int, int]] = []  # (bytes read, timeouts) after each check
                # Bounded by a count, not a timer: uvloop fires no timer while the
                # loop is this busy. Ten checks or so are enough when all is well.
                for _ in range(MAX_CHECKS):
                    if sender.done():
                        break
                    clock.advance(CHECK)
                    stats = server.statistics()
                    seen.append((stats.bytes_received, stats.connections_timed_out))
                    await loop_turns(1)
                else:
                    pytest.fail(f"not aborted after {MAX_CHECKS} idle checks")
                reset = await sender
            finally:
                if sender is not None:  # stop it before its socket closes under it
                    sender.cancel()
                    await asyncio.wait({sender})
                client.close()
            assert isinstance(reset, ConnectionResetError | BrokenPipeError)
            stats = server.statistics()
            assert stats.connections_timed_out == 1
            assert stats.connections_aborted == 1
            # Aborted only once a full IDLE passed with no byte read: the check that
            # aborted and the IDLE_CHECKS before it all saw the same input.
            at = [timeouts for _, timeouts in seen].index(1)
            assert at >= IDLE_CHECKS
            window = [read for read, _ in seen[at - IDLE_CHECKS : at + 1]]
            assert window == [window[0]] * (IDLE_CHECKS + 1)
            assert window[0] > 0

    arun(main)


def test_idle_timeout_spares_a_connection_that_keeps_talking(arun: Run) -> None:
    """A byte every 3/4 IDLE across more than 10 virtual timeouts: never timed out. Silent
    after its last byte, it is closed exactly 1.25 x IDLE later (the check after the byte
    sees it, and IDLE after that check)."""
    clock = VirtualClock()

    async def main() -> None:
        async with Server(tcp(), limits=WATCHED, timers=clock) as server:
            reader, writer = await open_client(server.address("echo", "tcp"))
            last_byte = 0.0
            while clock.now() < 10 * IDLE:
                writer.write(b"x")
                assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"x"
                last_byte = clock.now()
                clock.advance(0.75 * IDLE)
                assert server.statistics().connections_timed_out == 0
            assert clock.now() == 10.5 * IDLE
            while server.statistics().connections_timed_out == 0:
                assert clock.advance(CHECK) == 1
                assert clock.now() - last_byte <= 1.25 * IDLE
            assert clock.now() == last_byte + 1.25 * IDLE
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            writer.close()
            await writer.wait_closed()

    arun(main)
