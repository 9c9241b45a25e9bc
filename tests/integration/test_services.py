"""The small services and sum on real sockets: TCP, UDP and Unix, IPv4 and IPv6, both loops.

Server and clients share one strict event loop (``arun``): any exception the
loop reports fails the test, and every wait is under a timeout. Every limit
is proven by a test that crosses it. Only loopback addresses are used; a
second UDP "source" is 127.0.0.2 (all of 127/8 is loopback on Linux) or ::1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from socketkit import Endpoint, Limits, Server, plan_bindings
from socketkit.client.services import (
    chargen,
    discard,
    fetch,
    query_time,
    repeat_bytes,
    sum_lines,
    sum_numbers,
)
from socketkit.errors import (
    ConnectionLost,
    OutputClosed,
    RemoteProtocolError,
    TimedOut,
)
from socketkit.protocols.chargen import MAX_UDP_REPLY, pattern
from socketkit.protocols.qotd import default_quotes
from socketkit.protocols.timeproto import decode_time
from socketkit.runtime.connection import IDLE_CHECKS
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.timers import ManualTimers
from tests.support import TIMEOUT
from tests.virtual_time import loop_turns

Run = Callable[[Callable[[], Awaitable[Any]]], Any]

SERVICES = ["discard", "daytime", "qotd", "chargen", "time", "sum"]
DAYTIME = re.compile(
    rb"(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, [A-Z][a-z]+ \d{1,2}, \d{4} \d\d:\d\d:\d\d-UTC\r\n"
)


def make_server(
    services: Sequence[str] = SERVICES,
    *,
    host: str = "127.0.0.1",
    unix: str | None = None,
    limits: Limits | None = None,
    guard: bool = True,
    timers: ManualTimers | None = None,
) -> Server:
    """A server of ``services`` on port 0; with ``timers``, its deadlines run on virtual time."""
    limits = limits or Limits()
    bindings = plan_bindings(list(services), host=host, ports=dict.fromkeys(services, 0), unix=unix)
    if guard:
        clock = time.monotonic if timers is None else timers.now
        policy = UdpGuard(limits, clock=clock)
        return Server(bindings, limits=limits, udp_policy=policy, timers=timers)
    return Server(bindings, limits=limits, timers=timers)


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def open_stream(ep: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if ep.path is not None:
        return await asyncio.open_unix_connection(ep.path)
    return await asyncio.open_connection(ep.host, ep.port)


async def read_to_close(ep: Endpoint, send: bytes = b"") -> bytes:
    reader, writer = await open_stream(ep)
    try:
        if send:
            writer.write(send)
            await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def udp_socket(
    ep: Endpoint, *, source: tuple[str, int] | None = None
) -> AsyncIterator[socket.socket]:
    assert ep.host is not None
    assert ep.port is not None
    sock = socket.socket(family(ep.host), socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if source is not None:
            sock.bind(source)
        sock.connect((ep.host, ep.port))
        yield sock
    finally:
        sock.close()


def udp_send(sock: socket.socket, payload: bytes) -> None:
    """send() itself: a loop's sock_sendall may skip an empty payload, and the empty
    datagram is RFC 868's request. A UDP send on loopback does not block."""
    sock.send(payload)


async def udp_ask(sock: socket.socket, payload: bytes) -> bytes:
    udp_send(sock, payload)
    async with asyncio.timeout(TIMEOUT):
        return await asyncio.get_running_loop().sock_recv(sock, 65536)


