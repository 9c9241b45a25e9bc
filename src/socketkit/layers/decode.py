"""Captured bytes to the four layers of the TCP/IP stack, with no I/O.

The lecture draws the stack as link, internet, transport and application;
each decoded packet here is exactly those four dataclasses. The header
parsing is scapy's (a maintained dissector that also reads the link types
other systems write), so this module only picks the fields a learner needs
and adds what a single packet cannot know: sequence numbers relative to the
start of each direction, as Wireshark shows them, and which of the kernel's
two loopback copies of a packet to keep.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scapy.config import conf
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Padding

from socketkit.display import escape_payload
from socketkit.endpoints import join_host_port

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "ApplicationLayer",
    "DecodedPacket",
    "Frame",
    "InternetLayer",
    "LinkLayer",
    "TransportLayer",
    "decode_frame",
    "decode_frames",
    "deduplicate",
    "flag_names",
]

LINKTYPE_NULL = 0
"""BSD loopback (macOS lo0): a 4-byte address family before the IP header."""
LINKTYPE_ETHERNET = 1
"""Ethernet, and Linux loopback, which carries an Ethernet header of zero MACs."""
LINKTYPE_RAW = 101
"""Raw IP: no link header at all (tunnels)."""
LINKTYPE_LINUX_SLL = 113
"""Linux "cooked" capture, what tcpdump -i any writes."""

_LINK_KINDS = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    12: "raw IP",
    LINKTYPE_LINUX_SLL: "Linux cooked",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2",
}

_FLAG_ORDER = (
    ("S", "SYN"),
    ("F", "FIN"),
    ("R", "RST"),
    ("P", "PSH"),
    ("A", "ACK"),
    ("U", "URG"),
    ("E", "ECE"),
    ("C", "CWR"),
)

_SEQ_MOD = 1 << 32


@dataclass(frozen=True)
class Frame:
    """One captured frame as the capture (or a pcap file) hands it over.

    ``outgoing`` marks the copy the kernel shows a packet socket when a
    packet leaves an interface; on loopback the same packet then comes back
    in as a second copy, so only one of the two is kept.
    """

    data: bytes
    timestamp: float
    linktype: int = LINKTYPE_ETHERNET
    interface: str | None = None
    wire_length: int | None = None
    outgoing: bool = False


@dataclass(frozen=True)
class LinkLayer:
    """Layer 1/2: which interface and what framing carried the packet."""

    interface: str | None
    kind: str
    frame_length: int
    source: str | None = None
    destination: str | None = None


@dataclass(frozen=True)
class InternetLayer:
    """Layer 3: IPv4 or IPv6 addresses and how far the packet may travel."""

    version: int
    source: str
    destination: str
    ttl: int
    """TTL for IPv4, hop limit for IPv6: routers decrement it, 0 drops the packet."""
    total_length: int
    """The whole IP packet in bytes (IPv6: 40-byte header + payload length)."""
    protocol: str


@dataclass(frozen=True)
class TransportLayer:
    """Layer 4: ports, and for TCP the fields that make a byte stream reliable."""

    protocol: str
    source_port: int
    destination_port: int
    payload_length: int
    length: int
    """UDP: the length field (header + data); TCP: header + data in this segment."""
    flags: tuple[str, ...] = ()
    seq: int | None = None
    ack: int | None = None
    window: int | None = None
    relative_seq: int | None = None
    relative_ack: int | None = None

    @property
    def flag_text(self) -> str:
        return ",".join(self.flags) if self.flags else "-"


@dataclass(frozen=True)
class ApplicationLayer:
    """Layer 7: the bytes the applications exchanged; what the socket API sees."""

    payload: bytes

    @property
    def text(self) -> str:
        return escape_payload(self.payload)


@dataclass(frozen=True)
class DecodedPacket:
    """One packet, as the four layers of the lecture's TCP/IP stack."""

    index: int
    timestamp: float
    link: LinkLayer
    internet: InternetLayer | None
    transport: TransportLayer | None
    application: ApplicationLayer
    summary: str

    @property
    def source(self) -> str | None:
        if self.internet is None or self.transport is None:
            return None
        return join_host_port(self.internet.source, self.transport.source_port)

    @property
    def destination(self) -> str | None:
        if self.internet is None or self.transport is None:
            return None
        return join_host_port(self.internet.destination, self.transport.destination_port)

    def has_flag(self, name: str) -> bool:
        return self.transport is not None and name in self.transport.flags


def flag_names(flags: Any) -> tuple[str, ...]:
    """scapy's ``"SA"``-style flag string as names in handshake order: SYN, ACK."""
    letters = str(flags)
    return tuple(name for letter, name in _FLAG_ORDER if letter in letters)


def deduplicate(frames: Iterable[Frame]) -> list[Frame]:
    """Drop the outgoing copy of each loopback packet.

    A packet socket on Linux sees a loopback packet twice: once leaving
    (``PACKET_OUTGOING``) and once arriving. tcpdump keeps the arriving one,
    and so do we; on other interfaces each packet is seen once either way.
    """
    return [f for f in frames if not (f.outgoing and _is_loopback_name(f.interface))]


def _is_loopback_name(interface: str | None) -> bool:
    return interface is not None and re.fullmatch(r"lo\d*", interface) is not None


