"""SO_REUSEPORT port sharing, the ground ``serve --workers`` stands on.

A lead server binds with SO_REUSEPORT but still refuses a port somebody else
holds; a joining server binds the lead's exact sockets and the kernel spreads
clients over both.
"""

from __future__ import annotations

import asyncio
import errno
import multiprocessing.context
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit import Binding, Server
from socketkit.errors import AddressInUse, WorkerFailed
from socketkit.runtime.stats import ServerStatistics
from socketkit.runtime.workers import WorkerPool, combine_statistics

Run = Callable[[Callable[[], Awaitable[Any]]], Any]

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT"), reason="SO_REUSEPORT is Linux and BSD only"
)


def reuseport_socket(kind: int = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_the_lead_refuses_a_port_another_reuseport_socket_holds(arun: Run, kind: int) -> None:
    # Without the probe bind, SO_REUSEPORT would let us join this socket's port
    # and silently take half of its traffic.
    other = reuseport_socket(kind)
    if kind == socket.SOCK_STREAM:
        other.listen()
    port = other.getsockname()[1]
    transport = "tcp" if kind == socket.SOCK_STREAM else "udp"

    async def main() -> None:
        server = Server([Binding("echo", transport, "127.0.0.1", port)], port_sharing="lead")
        with pytest.raises(AddressInUse, match=f"127.0.0.1:{port}"):
            await server.start()

    try:
        arun(main)
    finally:
        other.close()


def test_a_joining_server_shares_the_leads_ports_and_both_serve(arun: Run) -> None:
    async def main() -> tuple[ServerStatistics, ServerStatistics]:
        lead = Server(
            [Binding("echo", "tcp", "127.0.0.1", 0), Binding("echo", "udp", "127.0.0.1", 0)],
            port_sharing="lead",
        )
        async with lead:
            concrete = lead.concrete_bindings()
            port = lead.address("echo", "tcp").port
            assert [(b.transport, b.host, b.port) for b in concrete] == [
                ("tcp", "127.0.0.1", port),
                ("udp", "127.0.0.1", port),
            ]
            async with Server(concrete, port_sharing="join") as joined:
                assert joined.address("echo", "udp").port == port
                # 48 connections from 48 source ports: the kernel's hash gives
                # both servers some (all to one: a chance of 2**-47).
                for i in range(48):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"n%d" % i)
                    writer.write_eof()
                    assert await reader.read() == b"n%d" % i
                    writer.close()
                    await writer.wait_closed()
                return lead.statistics(), joined.statistics()

    lead_stats, joined_stats = arun(main)
    assert lead_stats.connections_served + joined_stats.connections_served == 48
    assert lead_stats.connections_served > 0
    assert joined_stats.connections_served > 0


def test_a_dual_stack_lead_passes_its_choice_to_workers(arun: Run) -> None:
    async def main() -> None:
        async with Server([Binding("echo", "tcp", "::", 0)], port_sharing="lead") as lead:
            (concrete,) = lead.concrete_bindings()
            assert concrete.host == "::"
            assert concrete.v6only is False
            async with Server([concrete], port_sharing="join") as joined:
                assert joined.endpoints[0].family == "IPv4+IPv6"

    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 on this machine")
    arun(main)


def test_without_sharing_a_second_server_is_refused(arun: Run) -> None:
    async def main() -> None:
        async with Server([Binding("echo", "tcp", "127.0.0.1", 0)]) as first:
            port = first.address("echo", "tcp").port
            second = Server([Binding("echo", "tcp", "127.0.0.1", port)], port_sharing="join")
            with pytest.raises(AddressInUse):
                await second.start()

    arun(main)


def test_combine_statistics_adds_every_counter() -> None:
    a = ServerStatistics(connections_served=3, bytes_sent=10, datagrams_refused=1)
    b = ServerStatistics(connections_served=4, bytes_sent=5, accept_errors=2)
    total = combine_statistics([a, b])
    assert total == ServerStatistics(
        connections_served=7, bytes_sent=15, datagrams_refused=1, accept_errors=2
    )
    assert combine_statistics([]) == ServerStatistics()


def test_a_worker_that_cannot_be_started_is_one_clear_error(
    arun: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: object) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", refuse)

    async def main() -> None:
        async with Server([Binding("echo", "tcp", "127.0.0.1", 0)], port_sharing="lead") as lead:
            pool = WorkerPool(lead, 3)
            with pytest.raises(WorkerFailed, match="cannot start serve worker 1: Resource"):
                await pool.start()
            await pool.wait_stopped()
            assert pool.pids == []

    arun(main)
