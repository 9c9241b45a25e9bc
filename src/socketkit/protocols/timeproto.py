"""Time, RFC 868: the time as a 32-bit binary number (named so it does not shadow ``time``).

"The time is the number of seconds since 00:00 (midnight) 1 January 1900
GMT", sent as 4 bytes, unsigned, big-endian. It wraps modulo 2**32 on
2036-02-07 06:28:16 UTC; clients pick the era closest to their own clock
(``decode_time``). Twisted's ``wire.Time`` sends signed seconds since 1970,
2,208,988,800 seconds off; ours counts from 1900.

TCP: the 4 bytes are sent at once, then we close.
UDP: any datagram (the RFC's is empty) is answered with the 4 bytes.
"""

from __future__ import annotations

import math
import struct
from typing import Final

from socketkit.protocols.base import DatagramService, OutputBuffer, StreamProtocol

__all__ = ["EPOCH_OFFSET", "TimeDatagram", "TimeStream", "decode_time", "encode_time"]

EPOCH_OFFSET: Final = 2_208_988_800
"""Seconds from 1900-01-01 to 1970-01-01 (RFC 868's check value for 1970)."""
_ERA: Final = 2**32


def encode_time(now: float) -> bytes:
    """4 bytes for ``now`` (seconds since the Unix epoch): whole seconds since 1900, mod 2**32."""
    return struct.pack("!I", (math.floor(now) + EPOCH_OFFSET) % _ERA)


def decode_time(data: bytes, near: float) -> int:
    """Unix seconds for a 4-byte reply, in the 2**32-second era closest to ``near``."""
    if len(data) != 4:
        raise ValueError(f"an RFC 868 time is 4 bytes, not {len(data)}")
    value: int = struct.unpack("!I", data)[0]
    base = value - EPOCH_OFFSET
    era = round((near - base) / _ERA)
    return base + era * _ERA


class TimeStream(StreamProtocol):
    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._out = OutputBuffer()
        self._out.append(encode_time(now))

    def _on_data(self, data: bytes) -> None:
        pass

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        return not self._out


class TimeDatagram(DatagramService):
    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        return [encode_time(now)]
