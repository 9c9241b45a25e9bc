"""One load worker: its own event loop, its own connections, its own histogram.

How a request is timed and checked:

- every connection has its own messages (a header naming the connection and
  a sequence number, then random bytes), so an echo that comes back on the
  wrong connection, repeated, reordered or altered is a mismatch;
- TCP and Unix are byte streams, so replies are matched by counting bytes
  against a FIFO of what is in flight on that connection (the server may
  return any chunking); UDP replies are matched by their header;
- latency runs from the *intended* send time: in closed loop that is when
  the previous answer arrived, in open loop (``rate``) the slot in the fixed
  schedule, so a server that stalls is charged for every request it delayed
  (no coordinated omission: requests are pipelined, never skipped);
- warm-up traffic is checked like the rest but not counted; a request is
  counted when its intended send time falls inside the measured window.

The loop is asyncio's (uvloop when installed, through ``loop_factory``), with
Protocol callbacks rather than coroutines on the hot path: the generator has
to be cheaper per request than the servers it measures.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic_ns
from typing import Any, cast

from socketkit.errors import TimedOut, translate_os_error
from socketkit.load.config import BenchConfig
from socketkit.load.histogram import Histogram
from socketkit.load.stats import WorkerReport

__all__ = ["ProgressCounts", "run_worker"]

_FAR = 1 << 62
_CONNECT_BATCH = 128
_RING_BYTES = 4 * 1024 * 1024
_MAX_BURST = 10_000
_PROGRESS_EVERY = 0.2
_EXPIRED_KEPT = 1024
_FOLD_EVERY = 0.1

ProgressCounts = tuple[int, int, int, int]
"""(answers so far including warm-up, errors, mismatches, losses)."""


def _messages(conn_id: int, size: int, body: bytes, count: int) -> list[bytes]:
    head = min(8, size)
    tail = body[head:size]
    return [((conn_id << 32) | k).to_bytes(8, "big")[8 - head :] + tail for k in range(count)]


class _Client:
    """What the worker needs from a connection of any kind."""

    lost = False

    def send(self, t0: int) -> None:
        raise NotImplementedError

    def in_flight(self) -> list[int]:
        """Intended send times of the requests not yet answered."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _StreamClient(asyncio.Protocol, _Client):
    """One TCP or Unix connection: replies matched to requests by byte count."""

    def __init__(self, worker: _Worker, messages: list[bytes]) -> None:
        self._w = worker
        self._msgs = messages
        self._count = len(messages)
        self._next = 0
        self._fifo: deque[tuple[int, bytes]] = deque()
        self._off = 0
        self._bad = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def send(self, t0: int) -> None:
        transport = self._transport
        if transport is None or self.lost:
            return
        msg = self._msgs[self._next]
        nxt = self._next + 1
        self._next = 0 if nxt == self._count else nxt
        self._fifo.append((t0, msg))
        self._w.outstanding += 1
        transport.write(msg)

    def data_received(self, data: bytes) -> None:
        fifo = self._fifo
        if self._off == 0 and fifo:
            t0, msg = fifo[0]
            size = len(msg)
            if len(data) == size:
                fifo.popleft()
                w = self._w
                if not (w.steady and data == msg):
                    w.finish(self, t0, size, data == msg)
                    return
                # The common case, inlined (this is the generator's hot path):
                # a correct answer in closed loop; count it and send the next.
                now = monotonic_ns()
                w.completed += 1
                if w.measure_start <= t0 < w.measure_end:
                    w.samples.append(now - t0)
                    w.requests += 1
                    w.bytes += size
                    w.last_done = now
                nxt = self._next
                msg = self._msgs[nxt]
                nxt += 1
                self._next = 0 if nxt == self._count else nxt
                fifo.append((now, msg))
                self._transport.write(msg)  # type: ignore[union-attr]
                return
        self._partial(data)

    def _partial(self, data: bytes) -> None:
        fifo = self._fifo
        pos = 0
        n = len(data)
        while pos < n:
            if not fifo:
                self._w.unexpected(self)
                return
            t0, msg = fifo[0]
            off = self._off
            size = len(msg)
            take = min(n - pos, size - off)
            if data[pos : pos + take] != msg[off : off + take]:
                self._bad = True
            pos += take
            off += take
            if off == size:
                fifo.popleft()
                self._off = 0
                ok = not self._bad
                self._bad = False
                self._w.finish(self, t0, size, ok)
            else:
                self._off = off

    def eof_received(self) -> bool:
        return False  # the server closed: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost:
            self.lost = True
            self._w.client_lost(self, len(self._fifo))

    def in_flight(self) -> list[int]:
        return [t0 for t0, _ in self._fifo]

    def close(self) -> None:
        self.lost = True
        if self._transport is not None:
            self._transport.abort()


