"""Discard, RFC 863: throw away everything received, answer nothing.

TCP: "any data received is thrown away ... until the calling user terminates
the connection"; we close once the client half-closes (nothing is owed).
UDP: "the datagram is thrown away", no reply, so discard cannot amplify.
"""

from __future__ import annotations

from socketkit.protocols.base import DatagramService, StreamProtocol

__all__ = ["DiscardDatagram", "DiscardStream"]


class DiscardStream(StreamProtocol):
    def _on_data(self, data: bytes) -> None:
        pass

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return b""

    def close_expected(self) -> bool:
        return self.eof_received


class DiscardDatagram(DatagramService):
    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        return []
