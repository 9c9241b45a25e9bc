"""runtime/mirror.py and native_mirror.py: the echo fast paths keep the stream adapter's semantics.

Every test runs on both mirrors (``mirror_kind``: the C relay of
native_mirror.py and the transport mirror of mirror.py). The first tests
drive a mirror connection directly on one end of a connected pair, with a stand-in ``ConnectionHost`` whose deadlines run on
``ManualTimers``; the last ones go through a real ``Server``, which picks the
mirror for echo with the default ``read_chunk``. Everything runs under
asyncio and uvloop, every wait bounded by TIMEOUT, loopback and port 0 only.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import socketkit.runtime.listener as listener_module
from socketkit.runtime import (
    Binding,
    Limits,
    ManualTimers,
    Server,
    Timers,
    native_mirror,
    serve_in_thread,
)
from socketkit.runtime.connection import Connection
from socketkit.runtime.mirror import MIRROR_MIN_CHUNK, MirrorConnection
from socketkit.runtime.native_mirror import NativeMirrorConnection
from socketkit.runtime.stats import Counters
from tests.support import TIMEOUT, client, recv_exactly

Run = Callable[[Callable[[], Awaitable[Any]]], Any]
Mirror = MirrorConnection | NativeMirrorConnection


@pytest.fixture(autouse=True, params=["native", "transport"])
def mirror_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which mirror the test runs (``$SOCKETKIT_MIRROR``, as the listener reads it)."""
    kind: str = request.param
    if kind == "native" and not native_mirror.available():
        pytest.skip("the native relay was not built (no C compiler at install time)")
    monkeypatch.setenv(native_mirror.ENV, kind)
    return kind


class Host:
    """Stands in for the listener: a ``ConnectionHost`` that records closed connections."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.counters = Counters()
        self.label = "echo/tcp test"
        self.manual = ManualTimers()
        self.timers: Timers = self.manual
        self.narrate = False
        self.read_view = memoryview(bytearray(self.limits.read_chunk))
        self.closed: list[Connection] = []

    def connection_closed(self, conn: Connection) -> None:
        self.closed.append(conn)


async def mirror_pair(host: Host, family: int = socket.AF_INET) -> tuple[Mirror, socket.socket]:
    """A mirror on one end of a connected pair, our client socket on the other."""
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
    ours.setblocking(False)
    kind = NativeMirrorConnection if native_mirror.chosen_mirror() == "native" else MirrorConnection
    mirror = kind(host, "peer", "source")
    await asyncio.wait_for(mirror.attach(asyncio.get_running_loop(), ours), TIMEOUT)
    return mirror, theirs


async def send_and_collect(sock: socket.socket, payload: bytes) -> bytes:
    """Send everything while reading concurrently; half-close; read until EOF."""
    loop = asyncio.get_running_loop()

    async def sender() -> None:
        await loop.sock_sendall(sock, payload)
        sock.shutdown(socket.SHUT_WR)

    task = asyncio.ensure_future(sender())
    received = bytearray()
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), TIMEOUT):
        received += chunk
    await asyncio.wait_for(task, TIMEOUT)
    return bytes(received)


BLOCK = b"x" * 65536
MAX_BLOCKS = 4096


async def push_until_stalled(sock: socket.socket, stalled: Callable[[], bool]) -> int:
    """Send blocks until our send buffer is full *and* the server has stopped reading.

    Between refused sends the loop gets one turn (``sleep(0)``, not a timed
    wait): the server either reads more or backs up and stops, which
    ``stalled`` tells. Bounded by ``MAX_BLOCKS`` blocks and the test's timeout.
    """
    pushed = 0
    while pushed < MAX_BLOCKS * len(BLOCK):
        try:
            pushed += sock.send(BLOCK)
        except BlockingIOError:
            if stalled():
                break
            await asyncio.sleep(0)
    return pushed


# -- the connection on its own --------------------------------------------------------


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX])
def test_every_byte_comes_back_then_the_mirror_closes(arun: Run, family: int) -> None:
    host = Host()
    payload = os.urandom(3 * 1024 * 1024 + 17)

    async def main() -> tuple[bytes, Mirror]:
        mirror, sock = await mirror_pair(host, family)
        try:
            got = await send_and_collect(sock, payload)
            await asyncio.wait_for(mirror.closed, TIMEOUT)
        finally:
            sock.close()
        return got, mirror

    got, mirror = arun(main)
    assert got == payload
    assert host.closed == [mirror]
    assert host.counters.bytes_received == host.counters.bytes_sent == len(payload)
    assert mirror.bytes_in == mirror.bytes_out == len(payload)


def test_bytes_are_counted_lazily_and_report_brings_them_in(arun: Run) -> None:
    host = Host()

    async def main() -> None:
        mirror, sock = await mirror_pair(host)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(sock, b"hello")
            assert await asyncio.wait_for(loop.sock_recv(sock, 10), TIMEOUT) == b"hello"
            assert mirror.bytes_in == mirror.bytes_out == 5
            assert host.counters.bytes_received == 0  # not per chunk: on report()
            mirror.report()
            mirror.report()  # nothing new: nothing counted twice
            assert host.counters.bytes_received == host.counters.bytes_sent == 5
            mirror.close()
            await asyncio.wait_for(mirror.closed, TIMEOUT)
        finally:
            sock.close()

    arun(main)
    assert host.counters.bytes_received == host.counters.bytes_sent == 5


def test_a_small_read_chunk_changes_nothing_for_the_mirror(arun: Run) -> None:
    """The transport reads what it reads; the listener only avoids the mirror then."""
    host = Host(Limits(read_chunk=16))

    async def main() -> bytes:
        _mirror, sock = await mirror_pair(host)
        try:
            return await send_and_collect(sock, b"0123456789" * 100)
        finally:
            sock.close()

    assert arun(main) == b"0123456789" * 100


def test_a_client_that_never_reads_is_not_read_from(arun: Run) -> None:
    """Flow control: once our replies back up, we stop taking the client's bytes."""
    host = Host(Limits(write_buffer_high=64 * 1024, write_buffer_low=16 * 1024))

    async def main() -> int:
        mirror, sock = await mirror_pair(host)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        loop = asyncio.get_running_loop()
        try:
            # Reading pauses once the write buffer is above write_buffer_high.
            pushed = await push_until_stalled(
                sock, lambda: mirror.pending_output() > host.limits.write_buffer_high
            )
            assert mirror.pending_output() > 0
            # Reading really stopped: more offered bytes are not taken, turn after turn.
            taken = mirror.bytes_in
            for _ in range(50):
                try:
                    pushed += sock.send(BLOCK)
                except BlockingIOError:
                    pass
                await asyncio.sleep(0)
            assert mirror.bytes_in == taken
            # Now read everything back: the mirror resumes and nothing was lost.
            sock.shutdown(socket.SHUT_WR)
            received = 0
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), TIMEOUT):
                received += len(chunk)
            assert received == pushed
            await asyncio.wait_for(mirror.closed, TIMEOUT)
        finally:
            sock.close()
        return pushed

    pushed = arun(main)
    assert pushed < MAX_BLOCKS * len(BLOCK)  # the client was stopped long before the bound
    assert host.counters.bytes_sent == pushed


