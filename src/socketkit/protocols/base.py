"""The contract every service implements: sans I/O, bytes and time in, bytes out.

Rules for every module in ``protocols/``:

- no socket, asyncio, clock or logging here: the runtime owns all I/O and
  passes the time in (``now``, seconds since the Unix epoch, UTC);
- bytes from a peer never raise: bad input becomes an error reply or a close
  (``close_expected()``); only misuse of this API by our own code raises
  ``LocalProtocolError``;
- every limit is a constructor argument with a safe default.

A stream service (TCP, Unix) is one object per connection. The runtime calls
``receive_data`` for each chunk read and ``receive_eof`` when the peer half-
closes, then drains ``data_to_send`` (bounded by ``max_bytes`` when it only
has room for that much, which is how an endless sender like chargen is pulled
only while the socket is writable), and closes the connection once
``close_expected()`` is true and everything was written.

A datagram service (UDP) is one object per bound socket: ``handle`` takes one
datagram and returns the reply datagrams; the runtime adds addresses and
applies the reply budget.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import ClassVar

from socketkit.errors import LocalProtocolError

__all__ = ["DatagramService", "OutputBuffer", "StreamProtocol"]


class OutputBuffer:
    """Bytes waiting to be sent, taken in bounded slices without re-copying.

    Chunks are kept as they came, so the common case (one chunk, taken
    whole) hands the very same ``bytes`` object back: echo costs no copy here.
    """

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._size += len(data)

    def take(self, max_bytes: int | None = None) -> bytes:
        """Remove and return up to ``max_bytes`` (all when ``None``)."""
        if not self._size:
            return b""
        if max_bytes is None or max_bytes >= self._size:
            if len(self._chunks) == 1:
                data = self._chunks.popleft()
            else:
                data = b"".join(self._chunks)
                self._chunks.clear()
            self._size = 0
            return data
        parts: list[bytes] = []
        wanted = max_bytes
        while wanted > 0:
            chunk = self._chunks.popleft()
            if len(chunk) > wanted:
                parts.append(chunk[:wanted])
                self._chunks.appendleft(chunk[wanted:])
                wanted = 0
            else:
                parts.append(chunk)
                wanted -= len(chunk)
        self._size -= max_bytes
        return b"".join(parts)


class StreamProtocol(ABC):
    """One connection of a stream service (TCP or Unix)."""

    mirrors_input: ClassVar[bool] = False
    """True when the output is exactly the input, byte for byte (echo).

    The runtime may then relay bytes itself (zero-copy where the kernel
    offers it) without knowing which service this is.
    """

    input_makes_output: ClassVar[bool] = True
    """True when reading more input can make more output (echo, sum).

    The runtime then stops reading while output waits for a slow client, so
    memory stays bounded. A sender whose output does not come from its input
    (chargen) sets False: it is read all along (input is cheap to discard)
    and a slow client's FIN is still seen.
    """

    def __init__(self, *, now: float = 0.0) -> None:
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer. Never raises for any bytes."""
        if self._eof:
            raise LocalProtocolError("receive_data() called after receive_eof()")
        self._on_data(data)

    def receive_eof(self) -> None:
        """The peer will send no more (FIN). Idempotent."""
        if not self._eof:
            self._eof = True
            self._on_eof()

    @property
    def eof_received(self) -> bool:
        return self._eof

    @abstractmethod
    def _on_data(self, data: bytes) -> None: ...

    def _on_eof(self) -> None:
        """Most services have nothing to add when the peer stops sending."""

    @abstractmethod
    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        """Bytes to write now, at most ``max_bytes``; ``b""`` when nothing is due.

        Call it after every ``receive_*`` call and whenever the socket has
        room again.
        """

    @abstractmethod
    def close_expected(self) -> bool:
        """True once the connection should close after the pending output."""

    def wants_input(self) -> bool:
        """False while unanswered input piles up: the runtime then stops reading.

        A service that answers lazily in bounded batches (sum) says False
        until ``data_to_send`` has worked through its backlog, so a client
        pipelining far ahead is paced by its own replies, cannot grow our
        memory, and cannot keep other clients waiting.
        """
        return True


class DatagramService(ABC):
    """A datagram service: one datagram in, zero or more reply datagrams out."""

    mirrors_input: ClassVar[bool] = False
    """True when the one reply is always the datagram itself (echo).

    The batched UDP path may then send what it received, as received,
    without calling ``handle`` for sources the guard lets through freely.
    """

    @abstractmethod
    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        """Replies to one datagram. Never raises for any bytes."""
