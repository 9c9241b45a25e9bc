"""The stream adapter against a fake transport: flow control and fairness, exactly.

No sockets: the fake records writes and pauses, so each rule is checked
without timing (uvicorn's MockTransport idea).
"""

from __future__ import annotations

import asyncio
from typing import Any

from socketkit.protocols.chargen import ChargenStream
from socketkit.protocols.echo import EchoStream
from socketkit.protocols.sum import SumStream
from socketkit.runtime.limits import Limits
from socketkit.runtime.stats import Counters
from socketkit.runtime.stream import StreamConnection
from socketkit.runtime.timers import ManualTimers


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.reading = True
        self.closing = False
        self.eof_written = False
        self.buffered = 0

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str) -> Any:
        return None


class FakeListener:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.counters = Counters()
        self.read_view = memoryview(bytearray(limits.read_chunk))
        self.label = "test"
        self.narrate = False
        self.timers = ManualTimers()
        self.closed: list[StreamConnection] = []

    def connection_closed(self, conn: StreamConnection) -> None:
        self.closed.append(conn)


def connect(proto: Any, limits: Limits) -> tuple[StreamConnection, FakeTransport]:
    conn = StreamConnection(FakeListener(limits), proto, "peer", "source")  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def feed(conn: StreamConnection, data: bytes) -> None:
    buf = conn.get_buffer(len(data))
    buf[: len(data)] = data
    conn.buffer_updated(len(data))


def test_pipelined_sum_is_answered_in_bounded_turns_and_reading_pauses() -> None:
    async def main() -> None:
        limits = Limits(read_chunk=256 * 1024, idle_timeout=None)
        conn, transport = connect(SumStream(batch_lines=64, max_pending=16 * 1024), limits)
        feed(conn, b"1 1\n" * (64 * 1024))  # 256 KiB of requests in one read
        # One turn answers at most write_batch x batch_lines requests...
        assert len(transport.written) <= limits.write_batch * 64 * 2
        assert transport.written
        # ...and reading stops until the backlog is worked off.
        assert transport.reading is False
        for _ in range(20_000):  # let the loop run the scheduled turns (bounded)
            if transport.reading:
                break
            await asyncio.sleep(0)
        assert transport.reading, "reading resumes once the backlog is answered"
        conn.connection_lost(None)

    asyncio.run(main())


def test_echo_stops_reading_while_output_waits_and_resumes() -> None:
    async def main() -> None:
        conn, transport = connect(EchoStream(), Limits(idle_timeout=None))
        feed(conn, b"x" * 100)
        assert bytes(transport.written) == b"x" * 100
        conn.pause_writing()
        assert transport.reading is False
        conn.resume_writing()
        assert transport.reading is True
        conn.connection_lost(None)

    asyncio.run(main())


def test_chargen_keeps_reading_while_output_waits() -> None:
    """Its output is not made from input, so reading on is safe, and the FIN is seen."""

    async def main() -> None:
        conn, transport = connect(ChargenStream(), Limits(idle_timeout=None))
        conn.pause_writing()
        assert transport.reading is True
        assert conn.eof_received() is True
        conn.resume_writing()
        for _ in range(100):
            if transport.closing or transport.eof_written:
                break
            await asyncio.sleep(0)
        assert transport.closing or transport.eof_written
        conn.connection_lost(None)

    asyncio.run(main())


def test_nothing_is_written_after_the_connection_is_lost() -> None:
    async def main() -> None:
        conn, transport = connect(ChargenStream(), Limits(idle_timeout=None))
        before = len(transport.written)
        conn.connection_lost(ConnectionResetError())
        conn.resume_writing()
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(transport.written) == before

    asyncio.run(main())


def test_a_writer_that_never_blocks_writes_at_most_turn_bytes_per_turn() -> None:
    """Fairness: chargen to a kernel that takes everything must still yield each turn.

    Before the byte budget, one turn wrote write_batch x 256 KiB = 4 MiB, and
    with 300 such clients a new client waited 1-2 s for its first byte.
    """

    async def main() -> None:
        limits = Limits(idle_timeout=None)
        conn, transport = connect(ChargenStream(), limits)
        first_turn = len(transport.written)  # connection_made flushes once
        assert 0 < first_turn <= limits.turn_bytes
        per_turn = []
        for _ in range(20):  # the flush reschedules itself with call_soon: one per turn
            before = len(transport.written)
            await asyncio.sleep(0)
            per_turn.append(len(transport.written) - before)
        assert all(0 < n <= limits.turn_bytes for n in per_turn), per_turn
        conn.connection_lost(None)

    asyncio.run(main())
