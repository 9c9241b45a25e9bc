"""How the runtime ends connections: lingering close, FIN seen under back-pressure,
and the UDP guards on by default."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit import Binding, Limits, Server, ServiceInfo
from socketkit.runtime import native_mirror
from tests.support import TIMEOUT, ReplyThenClose

Run = Callable[[Callable[[], Awaitable[Any]]], Any]


REPLY = ServiceInfo("reply", "answer and close", None, None, ReplyThenClose, None, 10996)


def test_reply_survives_a_client_that_keeps_sending(arun: Run) -> None:
    """Closing with unread input would RST and could destroy the reply; we linger instead."""

    async def main() -> None:
        async with Server([Binding(REPLY, "tcp", "127.0.0.1", 0)]) as server:
            ep = server.address("reply", "tcp")
            loop = asyncio.get_running_loop()
            for _ in range(5):
                sock = socket.socket()
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (ep.host, ep.port))
                    # The client talks after the server has finished: classic RST bait.
                    await loop.sock_sendall(sock, b"are you there?\n" * 4096)
                    reply = bytearray()
                    while chunk := await loop.sock_recv(sock, 4096):
                        reply += chunk
                    assert bytes(reply) == b"the answer\r\n"
                finally:
                    sock.close()

    arun(main)


def test_chargen_notices_fin_while_the_client_is_slow(arun: Run) -> None:
    """An endless sender under back-pressure must still see the client's FIN and stop."""

    async def main() -> None:
        limits = Limits(write_buffer_high=16 * 1024, write_buffer_low=4 * 1024)
        async with Server([Binding("chargen", "tcp", "127.0.0.1", 0)], limits=limits) as server:
            ep = server.address("chargen", "tcp")
            reader, writer = await asyncio.open_connection(ep.host, ep.port)
            writer.write_eof()
            total = 0
            cap = 256 * 1024 * 1024  # without the fix, chargen would never stop
            while total < cap:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                total += len(chunk)
            assert total < cap, "chargen kept sending after the client's FIN"
            writer.close()
            await writer.wait_closed()

    arun(main)


@pytest.mark.udp_io
def test_udp_guards_are_on_without_asking(arun: Run) -> None:
    """A library user who passes no policy still gets the reply budget."""

    async def main() -> None:
        limits = Limits(udp_loopback_exempt=False)  # act as if the source could be spoofed
        async with Server([Binding("chargen", "udp", "127.0.0.1", 0)], limits=limits) as server:
            ep = server.address("chargen", "udp")
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect((ep.host, ep.port))
                await loop.sock_sendall(sock, b"x" * 10)
                async with asyncio.timeout(TIMEOUT):
                    reply = await loop.sock_recv(sock, 2048)
            finally:
                sock.close()
            assert len(reply) <= 10, "a 10-byte request may get at most 10 bytes back"

    arun(main)


@pytest.mark.parametrize("mirror", ["native", "transport"])
def test_a_connection_cancelled_before_it_started_is_released_and_closed(
    arun: Run, mirror: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener closes in the same loop turn that accepted: its connect task never ran."""
    if mirror == "native" and not native_mirror.available():
        pytest.skip("the native relay was not built (no C compiler at install time)")
    monkeypatch.setenv("SOCKETKIT_MIRROR", mirror)

    async def main() -> None:
        async with Server([Binding("echo", "tcp", "127.0.0.1", 0)]) as server:
            ep = server.address("echo", "tcp")
            listener = server._listeners[0]
            loop = asyncio.get_running_loop()
            sock = socket.socket()
            sock.setblocking(False)
            assert listener.sock is not None
            loop.remove_reader(listener.sock.fileno())  # the test accepts, not the loop
            try:
                await loop.sock_connect(sock, (ep.host, ep.port))  # queued for accept()
                listener._on_readable()  # accept now, as the loop would
                started = list(listener._pending)
                assert len(started) == 1 and server.statistics().connections_active == 1
                listener.close()  # cancels the connect task before its first step
                await asyncio.wait_for(asyncio.gather(*started, return_exceptions=True), TIMEOUT)
                assert server.statistics().connections_active == 0
                # The server's socket was closed, not left to the garbage collector.
                assert await asyncio.wait_for(loop.sock_recv(sock, 10), TIMEOUT) == b""
            finally:
                sock.close()

    arun(main)
