"""Clients: connect (Happy Eyeballs), the echo client and the netcat-like relay."""

from __future__ import annotations

from socketkit.client.connect import connect_datagram, connect_stream
from socketkit.client.echo import EchoResult, echo
from socketkit.client.netcat import RelayOptions, RelayResult, read_fd_chunks, relay

__all__ = [
    "EchoResult",
    "RelayOptions",
    "RelayResult",
    "connect_datagram",
    "connect_stream",
    "echo",
    "read_fd_chunks",
    "relay",
]