def assert_nothing_waiting(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.recv(65536)


async def udp_barrier(ep: Endpoint) -> None:
    """A daytime round trip on the same server socket: everything sent before it was handled."""
    async with udp_socket(ep) as sock:
        assert DAYTIME.fullmatch(await udp_ask(sock, b"x" * 64))


# -- each service on every transport and family ------------------------------------


@pytest.mark.udp_io
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_every_service_over_tcp_udp_and_unix(arun: Run, host: str, unix_dir: str) -> None:
    async def main() -> None:
        async with make_server(host=host, unix=unix_dir) as server:
            for transport in ("tcp", "unix"):
                ep = lambda name, t=transport: server.address(name, t)  # noqa: E731
                # daytime, qotd, time: one reply, then the server closes.
                assert DAYTIME.fullmatch(await read_to_close(ep("daytime")))
                assert await read_to_close(ep("qotd")) in default_quotes()
                raw = await read_to_close(ep("time"))
                assert abs(decode_time(raw, near=time.time()) - time.time()) < 5
                # discard: reads everything, sends nothing, closes after our FIN.
                reader, writer = await open_stream(ep("discard"))
                writer.write(b"z" * 1_000_000)
                await writer.drain()
                writer.write_eof()
                assert await reader.read() == b""
                writer.close()
                # chargen: the exact pattern, across many reads.
                reader, writer = await open_stream(ep("chargen"))
                got = await reader.readexactly(100_000)
                assert got == pattern(0, 100_000)
                # The "rude abort" RFC 864 tells the server to expect: close with
                # data unread (the kernel answers the next segment with RST).
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                # sum: pipelined lines, replies in order, connection stays open.
                reader, writer = await open_stream(ep("sum"))
                writer.write(b"2 3\n0.1 0.2\r\n1.50 1.50\nx 1\n")
                await writer.drain()
                replies = [await reader.readline() for _ in range(4)]
                assert replies == [b"5\n", b"0.3\n", b"3.00\n", b"ERR not a number: x\n"]
                writer.write(b"1e3 1\n")
                assert await reader.readline() == b"1001\n"
                writer.write_eof()
                assert await reader.read() == b""
                writer.close()
            udp = lambda name: server.address(name, "udp")  # noqa: E731
            async with udp_socket(udp("daytime")) as sock:
                assert DAYTIME.fullmatch(await udp_ask(sock, b""))
            async with udp_socket(udp("qotd")) as sock:
                assert await udp_ask(sock, b"") in default_quotes()
            async with udp_socket(udp("time")) as sock:
                raw = await udp_ask(sock, b"")  # RFC 868: an empty datagram
                assert abs(decode_time(raw, near=time.time()) - time.time()) < 5
            async with udp_socket(udp("chargen")) as sock:
                for _ in range(20):
                    reply = await udp_ask(sock, b"")
                    assert len(reply) <= MAX_UDP_REPLY
                    assert reply == pattern(0, len(reply))
            async with udp_socket(udp("sum")) as sock:
                assert await udp_ask(sock, b"99999999999999999999 1") == b"100000000000000000000\n"
                assert await udp_ask(sock, b"1e-3 1\n") == b"1.001\n"
            before = server.statistics()
            async with udp_socket(udp("discard")) as sock:
                udp_send(sock, b"into the void")
                await udp_barrier(udp("daytime"))
                assert_nothing_waiting(sock)
            after = server.statistics()
            assert after.datagrams_received == before.datagrams_received + 2
            assert after.datagrams_sent == before.datagrams_sent + 1  # the barrier's reply only

    arun(main)


def test_clients_over_every_transport(arun: Run, unix_dir: str) -> None:
    async def main() -> None:
        async with make_server(unix=unix_dir) as server:
            for transport in ("tcp", "udp", "unix"):
                udp = transport == "udp"
                ep = lambda name, t=transport: server.address(name, t)  # noqa: E731
                assert DAYTIME.fullmatch((await fetch("daytime", ep("daytime"), udp=udp)).data)
                assert (await fetch("qotd", ep("qotd"), udp=udp)).data in default_quotes()
                result = await query_time(ep("time"), udp=udp)
                assert abs(result.offset) < 2
                received = bytearray()
                got = await chargen(ep("chargen"), received.extend, lines=3, udp=udp)
                assert bytes(received) == pattern(0, len(received))
                if not udp:
                    assert got.lines == 3
                    assert len(received) == 3 * 74
                got = await chargen(ep("chargen"), lambda _: None, nbytes=10, udp=udp)
                assert got.bytes_received <= 10
                assert await sum_numbers("0.1", "0.2", ep("sum"), udp=udp) == "0.3"
                replies: list[str] = []

                async def lines() -> AsyncIterator[bytes]:
                    yield b"1 2\n3 "
                    yield b"4\n\n5 5"

                session = await sum_lines(ep("sum"), lines(), replies.append, udp=udp)
                assert replies == ["3", "7", "ERR expected two numbers", "10"]
                assert session.requests == 4
                if not udp:
                    sent = await discard(ep("discard"), repeat_bytes(3_000_000))
                    assert sent.bytes_sent == 3_000_000
                    assert sent.confirmed
                else:
                    sent = await discard(ep("discard"), repeat_bytes(10_000), udp=True)
                    assert sent.datagrams == 8
                    assert not sent.confirmed

    arun(main)


@pytest.mark.udp_io
def test_udp_client_times_out_when_the_server_does_not_answer(arun: Run) -> None:
    async def main() -> None:
        async with make_server(["time"], limits=Limits(udp_loopback_exempt=False)) as server:
            # An empty request leaves a 0-byte budget: the 4-byte time cannot be sent.
            with pytest.raises(TimedOut, match="chose not to answer"):
                await query_time(
                    server.address("time", "udp"), udp=True, request_size=0, timeout=0.5
                )
            assert server.statistics().replies_over_budget == 1

    arun(main)


# -- TCP limits (the runtime's), proven with these services -------------------------


async def sum_client(ep: Endpoint, source: str | None = None) -> tuple[Any, Any]:
    if source is None:
        reader, writer = await open_stream(ep)
    else:
        reader, writer = await asyncio.open_connection(ep.host, ep.port, local_addr=(source, 0))
    writer.write(b"1 1\n")
    assert await reader.readline() == b"2\n"
    return reader, writer


async def assert_refused(ep: Endpoint, source: str | None = None) -> None:
    """Accepted and closed at once: EOF (or a reset) before any reply."""
    local = None if source is None else (source, 0)
    reader, writer = await asyncio.open_connection(ep.host, ep.port, local_addr=local)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(b"1 1\n")
            assert await reader.read() == b""
    finally:
        writer.close()


def test_connection_cap_refuses_cleanly_and_existing_clients_keep_working(arun: Run) -> None:
    async def main() -> None:
        async with make_server(["sum"], limits=Limits(max_connections=2)) as server:
            ep = server.address("sum", "tcp")
            first = await sum_client(ep)
            second = await sum_client(ep)
            await assert_refused(ep)
            assert server.statistics().connections_refused == 1
            for reader, writer in (first, second):
                writer.write(b"2 2\n")
                assert await reader.readline() == b"4\n"
                writer.close()
            await first[1].wait_closed()
            await second[1].wait_closed()

    arun(main)


def test_per_source_cap_refuses_one_source_and_serves_another(arun: Run) -> None:
    async def main() -> None:
        async with make_server(["sum"], limits=Limits(max_connections_per_source=1)) as server:
            ep = server.address("sum", "tcp")
            held = await sum_client(ep, "127.0.0.1")
            await assert_refused(ep, "127.0.0.1")
            other = await sum_client(ep, "127.0.0.2")
            assert server.statistics().connections_refused == 1
            for _, writer in (held, other):
                writer.close()

    arun(main)


def test_idle_timeout_closes_a_silent_client(arun: Run) -> None:
    """Silent after one request at virtual time 0: the first check (IDLE/4) sees that
    progress, so the close comes IDLE after it, at exactly 1.25 x IDLE (5 checks)."""
    idle = 300.0
    check = idle / IDLE_CHECKS
    clock = ManualTimers()

    async def main() -> None:
        limits = Limits(idle_timeout=idle, shutdown_grace=0)
        async with make_server(["sum"], limits=limits, timers=clock) as server:
            reader, writer = await sum_client(server.address("sum", "tcp"))
            for _ in range(IDLE_CHECKS):
                assert clock.advance(check) == 1
                assert server.statistics().connections_timed_out == 0
            assert clock.advance(check) == 1
            assert clock.now() == 1.25 * idle
            assert server.statistics().connections_timed_out == 1
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # FIN, then linger
            writer.close()
            assert server.statistics().connections_aborted == 0

    arun(main)


def test_sum_line_limit_answers_then_closes(arun: Run, unix_dir: str) -> None:
    async def main() -> None:
        async with make_server(["sum"], unix=os.path.join(unix_dir, "sum.sock")) as server:
            for transport in ("tcp", "unix"):
                reader, writer = await open_stream(server.address("sum", transport))
                writer.write(b"2 3\n" + b"1" * 8192 + b"\n" + b"1" * 8193 + b"\n4 5\n")
                await writer.drain()
                assert await reader.read() == b"5\nERR expected two numbers\nERR line too long\n"
                writer.close()
            async with udp_socket(server.address("sum", "udp")) as sock:
                assert await udp_ask(sock, b"1" * 8193) == b"ERR line too long\n"

    arun(main)


def test_a_client_that_never_reads_cannot_grow_our_memory(arun: Run) -> None:
    """Flow control: pipelined requests stop being read once replies back up.

    No wall-clock "sending blocked for a second" check: the idle watch, on
    virtual time, is the witness. Time moves one idle check per round of real
    I/O while the client keeps sending; the server can only time the client
    out once it read nothing for a whole IDLE, that is once it stopped reading
    a client that still had megabytes to send.
    """
    idle = 300.0
    clock = ManualTimers()

    async def main() -> None:
        limits = Limits(
            write_buffer_high=64 * 1024,
            write_buffer_low=16 * 1024,
            idle_timeout=idle,
            shutdown_grace=0,
        )
        async with make_server(["sum"], limits=limits, timers=clock) as server:
            ep = server.address("sum", "tcp")
            sock = socket.create_connection((ep.host, ep.port), timeout=TIMEOUT)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            loop = asyncio.get_running_loop()
            chunk = b"\n" * 65536  # each line is answered with 25 bytes: a 25x amplifier
            sent = 0

            async def send_until_cut() -> None:
                nonlocal sent
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    while sent < 256 * 1024 * 1024:
                        await loop.sock_sendall(sock, chunk)
                        sent += len(chunk)

            sender = asyncio.create_task(send_until_cut())
            try:
                for _ in range(1000):  # a count, not a timer: ~10 suffice
                    if sender.done() or server.statistics().connections_timed_out:
                        break
                    clock.advance(idle / IDLE_CHECKS)
                    await loop_turns(1)
                stats = server.statistics()
            finally:
                sender.cancel()
                await asyncio.wait({sender})
                sock.close()
            assert sent < 256 * 1024 * 1024, "the server read everything we sent"
            assert stats.connections_timed_out == 1, "the server kept reading"
            assert stats.connections_aborted == 1  # its replies could never be delivered
            assert stats.bytes_received < 64 * 1024 * 1024

    arun(main)


# -- UDP guards -----------------------------------------------------------------------


@pytest.mark.udp_io
def test_datagram_from_source_port_19_gets_no_reply(arun: Run) -> None:
    async def main() -> None:
        async with make_server(["daytime", "chargen"]) as server:
            ep = server.address("chargen", "udp")
            try:
                attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                attacker.bind(("127.0.0.1", 19))
            except PermissionError:
                attacker.close()
                pytest.skip("binding source port 19 needs root or CAP_NET_BIND_SERVICE here")
            except OSError as exc:
                attacker.close()
                pytest.skip(f"port 19 is not free on this machine: {exc}")
            with attacker:
                attacker.setblocking(False)
                attacker.connect((ep.host, ep.port))
                udp_send(attacker, b"chargen, talk to me")
                async with udp_socket(ep) as sock:  # the barrier: same server socket
                    assert len(await udp_ask(sock, b"x" * 512)) <= MAX_UDP_REPLY
                assert_nothing_waiting(attacker)
            stats = server.statistics()
            assert stats.datagrams_refused == 1
            assert "1 datagrams refused" in stats.summary()

    arun(main)


@pytest.mark.udp_io
def test_the_guard_learns_every_port_we_answer_udp_on(arun: Run) -> None:
    """The loop guard without privileges: a datagram "from" our own chargen's port
    (what a spoofed echo-chargen loop looks like) would be refused. We cannot bind
    that port a second time to send from it, so we ask the server's guard."""

    async def main() -> None:
        limits = Limits()
        guard = UdpGuard(limits)
        bindings = plan_bindings(["chargen", "daytime"], ports={"chargen": 0, "daytime": 0})
        async with Server(bindings, limits=limits, udp_policy=guard) as server:
            for name in ("chargen", "daytime"):
                port = server.address(name, "udp").port
                assert port is not None
                assert port >= 1024
                admission = guard.admit(("127.0.0.1", port), 100)
                assert admission.counter == "datagrams_refused"
                assert "our UDP services" in admission.reason

    arun(main)


@pytest.mark.udp_io
def test_rate_limit_stops_a_flood_from_one_source_while_another_is_served(arun: Run) -> None:
    """On virtual time the bucket refills only when the test says so: exactly the burst
    is answered, and exactly one more reply once 1/udp_rate seconds have passed."""
    clock = ManualTimers()

    async def main() -> None:
        limits = Limits(udp_rate=0.01, udp_burst=5, udp_loopback_exempt=False)
        async with make_server(["daytime"], limits=limits, timers=clock) as server:
            ep = server.address("daytime", "udp")

            async def flood_replies(count: int) -> int:
                async with udp_socket(ep, source=("127.0.0.1", 0)) as flood:
                    for _ in range(count):
                        udp_send(flood, b"x" * 64)
                    async with udp_socket(ep, source=("127.0.0.2", 0)) as other:
                        assert DAYTIME.fullmatch(await udp_ask(other, b"x" * 64))
                    replies = 0
                    while True:
                        try:
                            flood.recv(65536)
                        except BlockingIOError:
                            return replies
                        replies += 1

            assert await flood_replies(50) == 5
            stats = server.statistics()
            assert stats.datagrams_rate_limited == 45
            assert "45 datagrams rate limited" in stats.summary()
            clock.advance(1 / 0.01 - 1.0)  # 99 s: 0.99 of a token
            assert await flood_replies(10) == 0
            clock.advance(1.0)  # 100 s since the burst: one token
            assert await flood_replies(10) == 1
            assert server.statistics().datagrams_rate_limited == 45 + 10 + 9

    arun(main)


@pytest.mark.udp_io
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_replies_never_exceed_the_amplification_budget(arun: Run, host: str) -> None:
    async def main() -> None:
        limits = Limits(udp_loopback_exempt=False, udp_rate=None)
        async with make_server(
            ["qotd", "chargen", "time", "daytime"], host=host, limits=limits
        ) as server:
            udp = lambda name: server.address(name, "udp")  # noqa: E731
            async with udp_socket(udp("chargen")) as sock:
                for size in (1, 10, 74, 100, 300):
                    reply = await udp_ask(sock, b"r" * size)
                    assert len(reply) <= size
                    assert reply == pattern(0, len(reply))
            async with udp_socket(udp("qotd")) as sock:
                reply = await udp_ask(sock, b"q" * 20)
                assert len(reply) <= 20
                assert any(q.startswith(reply) for q in default_quotes())
                assert await udp_ask(sock, b"q" * 600) in default_quotes()
            async with udp_socket(udp("time")) as sock:
                udp_send(sock, b"")  # 0-byte budget
                assert len(await udp_ask(sock, b"\0" * 4)) == 4
                assert_nothing_waiting(sock)
            stats = server.statistics()
            assert stats.replies_trimmed >= 1  # the qotd reply at least
            assert stats.replies_over_budget == 1
            assert stats.bytes_sent <= stats.bytes_received

    arun(main)


@pytest.mark.udp_io
def test_loopback_sources_get_full_rfc_replies_by_default(arun: Run) -> None:
    async def main() -> None:
        async with make_server(["qotd", "time"]) as server:
            async with udp_socket(server.address("qotd", "udp")) as sock:
                assert await udp_ask(sock, b"") in default_quotes()
            async with udp_socket(server.address("time", "udp")) as sock:
                assert len(await udp_ask(sock, b"")) == 4
            assert server.statistics().replies_trimmed == 0

    arun(main)


def test_unix_socket_paths_are_removed_after_shutdown(arun: Run, unix_dir: str) -> None:
    async def main() -> None:
        async with make_server(["sum", "daytime"], unix=unix_dir):
            assert sorted(os.listdir(unix_dir)) == ["daytime.sock", "sum.sock"]
        assert os.listdir(unix_dir) == []

    arun(main)


# -- review fixes: a closed output, a discard that cannot finish, odd sum servers ---


def _closed_output(_data: bytes) -> None:
    raise BrokenPipeError(32, "Broken pipe")


def test_a_sink_that_raises_broken_pipe_is_output_closed_not_a_lost_connection(
    arun: Run, unix_dir: str
) -> None:
    async def main() -> None:
        async with make_server(["chargen", "sum"], unix=unix_dir) as server:
            for transport in ("tcp", "udp", "unix"):
                ep = server.address("chargen", transport)
                with pytest.raises(OutputClosed):
                    await chargen(ep, _closed_output, lines=2, udp=transport == "udp")

            async def two() -> AsyncIterator[bytes]:
                yield b"1 2\n3 4\n"

            for transport in ("tcp", "udp"):
                with pytest.raises(OutputClosed):
                    await sum_lines(
                        server.address("sum", transport),
                        two(),
                        lambda _reply: _closed_output(b""),
                        udp=transport == "udp",
                    )

    arun(main)


def test_discard_gives_up_when_the_server_stops_reading(arun: Run) -> None:
    async def main() -> None:
        # Listening but never accepting: the kernel buffers some megabytes, then
        # nothing moves and nothing comes back.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            ep = Endpoint(host="127.0.0.1", port=listener.getsockname()[1])
            started = time.monotonic()
            with pytest.raises(TimedOut, match="the server stopped reading"):
                await discard(ep, repeat_bytes(200_000_000), timeout=0.5)
            assert time.monotonic() - started < TIMEOUT / 2

    arun(main)


@pytest.mark.parametrize("service", ["echo", "daytime", "chargen"])
def test_discard_to_a_server_that_sends_is_a_protocol_error(arun: Run, service: str) -> None:
    async def main() -> None:
        async with make_server([service]) as server:
            with pytest.raises(RemoteProtocolError, match="a discard server never sends"):
                await discard(server.address(service, "tcp"), repeat_bytes(200_000_000))

    arun(main)


async def _serve_once(answer: Callable[[bytes], bytes]) -> tuple[asyncio.Server, Endpoint]:
    """A TCP server that reads to EOF and writes ``answer(request)``, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(await reader.read()))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, Endpoint(host="127.0.0.1", port=srv.sockets[0].getsockname()[1])


@pytest.mark.parametrize(
    "reply", [b"hello\n", b"5\n6 7\n", b"\x1b[2J\n", b"ERR\n", b"1e3\n", b"5.\n", b" 5\n"]
)
def test_sum_rejects_replies_that_are_not_sum_replies(arun: Run, reply: bytes) -> None:
    async def main() -> None:
        srv, ep = await _serve_once(lambda _request: reply)
        async with srv:
            with pytest.raises(RemoteProtocolError, match="did not answer like a sum server"):
                await sum_numbers("5", "6", ep)

    arun(main)


def test_sum_counts_requests_the_server_left_unanswered(arun: Run) -> None:
    async def main() -> None:
        srv, ep = await _serve_once(lambda _request: b"3\nERR no more\n")
        async with srv:

            async def four() -> AsyncIterator[bytes]:
                yield b"1 2\n3 4\n5 6\n7 8\n"

            replies: list[str] = []
            with pytest.raises(ConnectionLost, match="2 of 4 requests unanswered"):
                await sum_lines(ep, four(), replies.append)
            assert replies == ["3", "ERR no more"]

    arun(main)


def test_sum_lines_times_out_when_the_server_stops_reading(arun: Run) -> None:
    # The kernel completes the handshake, but nobody ever reads: once the
    # socket buffers fill, sending must give up after the timeout, not hang.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    async def endless() -> AsyncIterator[bytes]:
        line = b"1 " + b"2" * (1024 * 1024) + b"\n"
        for _ in range(256):  # 256 MiB at most, far beyond any loopback buffer
            yield line

    async def main() -> None:
        with pytest.raises(TimedOut, match=r"took none of request \d+ for 0.5 s"):
            await sum_lines(Endpoint("127.0.0.1", port), endless(), print, timeout=0.5)

    try:
        arun(main)
    finally:
        listener.close()
