"""``socketkit layers``: the TCP/IP stack's four layers on a live exchange.

``decode`` turns captured bytes into link/internet/transport/application
dataclasses (pure, scapy's dissectors underneath); ``capture`` is the only
module that captures or touches pcap files; ``exchange`` runs the echo
exchange and times each socket call; ``timeline`` names the phases and ties
packets to calls; ``rootless`` is what a socket shows without capture rights;
``live`` puts them together for the CLI.
"""

from __future__ import annotations

from socketkit.layers.decode import (
    ApplicationLayer,
    DecodedPacket,
    Frame,
    InternetLayer,
    LinkLayer,
    TransportLayer,
    decode_frame,
    decode_frames,
)
from socketkit.layers.live import LayersReport, observe, read_capture_file
from socketkit.layers.rootless import SocketView, TcpInfo, parse_tcp_info, segment_sizes
from socketkit.layers.timeline import Conversation, Timeline, build_timeline

__all__ = [
    "ApplicationLayer",
    "Conversation",
    "DecodedPacket",
    "Frame",
    "InternetLayer",
    "LayersReport",
    "LinkLayer",
    "SocketView",
    "TcpInfo",
    "Timeline",
    "TransportLayer",
    "build_timeline",
    "decode_frame",
    "decode_frames",
    "observe",
    "parse_tcp_info",
    "read_capture_file",
    "segment_sizes",
]
