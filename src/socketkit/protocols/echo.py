"""Echo, RFC 862: send back every byte received.

TCP: "any data received is sent back", until the client closes; we finish
sending what was received after the client half-closes, then close.
UDP: each datagram is answered by one datagram with the same bytes. The reply
is never larger than the request, so echo is no amplifier.
"""

from __future__ import annotations

from typing import ClassVar

from socketkit.protocols.base import DatagramService, OutputBuffer, StreamProtocol

__all__ = ["EchoDatagram", "EchoStream"]


class EchoStream(StreamProtocol):
    mirrors_input: ClassVar[bool] = True

    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._out = OutputBuffer()

    def _on_data(self, data: bytes) -> None:
        self._out.append(data)

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        return self.eof_received and not self._out


class EchoDatagram(DatagramService):
    mirrors_input: ClassVar[bool] = True

    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        return [datagram]
