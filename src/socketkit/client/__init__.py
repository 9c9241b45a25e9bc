"""Clients: connect (Happy Eyeballs), the echo client, the netcat-like relay and listener."""

from __future__ import annotations

from socketkit.client.connect import connect_datagram, connect_stream
from socketkit.client.echo import EchoResult, echo
from socketkit.client.listen import ListenResult, listen
from socketkit.client.netcat import (
    OutputWriter,
    RelayOptions,
    RelayResult,
    read_fd_chunks,
    relay,
    relay_socket,
)

__all__ = [
    "EchoResult",
    "ListenResult",
    "OutputWriter",
    "RelayOptions",
    "RelayResult",
    "connect_datagram",
    "connect_stream",
    "echo",
    "listen",
    "read_fd_chunks",
    "relay",
    "relay_socket",
]
