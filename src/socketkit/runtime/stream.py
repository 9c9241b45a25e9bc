"""The one stream adapter (TCP and Unix): a sans-I/O service on an asyncio transport.

It only moves bytes: feed what was read to the protocol, write what the
protocol has to send, close when it says so. Flow control is explicit:

- reading pauses while the transport's write buffer is above the high-water
  mark (``pause_writing``), so a client that sends and never reads cannot
  grow our memory; it resumes below the low-water mark;
- output is pulled from the protocol only while the transport is writable,
  so an endless sender (chargen) produces no more than the socket takes;
- at most ``write_batch`` chunks are pulled per turn before other clients
  run (fairness between a pipelining client and everyone else).

``BufferedProtocol`` is used so that each recv() asks for exactly
``read_chunk`` bytes (the lab's 16-byte chunks, or 256 KiB for speed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from socketkit.display import escape_payload
from socketkit.protocols.base import StreamProtocol
from socketkit.runtime.connection import ConnectionHost, IdleWatch, TransportConnection
from socketkit.runtime.timers import Cancellable

__all__ = ["LINGER", "StreamConnection"]

log = logging.getLogger("socketkit.server")

LINGER = 2.0
"""Seconds a finished connection keeps discarding input before it closes."""


class StreamConnection(asyncio.BufferedProtocol, TransportConnection):
    """One accepted connection driving a sans-I/O protocol. Created by the listener."""

    def __init__(
        self,
        listener: ConnectionHost,
        protocol: StreamProtocol,
        peer: str,
        source: str,
    ) -> None:
        self._listener = listener
        self._proto = protocol
        self.peer = peer
        self.source = source
        limits = listener.limits
        # One receive buffer per listener, not per connection: the loop calls
        # get_buffer(), recv_into() and buffer_updated() back to back, and we
        # copy out at once, so connections can share it. This keeps an idle
        # connection at a few KiB instead of read_chunk bytes.
        self._view = listener.read_view
        self._pull = min(max(limits.write_buffer_high, limits.read_chunk), limits.turn_bytes)
        self._turn_bytes = limits.turn_bytes
        self._batch = limits.write_batch
        self._counters = listener.counters
        self._narrate = log.isEnabledFor(logging.INFO) and listener.narrate
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._write_paused = False
        self._eof = False
        self._closing = False
        self._flush_scheduled = False
        self._idle = IdleWatch(self, listener)
        self._linger_timer: Cancellable | None = None
        self._lingering = False
        self._reading = True
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.bytes_in = 0
        self.bytes_out = 0

    # -- asyncio callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self._transport = transport = cast(asyncio.Transport, transport)
        limits = self._listener.limits
        transport.set_write_buffer_limits(
            high=limits.write_buffer_high, low=limits.write_buffer_low
        )
        self._idle.start()
        if self._narrate:
            sock = transport.get_extra_info("socket")
            fd = sock.fileno() if sock is not None else -1
            log.info(
                "%s: accept() -> new socket fd %d: connection from %s "
                "(the listening socket goes on listening)",
                self._listener.label,
                fd,
                self.peer,
            )
        self._flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._lingering:
            return  # the service is done; what still arrives is discarded
        data = bytes(self._view[:nbytes])
        self.bytes_in += nbytes
        self._counters.bytes_received += nbytes
        if self._narrate:
            log.info(
                "%s: recv(): received %d bytes from %s: %s",
                self._listener.label,
                nbytes,
                self.peer,
                escape_payload(data),
            )
        try:
            self._proto.receive_data(data)
        except Exception:
            self._fail("receive_data")
            return
        self._flush()
        self._update_reading()

    def eof_received(self) -> bool:
        self._eof = True
        if self._lingering:
            return False  # both sides are done: let the transport close
        if self._narrate:
            log.info(
                "%s: recv() -> 0 bytes: %s half-closed (sent FIN)", self._listener.label, self.peer
            )
        try:
            self._proto.receive_eof()
        except Exception:
            self._fail("receive_eof")
            return False
        self._flush()
        return True  # keep our write side open until the protocol is done

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        # Refill on the next turn, not now: an endless sender (chargen) would
        # otherwise fill the buffer again before the loop ever polls for reads,
        # and the client's FIN would never be seen.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True  # a flush already scheduled must not write any more
        self._idle.stop()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        self._listener.connection_closed(self)
        if self._narrate:
            how = f" ({exc})" if exc else ""
            log.info(
                "%s: close(): client %s closed%s - received %d bytes, sent %d bytes",
                self._listener.label,
                self.peer,
                how,
                self.bytes_in,
                self.bytes_out,
            )
        if not self.closed.done():
            self.closed.set_result(None)

    # -- our side ----------------------------------------------------------

    def _update_reading(self) -> None:
        """Read only while it cannot grow memory: output has room, or is not
        made from input; and the protocol is not behind on its input."""
        transport = self._transport
        if transport is None or self._eof or self._closing:
            return
        proto = self._proto
        want = proto.wants_input() and not (self._write_paused and proto.input_makes_output)
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _flush(self) -> None:
        """Write what the protocol has, in a bounded batch; close when it is done."""
        self._flush_scheduled = False
        transport = self._transport
        if transport is None or self._closing or transport.is_closing():
            return
        proto = self._proto
        budget = self._turn_bytes
        for _ in range(self._batch):
            if budget <= 0:  # this turn's bytes are written: let other clients run first
                self._flush_later()
                return
            if self._write_paused:
                return
            if proto.close_expected():
                # Checked before pulling: an endless sender (chargen) always has
                # more, yet must stop once the client has said goodbye.
                self.close()
                return
            try:
                data = proto.data_to_send(self._pull)
            except Exception:
                self._fail("data_to_send")
                return
            if not data:
                break
            transport.write(data)
            if transport.is_closing():  # the write found the peer gone
                return
            n = len(data)
            budget -= n
            self.bytes_out += n
            self._counters.bytes_sent += n
            if self._narrate:
                log.info(
                    "%s: send(): sent %d bytes to %s: %s",
                    self._listener.label,
                    n,
                    self.peer,
                    escape_payload(data),
                )
        else:
            # The protocol may have more: let other clients run first.
            self._flush_later()
            return
        if proto.close_expected():
            self.close()
            return
        self._update_reading()

    def _flush_later(self) -> None:
        self._flush_scheduled = True
        self._loop.call_soon(self._flush)
        self._update_reading()

    def close(self) -> None:
        """Close after the pending output is written: FIN, then linger, never RST.

        Closing a socket with unread input makes the kernel send RST, which can
        destroy our last reply before the client reads it (daytime answering a
        client that sent a newline). So when the client may still be sending,
        we half-close (FIN after the pending output), discard what still
        arrives, and close once the client closes or ``LINGER`` seconds pass.
        """
        transport = self._transport
        if transport is None or self._closing:
            return
        self._closing = True
        if self._eof or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        try:
            transport.write_eof()
        except OSError:  # the client reset the connection first (ENOTCONN): nothing to linger for
            transport.close()
            return
        self._reading = True
        transport.resume_reading()
        self._linger_timer = self._listener.timers.call_later(LINGER, transport.close)

    def receive(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed.done():
            buffer = self.get_buffer(len(view))
            n = min(len(buffer), len(view))
            if n == 0:
                break
            buffer[:n] = view[:n]
            self.buffer_updated(n)
            view = view[n:]

    def _fail(self, where: str) -> None:
        """A bug in a protocol must cost only this one client."""
        log.exception("%s: %s failed for %s; closing it", self._listener.label, where, self.peer)
        self.abort()
