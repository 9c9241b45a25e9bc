"""The runtime's deadlines on virtual time: accept back-off, linger, grace, UDP token bucket.

Each test runs a real ``Server`` on loopback (port 0) under asyncio and
uvloop, with ``ManualTimers`` as its clock: real sockets carry the bytes,
the test moves time with ``advance()`` and asserts exact virtual times, and
nothing waits on a real timer. Where a test must wait for the server to
schedule a deadline, it waits on the clock itself (``VirtualClock.until``),
bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit import Binding, Limits, Server
from socketkit.runtime.listener import ACCEPT_BACKOFF
from socketkit.runtime.server import CLOSE_AFTER_GRACE
from socketkit.runtime.stream import LINGER
from tests.support import TIMEOUT
from tests.virtual_time import VirtualClock, loop_turns

Run = Callable[[Callable[[], Awaitable[Any]]], Any]


async def connect(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    try:
        async with asyncio.timeout(TIMEOUT):
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def recv(sock: socket.socket, n: int = 65536) -> bytes:
    async with asyncio.timeout(TIMEOUT):
        return await asyncio.get_running_loop().sock_recv(sock, n)


async def recv_to_eof(sock: socket.socket) -> bytes:
    out = b""
    while chunk := await recv(sock):
        out += chunk
    return out


# -- accept back-off ----------------------------------------------------------------


def test_accept_backs_off_for_exactly_accept_backoff_after_emfile(
    arun: Run, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of descriptors, the accept loop stops reading the listener for ACCEPT_BACKOFF
    virtual seconds (no spinning), then accepts the client that waited in the backlog."""
    clock = VirtualClock()
    server_port: list[int] = []
    calls: list[float] = []
    real_accept = socket.socket.accept

    def accept(self: socket.socket) -> tuple[socket.socket, Any]:
        if self.getsockname()[1:2] == tuple(server_port):  # only the server's listener
            calls.append(clock.now())
            if len(calls) == 1:
                raise OSError(errno.EMFILE, "Too many open files")
        return real_accept(self)

    async def main() -> None:
        limits = Limits(idle_timeout=None, shutdown_grace=0)
        async with Server(
            [Binding("echo", "tcp", "127.0.0.1", 0)], limits=limits, timers=clock
        ) as server:
            ep = server.address("echo", "tcp")
            assert ep.host is not None and ep.port is not None
            server_port.append(ep.port)
            monkeypatch.setattr(socket.socket, "accept", accept)
            client = await connect(ep.host, ep.port)  # the kernel completes the handshake
            with client:
                await clock.until(lambda: clock.pending == 1)  # the back-off
                assert calls == [0.0]
                assert clock.next_deadline() == ACCEPT_BACKOFF
                assert server.statistics().accept_errors == 1
                # The client waits in the backlog; the listener is not read meanwhile,
                # however many turns the loop makes (a spinning accept would retry).
                await loop_turns(5)
                assert calls == [0.0]
                assert clock.advance(ACCEPT_BACKOFF / 2) == 0
                await loop_turns(5)
                assert calls == [0.0]
                assert server.statistics().connections_served == 0
                # Exactly ACCEPT_BACKOFF later, the listener is read again.
                assert clock.advance(ACCEPT_BACKOFF / 2) == 1
                await asyncio.get_running_loop().sock_sendall(client, b"back")
                assert await recv(client, 4) == b"back"
                assert calls[1] == ACCEPT_BACKOFF
                stats = server.statistics()
                assert (stats.connections_served, stats.accept_errors) == (1, 1)

    with caplog.at_level(logging.WARNING, logger="socketkit.server"):
        arun(main)
    assert "cannot accept (Too many open files)" in caplog.text


# -- linger after a close -----------------------------------------------------------


