"""Driving a stream protocol the way the runtime does, bounded in steps."""

from __future__ import annotations

from socketkit.protocols.base import StreamProtocol


def drain(proto: StreamProtocol, max_bytes: int | None = None, *, steps: int = 100_000) -> bytes:
    """Everything ``data_to_send`` has now, each call within ``max_bytes``."""
    out = bytearray()
    for _ in range(steps):
        data = proto.data_to_send(max_bytes)
        if not data:
            return bytes(out)
        assert max_bytes is None or len(data) <= max_bytes
        out += data
    raise AssertionError("data_to_send never ran dry")


def run_chunks(proto: StreamProtocol, chunks: list[bytes], *, eof: bool = True) -> bytes:
    """Feed chunks (draining after each, as the runtime does), then EOF and drain."""
    out = bytearray()
    for chunk in chunks:
        proto.receive_data(chunk)
        out += drain(proto)
    if eof:
        proto.receive_eof()
        out += drain(proto)
    return bytes(out)