class _UdpClient(asyncio.DatagramProtocol, _Client):
    """One connected UDP socket: replies matched to requests by their header."""

    def __init__(self, worker: _Worker, conn_id: int, size: int, body: bytes) -> None:
        self._w = worker
        self._head = min(8, size)
        self._base = conn_id << 32
        self._tail = body[self._head : size]
        self._seq = 0
        self.pending: dict[bytes, tuple[int, bytes]] = {}
        self._expired: dict[bytes, bytes] = {}
        """Recently lost requests (bounded): a reply to one of them is late, not wrong."""
        self._transport: asyncio.DatagramTransport | None = None
        self._fd = -1
        """The connected socket's descriptor: ``os.write`` sends one datagram, skipping
        the transport's per-call work (its buffer is only needed when the socket is full)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def send(self, t0: int) -> None:
        transport = self._transport
        if transport is None or self.lost:
            return
        header = (self._base | (self._seq & 0xFFFFFFFF)).to_bytes(8, "big")
        if self._head < 8:
            header = header[8 - self._head :]
        self._seq += 1
        msg = header + self._tail
        self.pending[header] = (t0, msg)
        self._w.outstanding += 1
        transport.sendto(msg)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        header = data[: self._head]
        entry = self.pending.pop(header, None)
        if entry is None:
            # A reply to a request already counted lost, or something we never sent.
            self._w.stray(self._expired.pop(header, None) == data)
            return
        t0, msg = entry
        w = self._w
        if not (w.steady and data == msg):
            w.finish(self, t0, len(data), data == msg)
            return
        # The common case, inlined as in _StreamClient.data_received: a correct
        # reply in closed loop; count it and send the next datagram.
        now = monotonic_ns()
        w.completed += 1
        if w.measure_start <= t0 < w.measure_end:
            w.samples.append(now - t0)
            w.requests += 1
            w.bytes += len(data)
            w.last_done = now
        seq = self._seq
        self._seq = seq + 1
        header = (self._base | (seq & 0xFFFFFFFF)).to_bytes(8, "big")
        if self._head < 8:
            header = header[8 - self._head :]
        msg = header + self._tail
        self.pending[header] = (now, msg)
        try:
            os.write(self._fd, msg)
        except OSError:  # full (EAGAIN) or an error: the transport buffers or reports it
            self._transport.sendto(msg)  # type: ignore[union-attr]

    def error_received(self, exc: Exception) -> None:
        self._w.errors += 1  # ICMP port unreachable: nobody listens there

    def expire(self, deadline: int) -> list[int]:
        """Forget requests sent before ``deadline``; their intended send times."""
        old = [key for key, (t0, _) in self.pending.items() if t0 < deadline]
        times = []
        for key in old:
            t0, msg = self.pending.pop(key)
            times.append(t0)
            self._expired[key] = msg
        while len(self._expired) > _EXPIRED_KEPT:
            del self._expired[next(iter(self._expired))]
        return times

    def in_flight(self) -> list[int]:
        return [t0 for t0, _ in self.pending.values()]

    def close(self) -> None:
        self.lost = True
        if self._transport is not None:
            self._transport.close()


class _Worker:
    def __init__(self, config: BenchConfig, conn_base: int) -> None:
        self.config = config
        self.conn_base = conn_base
        self.loop = asyncio.get_running_loop()
        self.hist = Histogram()
        self.samples: list[int] = []
        """Latencies not yet folded into ``hist`` (appending is cheaper than bucketing)."""
        self.clients: list[_Client] = []
        self.live: list[_Client] = []
        self.udp = config.mode == "udp"
        self.closed_loop = config.rate is None
        self.measure_start = _FAR
        self.measure_end = _FAR
        self.sending = False
        self.steady = False
        """Closed loop, sending, no request count to keep: the inlined fast path applies."""
        self.remaining = config.requests
        self.outstanding = 0
        self.completed = 0
        self.requests = 0
        self.bytes = 0
        self.errors = 0
        self.mismatches = 0
        self.timeouts = 0
        self.losses = 0
        self.late = 0
        self.last_done = 0
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self._next_send = 0
        self._interval = 0
        self._turn = 0
        self._timers: list[asyncio.TimerHandle] = []
        self._fold_timer: asyncio.TimerHandle | None = None

    # -- set-up --------------------------------------------------------------

    async def connect(self) -> None:
        cfg = self.config
        _raise_file_limit(cfg.connections + 64)
        body = os.urandom(cfg.size)
        ring = max(2, min(16, _RING_BYTES // (cfg.size * cfg.connections)))
        where = str(cfg.target)
        host_port: tuple[Any, ...] = ()
        if not cfg.target.is_unix:
            host_port = await self._resolve()

        async def one(i: int) -> _Client:
            conn_id = self.conn_base + i
            if self.udp:
                udp = _UdpClient(self, conn_id, cfg.size, body)
                await self.loop.create_datagram_endpoint(lambda: udp, remote_addr=host_port)
                return udp
            stream = _StreamClient(self, _messages(conn_id, cfg.size, body, ring))
            if cfg.target.is_unix:
                assert cfg.target.path is not None
                await self.loop.create_unix_connection(lambda: stream, cfg.target.path)
            else:
                await self.loop.create_connection(lambda: stream, host_port[0], host_port[1])
            return stream

        failure: BaseException | None = None
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                for first in range(0, cfg.connections, _CONNECT_BATCH):
                    batch = range(first, min(cfg.connections, first + _CONNECT_BATCH))
                    results = await asyncio.gather(*(one(i) for i in batch), return_exceptions=True)
                    for result in results:
                        if isinstance(result, _Client):
                            self.clients.append(result)
                        elif isinstance(result, OSError):
                            self.errors += 1
                            failure = failure or result
                        elif isinstance(result, BaseException):
                            raise result
        except TimeoutError:
            self.close_all()
            raise TimedOut(
                f"connecting {cfg.connections} connections to {where} took longer than "
                f"{cfg.connect_timeout:g} s"
            ) from None
        if not self.clients:
            assert isinstance(failure, OSError)
            raise translate_os_error(failure, action="connect", where=where) from failure
        self.live = list(self.clients)

    async def _resolve(self) -> tuple[Any, ...]:
        cfg = self.config
        socktype = socket.SOCK_DGRAM if self.udp else socket.SOCK_STREAM
        try:
            infos = await self.loop.getaddrinfo(cfg.target.host, cfg.target.port, type=socktype)
        except OSError as exc:
            raise translate_os_error(exc, action="connect", where=str(cfg.target)) from exc
        sockaddr: tuple[Any, ...] = infos[0][4]
        return sockaddr[:2]

    # -- running -------------------------------------------------------------

    def begin(self, start_ns: int) -> None:
        cfg = self.config
        self.measure_start = start_ns + int(cfg.warmup * 1e9)
        if cfg.duration is not None:
            self.measure_end = self.measure_start + int(cfg.duration * 1e9)
            self._at(self.measure_end, self.stop_sending)
        self.sending = True
        self.steady = self.closed_loop and self.remaining is None
        self._fold_timer = self.loop.call_later(_FOLD_EVERY, self._fold_every)
        if self.udp:
            every = min(0.05, cfg.timeout / 4)
            self._timers.append(self.loop.call_later(every, self._sweep, every))
        if self.closed_loop:
            now = monotonic_ns()
            for client in self.live:
                for _ in range(cfg.depth):
                    self._send(client, now)
        else:
            assert cfg.rate is not None
            self._interval = max(1, int(1e9 / cfg.rate))
            self._next_send = start_ns
            self._tick()

    def _at(self, when_ns: int, callback: Callable[[], None]) -> None:
        delay = max(0.0, (when_ns - monotonic_ns()) / 1e9)
        self._timers.append(self.loop.call_later(delay, callback))

    def _send(self, client: _Client, t0: int) -> None:
        if self.remaining is not None and t0 >= self.measure_start:
            if self.remaining <= 0:
                self.stop_sending()
                return
            self.remaining -= 1
        client.send(t0)

    def _tick(self) -> None:
        """Open loop: send every request whose slot has come, whatever is in flight."""
        now = monotonic_ns()
        burst = 0
        while self.sending and self._next_send <= now:
            t0 = self._next_send
            if t0 >= self.measure_end:
                self.stop_sending()
                return
            if not self.live:
                return
            client = self.live[self._turn % len(self.live)]
            self._turn += 1
            self._send(client, t0)
            self._next_send = t0 + self._interval
            burst += 1
            if burst >= _MAX_BURST:
                self.loop.call_soon(self._tick)
                return
        if self.sending:
            self._at(self._next_send, self._tick)

    def finish(self, client: _Client, t0: int, nbytes: int, ok: bool) -> None:
        """One request's echo came back whole: check, count, send the next."""
        now = monotonic_ns()
        self.outstanding -= 1
        self.completed += 1
        if not ok:
            self.mismatches += 1
        elif self.measure_start <= t0 < self.measure_end:
            self.samples.append(now - t0)
            self.requests += 1
            self.bytes += nbytes
            self.last_done = now
        if self.sending:
            if self.closed_loop:
                self._send(client, now)
        elif self.outstanding <= 0:
            self._done()

    def unexpected(self, client: _Client) -> None:
        """Bytes nobody asked for: the stream cannot be matched any more."""
        self.mismatches += 1
        client.close()
        self.client_lost(client, 0)

    def stray(self, looks_like_ours: bool) -> None:
        if looks_like_ours:
            self.late += 1
        else:
            self.mismatches += 1

    def client_lost(self, client: _Client, in_flight: int) -> None:
        if self.finished.done():
            return
        self.errors += 1
        self.outstanding -= in_flight
        if client in self.live:
            self.live.remove(client)
        if not self.live:
            self.sending = False
            self.steady = False
            self._done()
        elif not self.sending and self.outstanding <= 0:
            self._done()

    def stop_sending(self) -> None:
        if not self.sending:
            return
        self.sending = False
        self.steady = False
        if self.outstanding <= 0:
            self._done()
            return
        grace = self.config.timeout + (0.2 if self.udp else 0.0)
        self._timers.append(self.loop.call_later(grace, self._give_up))

    def _sweep(self, every: float) -> None:
        """UDP: requests unanswered for ``timeout`` seconds are losses."""
        if self.finished.done():
            return
        now = monotonic_ns()
        deadline = now - int(self.config.timeout * 1e9)
        for client in self.live:
            assert isinstance(client, _UdpClient)
            for t0 in client.expire(deadline):
                self.outstanding -= 1
                if self.measure_start <= t0 < self.measure_end:
                    self.losses += 1
                if self.sending and self.closed_loop:
                    self._send(client, now)
        if not self.sending and self.outstanding <= 0:
            self._done()
            return
        self._timers.append(self.loop.call_later(every, self._sweep, every))

    def _give_up(self) -> None:
        """The run is over and some answers never came."""
        for client in self.live:
            missing = sum(1 for t0 in client.in_flight() if self.measure_start <= t0)
            if self.udp:
                self.losses += missing
            else:
                self.timeouts += missing
        self._done()

    def _done(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def progress(self) -> ProgressCounts:
        return (self.completed, self.errors, self.mismatches, self.losses)

    def fold(self) -> None:
        """Move the collected samples into the histogram (bounded memory, batch speed)."""
        if self.samples:
            self.hist.record_many(self.samples)
            self.samples = []

    def _fold_every(self) -> None:
        self.fold()
        if not self.finished.done():
            self._fold_timer = self.loop.call_later(_FOLD_EVERY, self._fold_every)

    def close_all(self) -> None:
        if self._fold_timer is not None:
            self._fold_timer.cancel()
        for timer in self._timers:
            timer.cancel()
        for client in self.clients:
            client.close()

    def report(self) -> WorkerReport:
        self.fold()
        if self.config.duration is not None:
            seconds = self.config.duration
        else:
            seconds = max(0, self.last_done - self.measure_start) / 1e9
        return WorkerReport(
            histogram=self.hist.to_dict(),
            requests=self.requests,
            bytes=self.bytes,
            seconds=seconds,
            errors=self.errors,
            mismatches=self.mismatches,
            timeouts=self.timeouts,
            losses=self.losses,
            late=self.late,
            connections=len(self.clients),
            answered=self.completed,
        )


def _raise_file_limit(needed: int) -> None:
    """Many connections need many descriptors: lift the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


async def _now() -> int:
    return monotonic_ns()


async def run_worker(
    config: BenchConfig,
    conn_base: int = 0,
    *,
    wait_start: Callable[[], Awaitable[int]] = _now,
    on_ready: Callable[[], None] | None = None,
    on_progress: Callable[[ProgressCounts], None] | None = None,
    progress_every: float = _PROGRESS_EVERY,
) -> WorkerReport:
    """Connect, wait for the common start time, run, and report.

    ``wait_start`` returns the start time (``monotonic_ns``), the same for
    every worker, so their measured windows line up and their counts add up.
    """
    worker = _Worker(config, conn_base)
    loop = worker.loop
    try:
        await worker.connect()
        if on_ready is not None:
            on_ready()
        start_ns = await wait_start()
        delay = (start_ns - monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        ticker: asyncio.TimerHandle | None = None

        def tick() -> None:
            nonlocal ticker
            if on_progress is not None:
                on_progress(worker.progress())
            ticker = loop.call_later(progress_every, tick)

        if on_progress is not None:
            tick()
        worker.begin(start_ns)
        try:
            await worker.finished
        finally:
            if ticker is not None:
                ticker.cancel()
        if on_progress is not None:
            on_progress(worker.progress())
        return worker.report()
    finally:
        worker.close_all()
        await asyncio.sleep(0)