def test_a_finished_connection_lingers_exactly_linger_then_closes(arun: Run) -> None:
    """daytime answers and half-closes; it discards input for LINGER virtual seconds, then closes."""
    clock = VirtualClock()

    async def main() -> None:
        limits = Limits(idle_timeout=None, shutdown_grace=0)
        async with Server(
            [Binding("daytime", "tcp", "127.0.0.1", 0)], limits=limits, timers=clock
        ) as server:
            ep = server.address("daytime", "tcp")
            assert ep.host is not None and ep.port is not None
            with await connect(ep.host, ep.port) as client:
                assert (await recv_to_eof(client)).endswith(b"UTC\r\n")  # the reply, then FIN
                await clock.until(lambda: clock.pending == 1)
                assert clock.next_deadline() == LINGER
                assert clock.advance(LINGER - 0.25) == 0
                assert server.statistics().connections_active == 1
                assert clock.advance(0.25) == 1  # transport.close() at exactly LINGER
                await clock.until(lambda: server.statistics().connections_active == 0)
            assert server.statistics().connections_timed_out == 0
            assert server.statistics().connections_aborted == 0

    arun(main)


def test_linger_ends_early_when_the_client_closes(arun: Run) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with Server(
            [Binding("daytime", "tcp", "127.0.0.1", 0)],
            limits=Limits(idle_timeout=None, shutdown_grace=0),
            timers=clock,
        ) as server:
            ep = server.address("daytime", "tcp")
            assert ep.host is not None and ep.port is not None
            with await connect(ep.host, ep.port) as client:
                assert await recv_to_eof(client)
                await clock.until(lambda: clock.pending == 1)
                client.shutdown(socket.SHUT_WR)  # our FIN: both sides are done
                await clock.until(lambda: clock.pending == 0)  # the linger timer is cancelled
                await clock.until(lambda: server.statistics().connections_active == 0)
                assert clock.now() == 0.0  # no virtual time passed

    arun(main)


# -- shutdown grace -----------------------------------------------------------------


def test_grace_expiry_aborts_what_is_left_at_exactly_grace_plus_close_after_grace(
    arun: Run,
) -> None:
    """A connection that cannot finish (it lingers LINGER > CLOSE_AFTER_GRACE after its
    reply, and the client never closes) is aborted at grace + CLOSE_AFTER_GRACE."""
    grace = 0.5
    assert grace + CLOSE_AFTER_GRACE < LINGER, "the linger must outlast the grace here"
    clock = VirtualClock()

    async def main() -> None:
        limits = Limits(idle_timeout=None, shutdown_grace=grace)
        server = Server([Binding("daytime", "tcp", "127.0.0.1", 0)], limits=limits, timers=clock)
        await server.start()
        ep = server.address("daytime", "tcp")
        assert ep.host is not None and ep.port is not None
        with await connect(ep.host, ep.port) as client:
            assert await recv_to_eof(client)
            await clock.until(lambda: clock.pending == 1)  # lingering until LINGER
            shutdown = server.request_shutdown()
            await clock.until(lambda: clock.next_deadline() == grace)
            assert clock.pending == 2
            assert clock.advance(grace - 0.25) == 0
            assert not shutdown.done()
            assert clock.advance(0.25) == 1  # the grace is over at exactly `grace`
            # Closed now, it still lingers: the server gives it CLOSE_AFTER_GRACE.
            await clock.until(lambda: clock.next_deadline() == grace + CLOSE_AFTER_GRACE)
            assert clock.advance(CLOSE_AFTER_GRACE - 0.25) == 0
            assert server.statistics().connections_aborted == 0
            assert clock.advance(0.25) == 1
            assert clock.now() == grace + CLOSE_AFTER_GRACE
            stats = await asyncio.wait_for(shutdown, TIMEOUT)
            assert stats.connections_aborted == 1
            assert stats.connections_cut == 1  # the summary says one was cut at the grace
            assert "1 connections cut" in stats.summary()
            assert stats.connections_active == 0
            assert clock.now() == grace + CLOSE_AFTER_GRACE  # the linger never got to run
            assert clock.pending == 0  # the linger timer went with the connection

    arun(main)


