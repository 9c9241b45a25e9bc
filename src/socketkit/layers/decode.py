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
    "TcpOption",
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

_LINK_HEADER_BYTES = {
    LINKTYPE_NULL: 4,
    LINKTYPE_ETHERNET: 14,
    LINKTYPE_RAW: 0,
    12: 0,
    LINKTYPE_LINUX_SLL: 16,
    228: 0,
    229: 0,
    276: 20,
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
    header_length: int = 0
    """The link header's bytes before the IP header (Ethernet 14, Linux cooked 16,
    BSD loopback 4, raw IP 0)."""


@dataclass(frozen=True)
class InternetLayer:
    """Layer 3: IPv4 or IPv6 addresses and how far the packet may travel."""

    version: int
    source: str
    destination: str
    ttl: int
    """TTL for IPv4, hop limit for IPv6: routers decrement it, 0 drops the packet."""
    total_length: int
    """The whole IP packet in bytes. IPv4 has this field; IPv6 has none (it is the
    40-byte fixed header + ``payload_length``, computed here)."""
    protocol: str
    header_length: int = 20
    """IPv4: IHL x 4 (20 without options); IPv6: the fixed 40-byte header."""
    payload_length: int = 0
    """What follows the IP header. IPv6's field is exactly this ("payload length");
    for IPv4 it is total length - header length."""
    identification: int | None = None
    """IPv4's fragment identification; IPv6 has none in its fixed header."""
    dont_fragment: bool | None = None
    """IPv4's DF bit: routers must drop, not fragment (path MTU discovery)."""

    @property
    def length_field(self) -> tuple[str, int]:
        """The header's own length field as (name, value), as tcpdump -v names it."""
        if self.version == 6:
            return ("payload length", self.payload_length)
        return ("total length", self.total_length)


@dataclass(frozen=True)
class TcpOption:
    """One TCP option as it sits in the header: its kind number, name and value."""

    kind: int
    name: str
    """MSS, WScale, SAckOK, SAck, Timestamp, NOP, EOL, or ``option N``."""
    value: str
    """The value in words: ``65495`` (MSS), ``7`` (shift), ``1-6`` (SACK block)..."""
    length: int
    """Bytes this option takes in the header (NOP and EOL: 1)."""

    @property
    def text(self) -> str:
        return f"{self.name} {self.value}" if self.value else self.name


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
    """The 16-bit window field exactly as sent (tcpdump's ``win``)."""
    relative_seq: int | None = None
    relative_ack: int | None = None
    header_length: int = 8
    """TCP: data offset x 4 (20 + options); UDP: always 8."""
    options: tuple[TcpOption, ...] = ()
    window_scale: int | None = None
    """The shift the sender announced in its SYN (RFC 7323) and that applies to
    this segment; 0 on SYNs (never scaled); None when the SYN was not seen."""
    scaled_window: int | None = None
    """The receive window in bytes: ``window << window_scale``; None when unknown."""
    checksum: int | None = None
    urgent_pointer: int | None = None

    @property
    def flag_text(self) -> str:
        return ",".join(self.flags) if self.flags else "-"

    def option(self, name: str) -> TcpOption | None:
        return next((o for o in self.options if o.name == name), None)


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
    shift: dict[tuple[str, int, str, int], int | None] = {}
    for p in packets:
        t = p.transport
        if p.internet is None or t is None or t.protocol != "TCP" or t.seq is None:
            continue
        key = (p.internet.source, t.source_port, p.internet.destination, t.destination_port)
        base.setdefault(key, t.seq)
        if "SYN" in t.flags and key not in shift:
            wscale = t.option("WScale")
            shift[key] = min(int(wscale.value), 14) if wscale is not None else None
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
        scale = _window_scale(t, shift.get(key, -1), shift.get(back, -1))
        scaled = None if scale is None or t.window is None else t.window << scale
        out.append(
            replace(
                p,
                transport=replace(
                    t,
                    relative_seq=rel_seq,
                    relative_ack=rel_ack,
                    window_scale=scale,
                    scaled_window=scaled,
                ),
            )
        )
    return out


def _window_scale(t: TransportLayer, mine: int | None, theirs: int | None) -> int | None:
    """The shift that applies to this segment's window field (RFC 7323 section 2.2).

    A SYN's window is never scaled. Otherwise the sender's own SYN announced
    the shift, and scaling is on only if both SYNs carried the option (either
    side without it means 0 both ways). -1 stands for "that SYN was not seen":
    then the shift cannot be known and None is returned.
    """
    if "SYN" in t.flags:
        return 0
    if mine == -1 or theirs == -1:
        return None
    if mine is None or theirs is None:
        return 0
    return mine


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
        header_length=_LINK_HEADER_BYTES.get(frame.linktype, 0),
    )