def decode_frame(frame: Frame, index: int = 1) -> DecodedPacket:
    """One frame to its layers; absolute sequence numbers only (see decode_frames)."""
    packet = _dissect(frame)
    link = _link(frame, packet)
    ip_layer = packet.getlayer(IP) or packet.getlayer(IPv6)
    if ip_layer is None:
        return DecodedPacket(
            index=index,
            timestamp=frame.timestamp,
            link=link,
            internet=None,
            transport=None,
            application=ApplicationLayer(b""),
            summary=packet.summary(),
        )
    internet = _internet(ip_layer)
    transport, payload = _transport(ip_layer)
    return DecodedPacket(
        index=index,
        timestamp=frame.timestamp,
        link=link,
        internet=internet,
        transport=transport,
        application=ApplicationLayer(payload),
        summary=packet.summary(),
    )


def decode_frames(frames: Sequence[Frame]) -> list[DecodedPacket]:
    """Every frame, de-duplicated, numbered from 1, TCP numbers made relative.

    A sequence number is relative to the first one seen in its direction
    (the SYN's, when the capture saw the handshake), an acknowledgement
    number to the first one seen in the opposite direction: so the first
    data byte is seq 1 and ``ack 6`` reads "got 5 bytes and the SYN".
    """
    packets = [decode_frame(f, i) for i, f in enumerate(deduplicate(frames), start=1)]
    base: dict[tuple[str, int, str, int], int] = {}
    for p in packets:
        t = p.transport
        if p.internet is None or t is None or t.protocol != "TCP" or t.seq is None:
            continue
        key = (p.internet.source, t.source_port, p.internet.destination, t.destination_port)
        base.setdefault(key, t.seq)
    out = []
    for p in packets:
        t = p.transport
        if p.internet is None or t is None or t.protocol != "TCP" or t.seq is None:
            out.append(p)
            continue
        key = (p.internet.source, t.source_port, p.internet.destination, t.destination_port)
        back = (key[2], key[3], key[0], key[1])
        rel_seq = (t.seq - base[key]) % _SEQ_MOD
        rel_ack = None
        if "ACK" in t.flags and t.ack is not None and back in base:
            rel_ack = (t.ack - base[back]) % _SEQ_MOD
        out.append(replace(p, transport=replace(t, relative_seq=rel_seq, relative_ack=rel_ack)))
    return out


def _dissect(frame: Frame) -> Packet:
    """scapy's dissection, or the raw bytes when a header is cut short.

    scapy tolerates damage inside a packet but raises (``struct.error``) when
    the outermost header itself is too short; a capture file may hold such
    frames, and one bad frame must not stop the others from showing.
    """
    layer_class = conf.l2types.num2layer.get(frame.linktype)
    if layer_class is not None:
        try:
            packet: Packet = layer_class(frame.data)
            return packet
        except Exception:  # any dissector failure means "undecodable", shown raw
            pass
    raw: Packet = conf.raw_layer(frame.data)
    return raw


def _link(frame: Frame, packet: Packet) -> LinkLayer:
    kind = _LINK_KINDS.get(frame.linktype, f"link type {frame.linktype}")
    source = destination = None
    if isinstance(packet, Ether):
        source, destination = str(packet.src), str(packet.dst)
    return LinkLayer(
        interface=frame.interface,
        kind=kind,
        frame_length=frame.wire_length if frame.wire_length is not None else len(frame.data),
        source=source,
        destination=destination,
    )


def _num(value: Any) -> int:
    """A header field as an int; scapy leaves fields of a cut-short header as None."""
    return int(value) if value is not None else 0


def _internet(ip_layer: Packet) -> InternetLayer:
    if isinstance(ip_layer, IP):
        return InternetLayer(
            version=4,
            source=str(ip_layer.src),
            destination=str(ip_layer.dst),
            ttl=_num(ip_layer.ttl),
            total_length=_num(ip_layer.len),
            protocol=_protocol_name(_num(ip_layer.proto)),
        )
    return InternetLayer(
        version=6,
        source=str(ip_layer.src),
        destination=str(ip_layer.dst),
        ttl=_num(ip_layer.hlim),
        total_length=40 + _num(ip_layer.plen),
        protocol=_protocol_name(_num(ip_layer.nh)),
    )


def _protocol_name(number: int) -> str:
    return {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6"}.get(number, f"protocol {number}")


def _without_padding(layer: Packet) -> bytes:
    """The layer's bytes, less any Ethernet padding scapy kept after the IP packet."""
    data = bytes(layer)
    pad = layer.getlayer(Padding)
    if pad is not None:
        data = data[: len(data) - len(bytes(pad))]
    return data


def _transport(ip_layer: Packet) -> tuple[TransportLayer | None, bytes]:
    tcp = ip_layer.getlayer(TCP)
    if tcp is not None:
        segment = _without_padding(tcp)
        payload = segment[_num(tcp.dataofs) * 4 :]
        return (
            TransportLayer(
                protocol="TCP",
                source_port=_num(tcp.sport),
                destination_port=_num(tcp.dport),
                payload_length=len(payload),
                length=len(segment),
                flags=flag_names(tcp.flags),
                seq=_num(tcp.seq),
                ack=_num(tcp.ack),
                window=_num(tcp.window),
            ),
            payload,
        )
    udp = ip_layer.getlayer(UDP)
    if udp is not None:
        datagram = _without_padding(udp)
        length = _num(udp.len) if udp.len is not None else len(datagram)
        payload = datagram[8:length]
        return (
            TransportLayer(
                protocol="UDP",
                source_port=_num(udp.sport),
                destination_port=_num(udp.dport),
                payload_length=len(payload),
                length=length,
            ),
            payload,
        )
    return None, b""
