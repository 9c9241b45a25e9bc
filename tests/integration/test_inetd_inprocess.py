"""``Server.serve_inetd`` in-process: the one connection or datagram socket inetd passes.

The real xinetd drives the same path from outside (tests/integration/test_ops_serve.py);
here the sockets are made by the test, so both loops and the statistics are checked exactly.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from socketkit import Limits, Server
from socketkit.protocols import get_service
from socketkit.runtime.activation import InetdSocket
from tests.support import TIMEOUT

Run = Any


async def _exchange(client: socket.socket, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(client, data)
    got = b""
    async with asyncio.timeout(TIMEOUT):
        while len(got) < len(data):
            chunk = await loop.sock_recv(client, 4096)
            assert chunk, "closed before the echo came back"
            got += chunk
    return got


def _connected_pair(family: socket.AddressFamily) -> tuple[socket.socket, socket.socket, Any]:
    """A client and the server side of one accepted connection, as inetd would pass it."""
    if family == socket.AF_UNIX:
        server_side, client = socket.socketpair()
        return client, server_side, ""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        server_side, peer = listener.accept()
    return client, server_side, peer


def test_nowait_serves_the_one_connection_over_tcp_and_unix(arun: Run) -> None:
    for family in (socket.AF_INET, socket.AF_UNIX):

        async def main(family: socket.AddressFamily = family) -> None:
            client, server_side, peer = _connected_pair(family)
            with client:
                client.setblocking(False)
                server = Server([], limits=Limits(idle_timeout=None))
                found = InetdSocket(server_side, "nowait", family, socket.SOCK_STREAM, peer)
                await server.serve_inetd(get_service("echo"), found)
                assert server.open_connections == 1
                assert await _exchange(client, b"via inetd") == b"via inetd"
                client.shutdown(socket.SHUT_WR)
                assert await server.wait_connections_closed(TIMEOUT)
            stats = await server.shutdown()
            assert (stats.connections_served, stats.bytes_received, stats.bytes_sent) == (1, 9, 9)
            transport = "unix" if family == socket.AF_UNIX else "tcp"
            assert [ep.transport for ep in server.endpoints] == [transport]

        arun(main)


@pytest.mark.udp_io
def test_wait_serves_the_datagram_socket(arun: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        server = Server([], limits=Limits())
        found = InetdSocket(udp, "wait", socket.AF_INET, socket.SOCK_DGRAM, None)
        await server.serve_inetd(get_service("echo"), found)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            client.connect(udp.getsockname())  # uvloop has no sock_sendto: a connected socket
            await loop.sock_sendall(client, b"datagram")
            async with asyncio.timeout(TIMEOUT):
                reply = await loop.sock_recv(client, 64)
        assert reply == b"datagram"
        stats = await server.shutdown()
        assert (stats.datagrams_received, stats.datagrams_sent) == (1, 1)
        assert server.endpoints[0].transport == "udp"

    arun(main)
