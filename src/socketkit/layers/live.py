"""One run of ``socketkit layers``: open a capture, run the exchange, decode, explain.

The capture opens first (so it sees the SYN), the exchange runs, then the
capture is drained until the timeline is complete (the final ACK of the
teardown, or every datagram) or a deadline passes. When capture is not
permitted the exchange still runs and the result carries the root-free view
and the one line that says how to get capture rights. Nothing prints here.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from socketkit.endpoints import Endpoint
from socketkit.errors import PermissionDenied, UsageError
from socketkit.layers.capture import (
    Capture,
    CaptureOpener,
    open_packet_capture,
    read_pcap,
)
from socketkit.layers.decode import (
    DecodedPacket,
    Frame,
    decode_frame,
    decode_frames,
    deduplicate,
)
from socketkit.layers.exchange import ExchangeResult, run_exchange
from socketkit.layers.timeline import Conversation, Timeline, build_timeline, is_complete

__all__ = ["LayersReport", "capture_interface", "clock_zero", "observe", "read_capture_file"]


@dataclass(frozen=True)
class LayersReport:
    """Everything the CLI shows: packets as layers, the timeline, the socket's view."""

    mode: str
    """"capture" (live, with packets), "rootless" (no capture rights) or "file" (--read)."""
    packets: list[DecodedPacket]
    timeline: Timeline
    exchange: ExchangeResult | None = None
    frames: list[Frame] = field(default_factory=list)
    interface: str | None = None
    complete: bool = True
    dropped: int = 0
    capture_problem: str | None = None
    """Why there was no capture (one line, with how to grant it), in rootless mode;
    what was wrong with the file (a warning line), in file mode."""


def capture_interface(host: str | None) -> str | None:
    """Loopback for loopback targets (the usual case); None (every interface) otherwise."""
    if host is None:
        return "lo"
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return None
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    try:
        if addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses):
            return "lo"
    except ValueError:
        return None
    return None


def observe(
    target: Endpoint,
    message: bytes,
    *,
    udp: bool = False,
    ipv6: bool = False,
    chunk: int = 1024,
    timeout: float = 5.0,
    opener: CaptureOpener = open_packet_capture,
) -> LayersReport:
    """Capture (if permitted) the packets of one exchange with ``target``."""
    capture: Capture | None = None
    problem: str | None = None
    try:
        capture = opener(capture_interface(target.host), target.port)
    except (PermissionDenied, UsageError) as exc:
        problem = str(exc)
    try:
        result = run_exchange(target, message, udp=udp, ipv6=ipv6, chunk=chunk, timeout=timeout)
        protocol = "UDP" if udp else "TCP"
        conv = Conversation.of(protocol, result.client, result.server)
        if capture is None:
            return LayersReport(
                mode="rootless",
                packets=[],
                timeline=build_timeline([], conv, result.calls),
                exchange=result,
                capture_problem=problem,
            )
        sends = sum(1 for c in result.calls if c.name == "send")
        replies = sum(1 for c in result.calls if c.name == "recvmsg")
        collected = capture.collect(
            keep=_Keep(conv),
            done=lambda frames: is_complete(
                decode_frames(frames), conv, datagrams_out=sends, datagrams_in=replies
            ),
            timeout=timeout,
        )
        interface = capture.interface
    finally:
        if capture is not None:
            capture.close()
    frames = deduplicate(collected.frames)
    packets = decode_frames(frames)
    return LayersReport(
        mode="capture",
        packets=packets,
        timeline=build_timeline(packets, conv, result.calls),
        exchange=result,
        frames=frames,
        interface=interface,
        complete=collected.complete,
        dropped=collected.dropped,
    )


class _Keep:
    """Frame filter for one conversation: a cheap byte check, then scapy's decoding."""

    def __init__(self, conv: Conversation) -> None:
        self._conv = conv
        self._port = struct.pack("!H", conv.server[1])

    def __call__(self, frame: Frame) -> bool:
        if self._port not in frame.data:
            return False
        return self._conv.direction(decode_frame(frame)) is not None


def read_capture_file(path: str) -> LayersReport:
    """``--read``: any pcap or pcapng file, shown the same way (no application calls)."""
    problems: list[str] = []
    frames = read_pcap(path, problems)
    packets = decode_frames(frames)
    return LayersReport(
        mode="file",
        packets=packets,
        timeline=build_timeline(packets),
        frames=frames,
        complete=not problems,
        capture_problem=f"warning: {problems[0]}" if problems else None,
    )


def clock_zero(packets: Sequence[DecodedPacket], exchange: ExchangeResult | None) -> float | None:
    """The zero of the report's clock: the first call or packet, whichever came first."""
    stamps = [p.timestamp for p in packets]
    if exchange is not None:
        stamps += [c.started for c in exchange.calls]
    return min(stamps) if stamps else None