def test_idle_connections_are_closed_and_counted(arun: Run) -> None:
    host = Host(Limits(idle_timeout=4.0))
    timers = host.manual

    async def main() -> bytes:
        mirror, sock = await mirror_pair(host)
        loop = asyncio.get_running_loop()
        try:
            timers.advance(3.0)
            assert not mirror.closed.done()
            await loop.sock_sendall(sock, b"ping")  # progress: the watch starts over
            assert await asyncio.wait_for(loop.sock_recv(sock, 10), TIMEOUT) == b"ping"
            timers.advance(3.0)
            assert not mirror.closed.done()
            timers.advance(4.0 * 1.25)  # closed within 1-1.25 x the timeout of silence
            data = await asyncio.wait_for(loop.sock_recv(sock, 10), TIMEOUT)  # EOF: closed
            await asyncio.wait_for(mirror.closed, TIMEOUT)
        finally:
            sock.close()
        return data

    assert arun(main) == b""
    assert host.counters.connections_timed_out == 1
    assert host.manual.pending == 0  # the idle watch stopped with the connection


def test_abort_and_close_is_graceful(arun: Run, mirror_kind: str) -> None:
    host = Host()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mirror, sock = await mirror_pair(host)
        mirror.abort()
        mirror.abort()
        if mirror_kind == "native":  # the C relay always resets (SO_LINGER 0)
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(loop.sock_recv(sock, 10), TIMEOUT)
        else:
            try:  # a transport's abort may close with FIN (nothing unread) or reset
                assert await asyncio.wait_for(loop.sock_recv(sock, 10), TIMEOUT) == b""
            except ConnectionResetError:
                pass
        await asyncio.wait_for(mirror.closed, TIMEOUT)
        sock.close()
        mirror2, sock2 = await mirror_pair(host)
        mirror2.close()
        assert await asyncio.wait_for(loop.sock_recv(sock2, 10), TIMEOUT) == b""
        await asyncio.wait_for(mirror2.closed, TIMEOUT)
        sock2.close()

    arun(main)
    assert host.counters.connections_aborted == 1
    assert len(host.closed) == 2


