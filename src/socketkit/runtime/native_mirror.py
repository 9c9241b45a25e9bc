"""The echo fast path in C: the event loop calls ``_mirror.Mirror`` on readability.

Why: on the transport mirror (``mirror.py``) every request still costs a
bytes object, a ``data_received`` frame and a ``transport.write``; here the
loop's reader callback is the C relay itself (one ``recv``, one ``send``, no
Python object per request), and only the slow path comes back to Python:
output the kernel would not take yet (watch for writability, and stop
reading above ``write_buffer_high``, resume at ``write_buffer_low``), the
client's FIN (write what is kept, then close with FIN) and errors.

Everything the server sees is the ``Connection`` interface, as for the
transport mirror: the same idle watch, graceful close, stop reading, lazy
counters and access-log ``ended``. Two differences, both deliberate:
``abort`` always resets (SO_LINGER 0: "drop it now" should not depend on
whether input was left unread), and ``bytes_out`` counts bytes the kernel
took, not bytes handed to a transport, so an aborted connection's output
that never left is not counted as sent. Output the client does not take is
kept in C (at most ``write_buffer_high`` plus one read) and the memory is
given back once written. Used where the helper is
built (Linux and macOS with a C compiler at install time); the listener
falls back to ``MirrorConnection`` otherwise, and ``$SOCKETKIT_MIRROR``
(``native``, ``transport``, ``auto``) chooses by hand.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import TYPE_CHECKING, Final, Literal

from socketkit.errors import UsageError
from socketkit.runtime.connection import Connection, ConnectionHost, IdleWatch, LazyCounted

if TYPE_CHECKING:
    from socketkit.runtime._mirror import Mirror

__all__ = ["ENV", "NativeMirrorConnection", "available", "chosen_mirror"]

_Mirror: type[Mirror] | None
try:  # built by setup.py where a compiler exists (optional=True)
    from socketkit.runtime._mirror import (
        DRAINED,
        END_OF_INPUT,
        FAILED,
        PAUSE,
        READ_SIZE,
        RESUME,
        WANT_WRITE,
    )
    from socketkit.runtime._mirror import Mirror as _Mirror
except ImportError:  # pragma: no cover - only where the helper was not built
    _Mirror = None
    DRAINED = END_OF_INPUT = FAILED = PAUSE = RESUME = WANT_WRITE = 0
    READ_SIZE = 1

ENV: Final = "SOCKETKIT_MIRROR"
MirrorKind = Literal["auto", "native", "transport"]
_KINDS: Final = ("auto", "native", "transport")
_RESET: Final = struct.pack("ii", 1, 0)
"""SO_LINGER on with a zero timeout: close() sends RST (the abort)."""


def available() -> bool:
    return _Mirror is not None


def chosen_mirror() -> MirrorKind:
    """``$SOCKETKIT_MIRROR`` or auto; native when asked for must be built."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in _KINDS:
        raise UsageError(f"{ENV}={value!r}: expected one of {', '.join(_KINDS)}")
    if value == "native" and not available():
        raise UsageError(
            f"{ENV}=native needs socketkit's native helper, which this install lacks "
            "(a C compiler at install time): use transport or auto"
        )
    return value  # type: ignore[return-value]


class NativeMirrorConnection(LazyCounted, Connection):
    """One accepted connection of a mirroring protocol (echo), relayed in C."""

    def __init__(self, listener: ConnectionHost, peer: str, source: str) -> None:
        self._listener = listener
        self.peer = peer
        self.source = source
        self._counters = listener.counters
        self._limits = listener.limits
        self._idle = IdleWatch(self, listener)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._relay: Mirror | None = None
        self._fd = -1
        self._reading = self._writing = False
        self._eof = self._closing = self._aborted = self._gone = self._stopped = False
        """_eof: the client sent FIN; _stopped: stop_reading (the server's shutdown)."""
        self._reported = (0, 0)
        """Bytes already added to the server's counters (see ``report``)."""

    @property
    def bytes_in(self) -> int:  # type: ignore[override]
        return 0 if self._relay is None else self._relay.bytes_in

    @property
    def bytes_out(self) -> int:  # type: ignore[override]
        return 0 if self._relay is None else self._relay.bytes_out

    async def attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        if self._gone:  # closed or aborted before it started: nothing to serve
            sock.close()
            return
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # As asyncio's and uvloop's transports do: a request-response echo
            # must not wait for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert _Mirror is not None
        limits = self._limits
        self._relay = _Mirror(
            self._fd,
            self._on_event,
            limits.write_buffer_high,
            limits.write_buffer_low,
            min(limits.read_chunk, READ_SIZE),  # a larger read_chunk reads in parts
        )
        self._idle.start()
        if self._closing:
            self._finish()
        elif not self._stopped:
            self._read(True)

    # -- the loop's side -----------------------------------------------------------

    def _read(self, on: bool) -> None:
        if on != self._reading and self._loop is not None and not self._gone:
            self._reading = on
            if on:
                assert self._relay is not None
                self._loop.add_reader(self._fd, self._relay)
            else:
                self._loop.remove_reader(self._fd)

    def _write(self, on: bool) -> None:
        if on != self._writing and self._loop is not None and not self._gone:
            self._writing = on
            relay = self._relay
            assert relay is not None
            if on:
                self._loop.add_writer(self._fd, relay.flush)
            else:
                self._loop.remove_writer(self._fd)

    def _on_event(self, flags: int) -> None:
        """The relay's slow path: what the loop must watch now, or the end."""
        if flags & FAILED:
            self._finish()
            return
        if flags & END_OF_INPUT:
            self._eof = True
        if flags & WANT_WRITE:
            self._write(True)
        if flags & DRAINED:
            self._write(False)
        ending = self._eof or self._closing
        if flags & (PAUSE | END_OF_INPUT):
            self._read(False)
        elif flags & (RESUME | DRAINED) and not (ending or self._stopped):
            self._read(True)
        if ending and self.pending_output() == 0:
            self._finish()  # the client's FIN, or our close, once all is written

    def _finish(self) -> None:
        """The connection is over: close the socket, give back the slot, once."""
        if self._gone:
            return
        self._read(False)
        self._write(False)
        self._gone = True
        if self._sock is not None:
            self._sock.close()
        self._ended()

    # -- the Connection interface --------------------------------------------------

    def receive(self, data: bytes) -> None:
        if self._relay is None:
            raise RuntimeError("receive() before attach(): the relay has no socket yet")
        if not self._gone:
            self._relay.feed(data)

    def close(self) -> None:
        if self._gone or self._closing:
            return
        self._closing = True
        self._read(False)
        if self._relay is not None and self.pending_output() == 0:
            self._finish()  # before attach, attach finishes it

    def abort(self) -> None:
        if self._gone or self._aborted:
            return
        self._aborted = self._closing = True
        if self.ended is None:
            self.ended = "aborted"
        self._counters.connections_aborted += 1
        if self._sock is not None:
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            except OSError:
                pass  # already reset by the peer: closing is all that is left
        self._finish()

    def stop_reading(self) -> None:
        self._stopped = True
        self._read(False)

    def pending_output(self) -> int:
        return 0 if self._relay is None else self._relay.pending
