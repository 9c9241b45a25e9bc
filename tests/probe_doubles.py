"""Deliberately broken small-services servers: one per probe check, each caught by it.

A check that no broken server can fail is not a check. Each double here is
an ordinary server (a plain asyncio loop in a thread, on 127.0.0.1 port 0,
independent of socketkit's runtime) with exactly one fault, and ``DOUBLES``
maps each check name to the double that check must catch, plus the other
checks that may legitimately notice the same fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from socketkit.endpoints import Endpoint
from socketkit.probe import Target
from socketkit.protocols.chargen import PERIOD, pattern
from socketkit.protocols.sum import MAX_LINE, answer_line
from socketkit.protocols.timeproto import encode_time
from tests.support import TIMEOUT

StreamHandler = Callable[[socket.socket, "Double"], Awaitable[None]]
DatagramHandler = Callable[[bytes, tuple[str, int]], list[bytes]]

QUOTE = b"A conforming quote, well under 512 characters.\r\n"


class Crash(Exception):
    """A handler raises this to make the whole server stop listening, as a naive one would."""


@dataclass
class Double:
    """A one-fault server: TCP via ``stream``, UDP via ``datagram`` (either may be None)."""

    service: str
    stream: StreamHandler | None = None
    datagram: DatagramHandler | None = None
    max_clients: int | None = None
    """Connections served at once; the rest are accepted and closed at once."""
    tcp_port: int = 0
    udp_port: int = 0
    _thread: threading.Thread | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _stop: asyncio.Event | None = field(default=None, repr=False)
    _listener: socket.socket | None = field(default=None, repr=False)
    _clients: int = 0

    def target(self, transport: str) -> Target:
        port = self.udp_port if transport == "udp" else self.tcp_port
        return Target(self.service, Endpoint(host="127.0.0.1", port=port), transport)  # type: ignore[arg-type]

    def crash(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> Double:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(TIMEOUT), "the double did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        assert self._thread is not None
        self._thread.join(TIMEOUT)

    def _main(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        udp: socket.socket | None = None
        if self.stream is not None:
            self._listener = socket.socket()
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(512)
            self._listener.setblocking(False)
            self.tcp_port = self._listener.getsockname()[1]
            tasks.append(asyncio.ensure_future(self._accept(self._listener)))
        if self.datagram is not None:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            udp.setblocking(False)
            self.udp_port = udp.getsockname()[1]
            tasks.append(asyncio.ensure_future(self._answer(udp)))
        ready.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in (self._listener, udp):
            if sock is not None:
                sock.close()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    conn, _ = await loop.sock_accept(listener)
                except OSError:
                    return  # crashed: the listener was closed
                conn.setblocking(False)
                if self.max_clients is not None and self._clients >= self.max_clients:
                    conn.close()
                    continue
                # Counted here, not when the task first runs: a burst of accepts
                # before any task ran would otherwise all be served (a flaky pass).
                self._clients += 1
                task = asyncio.ensure_future(self._client(conn))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    async def _client(self, conn: socket.socket) -> None:
        assert self.stream is not None
        try:
            await self.stream(conn, self)
        except Crash:
            self.crash()
        except OSError:
            pass
        finally:
            self._clients -= 1
            conn.close()

    async def _answer(self, udp: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        assert self.datagram is not None
        while True:
            data, addr = await loop.sock_recvfrom(udp, 65536)
            for reply in self.datagram(data, addr):
                with contextlib.suppress(OSError):
                    udp.sendto(reply, addr)


# -- building blocks: conforming behaviour, to break one piece at a time ----------------------


async def _recv(conn: socket.socket) -> bytes:
    return await asyncio.get_running_loop().sock_recv(conn, 65536)


async def _send(conn: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(conn, data)


async def echo_stream(conn: socket.socket, double: Double) -> None:
    while data := await _recv(conn):
        await _send(conn, data)


async def discard_stream(conn: socket.socket, double: Double) -> None:
    while await _recv(conn):
        pass


def one_shot(answer: Callable[[], bytes]) -> StreamHandler:
    async def handler(conn: socket.socket, double: Double) -> None:
        await _send(conn, answer())

    return handler


def daytime_text() -> bytes:
    return time.strftime("%A, %B %d, %Y %H:%M:%S-UTC\r\n", time.gmtime()).encode()


def time_bytes() -> bytes:
    return encode_time(time.time())


def chargen_stream(period: bytes = PERIOD) -> StreamHandler:
    async def handler(conn: socket.socket, double: Double) -> None:
        while True:
            await _send(conn, period)

    return handler


def sum_stream(
    *,
    answer: Callable[[bytes], bytes] | None = None,
    close_on_error: bool = False,
    buffered: bool = True,
    silent_on_long: bool = False,
    block_on_binary: bool = False,
) -> StreamHandler:
    """A sum server; each flag breaks one rule."""

    def reply(line: bytes) -> bytes:
        return answer(line) if answer is not None else answer_line(line).encode() + b"\n"

    async def handler(conn: socket.socket, double: Double) -> None:
        pending = b""
        while data := await _recv(conn):
            if block_on_binary and any(b >= 0x80 for b in data):
                conn.setblocking(True)  # a blocking read in the event loop: nobody else is served
                conn.settimeout(TIMEOUT * 3)
                with contextlib.suppress(OSError):
                    while conn.recv(65536):
                        pass
                return
            pending = pending + data if buffered else data
            if silent_on_long and len(pending) > MAX_LINE and b"\n" not in pending[:MAX_LINE]:
                await asyncio.sleep(TIMEOUT * 3)  # never answers, keeps the connection
                return
            *lines, rest = pending.split(b"\n")
            pending = rest if buffered else b""
            for line in lines:
                out = reply(line.rstrip(b"\r"))
                await _send(conn, out)
                if close_on_error and out.startswith(b"ERR"):
                    return
            if len(pending) > MAX_LINE:
                await _send(conn, b"ERR line too long\n")
                return

    return handler


def float_sum(line: bytes) -> bytes:
    """Binary floating point: 0.1 + 0.2 = 0.30000000000000004."""
    try:
        a, b = line.split()
        if b"." in a or b"." in b:
            return repr(float(a) + float(b)).encode() + b"\n"
    except ValueError:
        pass
    return answer_line(line).encode() + b"\n"


def _is_low(addr: tuple[str, int]) -> bool:
    return addr[1] < 1024


def udp_echo(*, low_ports: bool = True, rate: int | None = None) -> DatagramHandler:
    """UDP echo; ``low_ports=False`` drops low source ports, ``rate`` caps replies per source."""
    counts: dict[str, int] = {}

    def handler(data: bytes, addr: tuple[str, int]) -> list[bytes]:
        if not low_ports and _is_low(addr):
            return []
        if rate is not None:
            counts[addr[0]] = counts.get(addr[0], 0) + 1
            if counts[addr[0]] > rate:
                return []
        return [data]

    return handler


def guarded(answer: Callable[[bytes], list[bytes]]) -> DatagramHandler:
    """A conforming UDP service that drops low source ports and limits one source to 100."""
    counts: dict[str, int] = {}

    def handler(data: bytes, addr: tuple[str, int]) -> list[bytes]:
        counts[addr[0]] = counts.get(addr[0], 0) + 1
        if _is_low(addr) or counts[addr[0]] > 100:
            return []
        return answer(data)

    return handler


# -- the doubles: check name -> (double factory, other checks that may also notice) ---------


def _echo_corrupt() -> Double:
    async def handler(conn: socket.socket, double: Double) -> None:
        seen = 0
        while data := await _recv(conn):
            if seen <= 70000 < seen + len(data):  # one byte, far into the stream
                i = 70000 - seen
                data = data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]
            seen += len(data)
            await _send(conn, data)

    return Double("echo", stream=handler)


def _echo_one_line() -> Double:
    async def handler(conn: socket.socket, double: Double) -> None:
        buffer = b""
        while data := await _recv(conn):
            buffer += data
            if b"\n" in buffer:
                await _send(conn, buffer[: buffer.index(b"\n") + 1])
                return  # one line answered: hang up
            # nothing yet

    return Double("echo", stream=handler)


def _echo_ignores_fin() -> Double:
    async def handler(conn: socket.socket, double: Double) -> None:
        while data := await _recv(conn):
            await _send(conn, data)
        await asyncio.sleep(TIMEOUT * 3)  # EOF seen, but the connection stays open

    return Double("echo", stream=handler)


def _echo_blocking_writer() -> Double:
    async def handler(conn: socket.socket, double: Double) -> None:
        while data := await _recv(conn):
            conn.setblocking(True)  # a blocking send in the event loop
            conn.settimeout(TIMEOUT * 3)
            with contextlib.suppress(OSError):
                conn.sendall(data)
            conn.setblocking(False)

    return Double("echo", stream=handler)


def _echo_few_clients() -> Double:
    return Double("echo", stream=echo_stream, max_clients=8)


def _discard_chatty() -> Double:
    async def handler(conn: socket.socket, double: Double) -> None:
        while await _recv(conn):
            pass
        await _send(conn, b"thanks\r\n")

    return Double("discard", stream=handler)


def _discard_dies_on_reset() -> Double:
    async def handler(conn: socket.socket, double: Double) -> None:
        try:
            while await _recv(conn):
                pass
        except ConnectionResetError:
            raise Crash from None

    return Double("discard", stream=handler)


def _daytime_two_lines() -> Double:
    return Double("daytime", stream=one_shot(lambda: daytime_text() + b"second line\r\n"))


def _daytime_stays_open() -> Double:
    async def handler(conn: socket.socket, double: Double) -> None:
        await _send(conn, daytime_text())
        while await _recv(conn):
            pass
        await asyncio.sleep(TIMEOUT * 3)

    return Double("daytime", stream=handler)


def _time_1970() -> Double:
    return Double("time", stream=one_shot(lambda: struct.pack("!I", int(time.time()))))


def _chargen_short_lines() -> Double:
    period = b"".join(line[:-3] + b"\r\n" for line in PERIOD.split(b"\r\n")[:-1] if line)
    return Double("chargen", stream=chargen_stream(period))


def _chargen_small_ring() -> Double:
    ring = bytes(range(33, 127))  # 94 characters: no space
    period = b"".join((ring[n:] + ring[:n])[:72] + b"\r\n" for n in range(len(ring)))
    return Double("chargen", stream=chargen_stream(period))


def _qotd_long() -> Double:
    return Double("qotd", stream=one_shot(lambda: b"x" * 600 + b"\r\n"))


def _udp(service: str, answer: Callable[[bytes], list[bytes]]) -> Double:
    return Double(service, datagram=guarded(answer))


def _sum(**kwargs: object) -> Double:
    return Double("sum", stream=sum_stream(**kwargs))  # type: ignore[arg-type]


def _echo_pads_short() -> Double:
    return _udp("echo", lambda d: [d if len(d) >= 64 else d.ljust(64, b" ")])


def _sum_udp_float() -> Double:
    return _udp("sum", lambda d: [float_sum(d.rstrip(b"\n"))])


def _time_ignores_empty() -> Double:
    return _udp("time", lambda d: [time_bytes()] if d else [])


@dataclass(frozen=True)
class Broken:
    make: Callable[[], Double]
    transport: str
    fault: str
    also: frozenset[str] = frozenset()
    """Other checks that legitimately notice the same fault."""


DOUBLES: dict[str, Broken] = {
    "echo-order": Broken(_echo_corrupt, "tcp", "flips one bit at byte 70000"),
    "echo-open": Broken(
        _echo_one_line,
        "tcp",
        "hangs up after echoing one line",
        frozenset({"echo-order", "tiny-writes", "long-line", "never-reads"}),
    ),
    "echo-half-close": Broken(_echo_ignores_fin, "tcp", "keeps the connection after our FIN"),
    "echo-datagram": Broken(
        lambda: _udp("echo", lambda d: [d[::-1]]), "udp", "sends each datagram back reversed"
    ),
    "discard-silent": Broken(_discard_chatty, "tcp", 'says "thanks" after our FIN'),
    "discard-datagram": Broken(
        lambda: _udp("discard", lambda d: [b"!"]), "udp", "answers each datagram with one byte"
    ),
    "daytime-line": Broken(_daytime_two_lines, "tcp", "sends two lines"),
    "daytime-datagram": Broken(
        lambda: _udp("daytime", lambda d: [time_bytes()]), "udp", "answers with binary time"
    ),
    "qotd-size": Broken(_qotd_long, "tcp", "a 602-character quote"),
    "qotd-datagram": Broken(
        lambda: _udp("qotd", lambda d: [b"q" * 600]), "udp", "a 600-character quote"
    ),
    "chargen-lines": Broken(_chargen_short_lines, "tcp", "69-character lines"),
    "chargen-ring": Broken(_chargen_small_ring, "tcp", "a ring of 94 characters (no space)"),
    "chargen-datagram": Broken(
        lambda: _udp("chargen", lambda d: [pattern(0, 600)]), "udp", "600-character replies"
    ),
    "time-value": Broken(_time_1970, "tcp", "seconds since 1970, not 1900"),
    "time-datagram": Broken(
        lambda: _udp("time", lambda d: [struct.pack("!I", int(time.time()))]),
        "udp",
        "seconds since 1970",
    ),
    "one-shot-close": Broken(_daytime_stays_open, "tcp", "keeps the connection after the line"),
    "empty-datagram": Broken(_time_ignores_empty, "udp", "ignores empty datagrams"),
    "sum-rules": Broken(lambda: _sum(answer=float_sum), "tcp", "binary floating point"),
    "sum-errors": Broken(lambda: _sum(close_on_error=True), "tcp", "hangs up after an ERR"),
    "sum-datagram": Broken(_sum_udp_float, "udp", "binary floating point"),
    "tiny-writes": Broken(lambda: _sum(buffered=False), "tcp", "takes each read as whole lines"),
    "long-line": Broken(lambda: _sum(silent_on_long=True), "tcp", "goes silent on a long line"),
    "garbage": Broken(
        lambda: _sum(block_on_binary=True), "tcp", "blocks the whole server on binary input"
    ),
    "never-reads": Broken(_echo_blocking_writer, "tcp", "a blocking send stalls everyone"),
    "idle-connections": Broken(_echo_few_clients, "tcp", "serves 8 connections at most"),
    "reset-storm": Broken(_discard_dies_on_reset, "tcp", "stops listening on a reset"),
    "amplification": Broken(_echo_pads_short, "udp", "pads short echoes to 64 bytes"),
    "loop-ports": Broken(
        lambda: Double("echo", datagram=udp_echo(low_ports=True, rate=100)),
        "udp",
        "answers datagrams from ports 7, 19...",
    ),
    "rate-limit": Broken(
        lambda: Double("echo", datagram=udp_echo(low_ports=False)),
        "udp",
        "answers every datagram of a burst",
    ),
}


@contextlib.contextmanager
def running(check: str) -> Iterator[tuple[Double, Target]]:
    broken = DOUBLES[check]
    with broken.make() as double:
        yield double, double.target(broken.transport)


__all__ = ["DOUBLES", "Broken", "Crash", "Double", "running"]