def _num(value: Any) -> int:
    """A header field as an int; scapy leaves fields of a cut-short header as None."""
    return int(value) if value is not None else 0


def _internet(ip_layer: Packet) -> InternetLayer:
    if isinstance(ip_layer, IP):
        header = _num(ip_layer.ihl) * 4
        total = _num(ip_layer.len)
        return InternetLayer(
            version=4,
            source=str(ip_layer.src),
            destination=str(ip_layer.dst),
            ttl=_num(ip_layer.ttl),
            total_length=total,
            protocol=_protocol_name(_num(ip_layer.proto)),
            header_length=header,
            payload_length=max(total - header, 0),
            identification=_num(ip_layer.id),
            dont_fragment="DF" in str(ip_layer.flags),
        )
    plen = _num(ip_layer.plen)
    return InternetLayer(
        version=6,
        source=str(ip_layer.src),
        destination=str(ip_layer.dst),
        ttl=_num(ip_layer.hlim),
        total_length=40 + plen,
        protocol=_protocol_name(_num(ip_layer.nh)),
        header_length=40,
        payload_length=plen,
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
                header_length=_num(tcp.dataofs) * 4,
                options=tcp_options(tcp.options),
                checksum=_num(tcp.chksum),
                urgent_pointer=_num(tcp.urgptr),
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
                header_length=8,
                checksum=_num(udp.chksum),
            ),
            payload,
        )
    return None, b""


_OPTION_KINDS = {"EOL": 0, "NOP": 1, "MSS": 2, "WScale": 3, "SAckOK": 4, "SAck": 5, "Timestamp": 8}
_OPTION_SIZES = {"EOL": 1, "NOP": 1, "MSS": 4, "WScale": 3, "SAckOK": 2, "Timestamp": 10}


def tcp_options(options: Any) -> tuple[TcpOption, ...]:
    """scapy's option list (``[("MSS", 65495), ("NOP", None), ...]``) as TcpOptions."""
    out = []
    for item in options or ():
        name, value = item
        if isinstance(name, int):  # an option scapy does not know: (kind, raw bytes)
            raw = bytes(value or b"")
            out.append(TcpOption(name, f"option {name}", raw.hex(), 2 + len(raw)))
            continue
        name = str(name)
        kind = _OPTION_KINDS.get(name, -1)
        if name == "SAck":
            edges = [int(v) for v in (value or ())]
            blocks = " ".join(f"{a}-{b}" for a, b in zip(edges[::2], edges[1::2], strict=False))
            out.append(TcpOption(kind, name, blocks, 2 + 4 * len(edges)))
        elif name == "Timestamp":
            tsval, tsecr = value
            out.append(TcpOption(kind, name, f"val {tsval} ecr {tsecr}", 10))
        elif name in ("NOP", "EOL", "SAckOK"):
            out.append(TcpOption(kind, name, "", _OPTION_SIZES[name]))
        elif name in ("MSS", "WScale"):
            out.append(TcpOption(kind, name, str(int(value)), _OPTION_SIZES[name]))
        else:
            text = value.hex() if isinstance(value, bytes) else str(value)
            out.append(TcpOption(kind, name, text, 0))
    return tuple(out)
