"""Echo relay experiments that did not beat the mirror, kept for benchmarks/fastpaths.py.

These relays were the runtime's first attempts at an echo fast path
(``runtime/splice.py`` before the refactor). ``serve`` now runs echo through
``socketkit.runtime.mirror.MirrorConnection`` (the loop's own transport
writes each chunk straight back), which measured cheaper; the two relays
below stay here, self-contained, so ``benchmarks/fastpaths.py tcp-splice``
and ``tcp-copy`` can still compare them with it (BENCHMARKS.md).

``SpliceRelay``: on Linux, ``splice(2)`` moves the bytes from the socket into
a pipe and from the pipe back to the socket, page references instead of
copies, with no Python object per chunk.

Semantics kept from the stream adapter (runtime/stream.py):

- flow control: bytes in the pipe are this connection's pending output. While
  any are pending (the peer is not reading), we stop reading from it, so a
  client that sends and never reads costs at most one pipe (``capacity``,
  at most ``write_buffer_high``) plus the kernel's socket buffers;
- at most ``read_chunk`` bytes are moved per splice, and one relay step per
  wake-up, so one fast client does not starve the others;
- half-close: after the client's FIN, what is still pending is sent, then
  the connection closes (FIN, not RST), as echo's ``close_expected`` says;
- idle timeout, ``close()`` (graceful), ``abort()`` (drop pending output),
  ``stop_reading()`` and the counters behave as the stream adapter's do.

Costs: two extra descriptors per connection (the pipe), so RLIMIT_NOFILE
must allow three per client.

``CopyRelay`` is the same relay without the pipe: ``recv_into`` one buffer
shared by every connection of the thread, ``send`` straight back, and only a
reply the socket would not take is kept (as bytes) for this connection. It
works everywhere (no splice needed) and keeps one descriptor and no buffer
per idle connection. Measured here (BENCHMARKS.md), on loopback it is the
cheaper of the two per byte: the kernel's loopback path, not the user-space
copy, dominates; splice wins only where copies are the cost.

Both take their deadlines from the host's ``timers`` (``LoopTimers`` of
runtime/timers.py in production, ``ManualTimers`` in tests), so a
``ConnectionHost`` of runtime/connection.py serves as their host too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import sys
import threading
from typing import Any, Protocol

from socketkit.runtime.limits import Limits
from socketkit.runtime.stats import Counters
from socketkit.runtime.timers import Cancellable, Timers

__all__ = [
    "SPLICE_AVAILABLE",
    "CopyRelay",
    "RelayHost",
    "SpliceRelay",
    "splice_available",
]

log = logging.getLogger("socketkit.server")

SPLICE_AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
_FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if SPLICE_AVAILABLE else 0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_GONE = {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED, errno.ETIMEDOUT}


def splice_available() -> bool:
    """True on Linux with ``os.splice`` (Python 3.10+)."""
    return SPLICE_AVAILABLE


class RelayHost(Protocol):
    """What a relay needs from whoever accepted it (a ``ConnectionHost`` has all of it)."""

    limits: Limits
    counters: Counters
    label: str
    timers: Timers

    def connection_closed(self, conn: Any) -> None: ...


class _Relay:
    """Flow control, life cycle and counters shared by both relays."""

    def __init__(self, listener: RelayHost, sock: socket.socket, peer: str, source: str) -> None:
        self._listener = listener
        self._sock = sock
        self._fd = sock.fileno()
        self.peer = peer
        self.source = source
        limits = listener.limits
        self._counters = listener.counters
        self._timers = listener.timers
        self._chunk = limits.read_chunk
        self._loop = asyncio.get_running_loop()
        self._pending = 0
        self._reading = False
        self._writing = False
        self._eof = False
        self._closing = False
        self._done = False
        self._idle_timeout = limits.idle_timeout
        self._idle_timer: Cancellable | None = None
        self._last_activity = self._timers.now()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.bytes_in = 0
        self.bytes_out = 0

    # -- life cycle -------------------------------------------------------------

    def start(self) -> None:
        """Start relaying (the socket must be non-blocking)."""
        self._sock.setblocking(False)
        self._resume_reading()
        if self._idle_timeout is not None:
            self._idle_timer = self._timers.call_later(self._idle_timeout, self._check_idle)

    def close(self) -> None:
        """Stop reading; close once the pending bytes are written (FIN, not RST)."""
        if self._done or self._closing:
            return
        self._closing = True
        self._pause_reading()
        if self._pending == 0:
            self._finish()

    def abort(self) -> None:
        """Drop the connection now, pending bytes and all."""
        if self._done:
            return
        self._counters.connections_aborted += 1
        with contextlib.suppress(OSError):
            # SO_LINGER 0: the peer sees a reset, as with a transport abort.
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._finish()

    def stop_reading(self) -> None:
        """At shutdown once the grace is over: take no new bytes."""
        if not self._done:
            self._eof = True
            self._pause_reading()

    def wants_flush(self) -> bool:
        return self._pending > 0

    def pending_output(self) -> int:
        """Bytes read and not yet written back (as ``Connection.pending_output``)."""
        return self._pending

    # -- shared mechanics --------------------------------------------------------

    def _on_readable(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Give back what this relay holds besides the socket."""

    def _sent(self, pending: int) -> None:
        """After a write attempt: wait for room, or read again, or finish."""
        self._pending = pending
        if pending:
            # The peer is not reading: stop taking its bytes until it does.
            self._pause_reading()
            if not self._writing:
                self._loop.add_writer(self._fd, self._on_writable)
                self._writing = True
            return
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        if self._eof or self._closing:
            self._finish()
        elif not self._reading:
            self._resume_reading()

    def _on_writable(self) -> None:
        raise NotImplementedError

    def _got_eof(self) -> None:
        self._eof = True
        self._pause_reading()
        if self._pending == 0:
            self._finish()

    def _resume_reading(self) -> None:
        if not self._reading and not self._done:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _lost(self, exc: OSError) -> None:
        if exc.errno not in _GONE:
            log.warning("%s: relay to %s failed: %s", self._listener.label, self.peer, exc)
        self._finish()

    def _check_idle(self) -> None:
        timeout = self._idle_timeout
        if timeout is None or self._done:
            return
        idle = self._timers.now() - self._last_activity
        if idle < timeout:
            self._idle_timer = self._timers.call_later(timeout - idle, self._check_idle)
            return
        self._counters.connections_timed_out += 1
        log.info(
            "%s: closing %s: idle for %.0f s (--idle-timeout)",
            self._listener.label,
            self.peer,
            idle,
        )
        if self._pending:
            self.abort()
        else:
            self.close()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._pause_reading()
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._sock.close()
        self._release()
        self._listener.connection_closed(self)
        if not self.closed.done():
            self.closed.set_result(None)