def test_a_connection_that_finishes_within_the_grace_is_not_cut(arun: Run) -> None:
    grace = 5.0
    clock = VirtualClock()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limits = Limits(idle_timeout=None, shutdown_grace=grace)
        server = Server([Binding("echo", "tcp", "127.0.0.1", 0)], limits=limits, timers=clock)
        await server.start()
        ep = server.address("echo", "tcp")
        assert ep.host is not None and ep.port is not None
        with await connect(ep.host, ep.port) as client:
            await loop.sock_sendall(client, b"open")
            assert await recv(client, 4) == b"open"  # the server holds the connection
            shutdown = server.request_shutdown()
            await clock.until(lambda: clock.next_deadline() == grace)
            clock.advance(grace - 0.25)  # served all through the grace
            await loop.sock_sendall(client, b"still served")
            assert await recv(client, 12) == b"still served"
            client.shutdown(socket.SHUT_WR)
            assert await recv_to_eof(client) == b""
            stats = await asyncio.wait_for(shutdown, TIMEOUT)
        assert clock.now() == grace - 0.25  # finished before the grace ran out
        assert clock.pending == 0  # the grace timer was cancelled
        assert (stats.connections_aborted, stats.connections_active) == (0, 0)
        assert stats.connections_cut == 0
        assert stats.bytes_sent == 4 + 12

    arun(main)


# -- the UDP token bucket -----------------------------------------------------------


@pytest.mark.udp_io
def test_udp_token_bucket_refills_at_udp_rate_per_virtual_second(arun: Run) -> None:
    """A burst of 3, then 2 replies per virtual second; the bucket never holds more than 3."""
    clock = VirtualClock()
    limits = Limits(udp_rate=2.0, udp_burst=3, udp_loopback_exempt=False, udp_amplification=None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with Server(
            [Binding("daytime", "udp", "127.0.0.1", 0)], limits=limits, timers=clock
        ) as server:
            ep = server.address("daytime", "udp")
            assert ep.host is not None and ep.port is not None
            address = (ep.host, ep.port)

            async def replies_to(count: int) -> int:
                """Send ``count`` datagrams at the current virtual time; count the replies."""
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
                    flood.setblocking(False)
                    flood.bind(("127.0.0.1", 0))
                    for _ in range(count):
                        flood.sendto(b"?", address)
                    # A barrier from another source, on the same server socket: once it
                    # is answered, every datagram above was handled and answered or not.
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                        other.setblocking(False)
                        other.bind(("127.0.0.2", 0))
                        other.sendto(b"?", address)
                        async with asyncio.timeout(TIMEOUT):
                            assert (await loop.sock_recv(other, 100)).endswith(b"UTC\r\n")
                    got = 0
                    while True:
                        try:
                            flood.recv(100)
                        except BlockingIOError:
                            return got
                        got += 1

            assert await replies_to(5) == 3  # the burst
            assert await replies_to(1) == 0  # no time passed: no token
            clock.advance(0.5)  # 0.5 s x 2/s = 1 token
            assert await replies_to(2) == 1
            clock.advance(0.25)  # half a token is not a reply...
            assert await replies_to(1) == 0
            clock.advance(0.25)  # ...but it was kept: with this quarter, one token
            assert await replies_to(1) == 1
            clock.advance(1.0)  # 2 tokens
            assert await replies_to(3) == 2
            clock.advance(3600.0)  # an hour refills the burst, no more
            assert await replies_to(5) == 3
            stats = server.statistics()
            assert stats.datagrams_rate_limited == 2 + 1 + 1 + 1 + 0 + 1 + 2
            assert clock.pending == 0  # the bucket reads the clock; it schedules nothing

    arun(main)


# -- the access log's word for how a connection ended --------------------------------


def test_the_access_log_says_idle_timeout_for_what_the_idle_watch_closed(arun: Run) -> None:
    import io

    from socketkit.logs import configure_access_log

    clock = VirtualClock()
    log = io.StringIO()
    configure_access_log(log)

    async def main() -> None:
        limits = Limits(idle_timeout=300.0)
        server = Server([Binding("echo", "tcp", "127.0.0.1", 0)], limits=limits, timers=clock)
        await server.start()
        ep = server.address("echo", "tcp")
        reader, writer = await asyncio.open_connection(ep.host, ep.port)
        await clock.until(lambda: clock.pending == 1)  # the connection is watched
        clock.advance(300.0)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed by the server
        writer.close()
        await writer.wait_closed()
        await server.shutdown()

    try:
        arun(main)
    finally:
        configure_access_log(None)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "ended=idle_timeout" in lines[0]