def test_close_writes_what_is_pending_then_sends_fin(arun: Run) -> None:
    total = 16 * 1024 * 1024  # more than the kernel buffers both ways hold
    host = Host(Limits(write_buffer_high=2 * total, write_buffer_low=total))

    async def main() -> None:
        mirror, sock = await mirror_pair(host)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        loop = asyncio.get_running_loop()
        try:
            sent = 0
            async with asyncio.timeout(TIMEOUT):  # the mirror reads all; we read nothing
                while sent < total or mirror.bytes_in < total:
                    if sent < total:
                        try:
                            sent += sock.send(BLOCK[: total - sent])
                        except BlockingIOError:
                            pass
                    await asyncio.sleep(0)
            assert mirror.pending_output() > 0  # read, not yet written: nothing unread
            mirror.close()  # so close writes what is pending, then sends FIN (no RST)
            assert not mirror.closed.done()
            received = 0
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), TIMEOUT):
                received += len(chunk)
            assert received == total
            await asyncio.wait_for(mirror.closed, TIMEOUT)
        finally:
            sock.close()

    arun(main)
    assert host.counters.connections_aborted == 0
    assert host.counters.bytes_sent == total
    assert len(host.closed) == 1


def test_stop_reading_takes_no_new_bytes(arun: Run) -> None:
    host = Host()

    async def main() -> Mirror:
        mirror, sock = await mirror_pair(host)
        try:
            mirror.stop_reading()
            sock.send(b"late")
            mirror.close()
            loop = asyncio.get_running_loop()

            async def read_to_the_end() -> None:
                while await loop.sock_recv(sock, 10):
                    pass

            # Closing with unread bytes makes the kernel reset rather than FIN.
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(read_to_the_end(), TIMEOUT)
            await asyncio.wait_for(mirror.closed, TIMEOUT)
        finally:
            sock.close()
        return mirror

    mirror = arun(main)
    assert mirror.bytes_in == 0
    assert host.counters.bytes_received == 0
    assert host.counters.bytes_sent == 0


# -- through a real server --------------------------------------------------------------


@pytest.fixture
def mirrors_made(monkeypatch: pytest.MonkeyPatch, mirror_kind: str) -> list[Connection]:
    """Every mirror the listener creates, of the kind the test runs (its names are patched)."""
    made: list[Connection] = []

    class Recorded(MirrorConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    class RecordedNative(NativeMirrorConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(listener_module, "MirrorConnection", Recorded)
    monkeypatch.setattr(listener_module, "NativeMirrorConnection", RecordedNative)
    return made


@pytest.mark.parametrize(
    ("read_chunk", "narrate", "mirrored"),
    [
        (Limits().read_chunk, False, True),
        (MIRROR_MIN_CHUNK, False, True),
        (MIRROR_MIN_CHUNK - 1, False, False),
        (16, False, False),
        (Limits().read_chunk, True, False),
    ],
)
def test_the_server_runs_echo_through_the_mirror(
    arun: Run,
    mirrors_made: list[Connection],
    mirror_kind: str,
    read_chunk: int,
    narrate: bool,
    mirrored: bool,
) -> None:
    """The default read_chunk gets the mirror; a small one or narrating gets the stream adapter."""

    async def main() -> None:
        bindings = [Binding("echo", "tcp", "127.0.0.1", 0)]
        limits = Limits(read_chunk=read_chunk)
        async with Server(bindings, limits=limits, narrate=narrate) as server:
            ep = server.address("echo", "tcp")
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(ep.host, ep.port), TIMEOUT
            )
            try:
                writer.write(b"hello, mirror\n")
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"hello, mirror\n"
            finally:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), TIMEOUT)

    arun(main)
    assert len(mirrors_made) == (1 if mirrored else 0)
    native = mirror_kind == "native"
    assert all(isinstance(m, NativeMirrorConnection) == native for m in mirrors_made)


def test_statistics_include_an_open_mirrors_bytes(loop_name: str) -> None:
    payload = os.urandom(64 * 1024)
    with serve_in_thread("echo", udp=False, loop=loop_name) as thread:
        ep = thread.address("echo", "tcp")
        assert ep.host is not None and ep.port is not None
        with client((ep.host, ep.port)) as sock:
            sock.sendall(payload)
            assert recv_exactly(sock, len(payload)) == payload
            live = thread.statistics()  # the connection is still open
            assert live.connections_active == 1
            assert live.bytes_received == live.bytes_sent == len(payload)
        final = thread.stop(timeout=TIMEOUT)
    assert thread.loop_errors == []
    assert final is not None
    assert final.connections_served == 1
    assert final.bytes_received == final.bytes_sent == len(payload)


def test_the_server_idles_out_a_silent_mirror(loop_name: str) -> None:
    timers = ManualTimers()
    limits = Limits(idle_timeout=8.0)
    with serve_in_thread("echo", udp=False, loop=loop_name, limits=limits, timers=timers) as thread:
        ep = thread.address("echo", "tcp")
        assert ep.host is not None and ep.port is not None
        with client((ep.host, ep.port)) as sock:
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"  # the mirror is live and watched
            thread.call(lambda: timers.advance(4.0))
            sock.sendall(b"y")  # half the timeout: still served
            assert recv_exactly(sock, 1) == b"y"
            thread.call(lambda: timers.advance(8.0 * 1.25 + 2.0))
            assert sock.recv(10) == b""  # closed gracefully (FIN): nothing was pending
        assert thread.statistics().connections_timed_out == 1
    assert thread.loop_errors == []