class SpliceRelay(_Relay):
    """One accepted connection of a mirroring protocol, relayed by the kernel (Linux)."""

    def __init__(self, listener: RelayHost, sock: socket.socket, peer: str, source: str) -> None:
        if not SPLICE_AVAILABLE:
            raise OSError(errno.ENOSYS, "splice() is not available on this system")
        super().__init__(listener, sock, peer, source)
        self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.capacity = _size_pipe(self._pipe_w, listener.limits.write_buffer_high)

    def _on_readable(self) -> None:
        try:
            n = os.splice(self._fd, self._pipe_w, self._chunk, flags=_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if n == 0:
            self._got_eof()
            return
        self._pending += n
        self.bytes_in += n
        self._counters.bytes_received += n
        self._last_activity = self._timers.now()
        self._on_writable()

    def _on_writable(self) -> None:
        pending = self._pending
        while pending:
            try:
                m = os.splice(self._pipe_r, self._fd, pending, flags=_FLAGS)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._lost(exc)
                return
            if m == 0:
                break
            pending -= m
            self.bytes_out += m
            self._counters.bytes_sent += m
        self._sent(pending)

    def _release(self) -> None:
        os.close(self._pipe_r)
        os.close(self._pipe_w)


_SHARED = threading.local()


def _shared_buffer(size: int) -> tuple[bytearray, memoryview]:
    """One receive buffer per thread (one loop per thread): bytes never stay in it."""
    buffer: bytearray | None = getattr(_SHARED, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _SHARED.buffer = bytearray(size)
        _SHARED.view = memoryview(buffer)
    view: memoryview = _SHARED.view
    return buffer, view


class CopyRelay(_Relay):
    """The same relay with recv_into/send and a buffer shared by the thread's connections."""

    def __init__(self, listener: RelayHost, sock: socket.socket, peer: str, source: str) -> None:
        super().__init__(listener, sock, peer, source)
        self._backlog = b""

    def _on_readable(self) -> None:
        buffer, view = _shared_buffer(self._chunk)
        try:
            n = self._sock.recv_into(buffer, self._chunk)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if n == 0:
            self._got_eof()
            return
        self.bytes_in += n
        self._counters.bytes_received += n
        self._last_activity = self._timers.now()
        try:
            sent = self._sock.send(view[:n])
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        self.bytes_out += sent
        self._counters.bytes_sent += sent
        if sent < n:
            # Only what the socket would not take is kept, for this connection alone.
            self._backlog = bytes(view[sent:n])
        self._sent(n - sent)

    def _on_writable(self) -> None:
        backlog = self._backlog
        try:
            sent = self._sock.send(backlog)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        self.bytes_out += sent
        self._counters.bytes_sent += sent
        self._backlog = backlog[sent:]
        self._sent(len(self._backlog))

    def _release(self) -> None:
        self._backlog = b""


def _size_pipe(fd: int, wanted: int) -> int:
    """Ask for a pipe of ``wanted`` bytes (within the system's pipe-max-size)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, max(4096, wanted))
    try:
        size: int = fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        size = 65536
    return size
