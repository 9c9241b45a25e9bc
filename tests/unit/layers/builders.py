"""Packets the layers tests build themselves (no capture files of unknown origin).

``tcp_exchange`` writes the packets of one echo exchange exactly as Linux
puts them on loopback: handshake, data, the peer's ACK, the echo, our ACK,
then FIN, FIN and the last ACK.
"""

from __future__ import annotations

from collections.abc import Sequence

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from socketkit.layers.decode import LINKTYPE_ETHERNET, Frame

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 10007)
CLIENT6 = ("::1", 40000)
SERVER6 = ("::1", 10007)


def _ip(src: str, dst: str, ttl: int = 64) -> Packet:
    if ":" in src:
        return IPv6(src=src, dst=dst, hlim=ttl)
    return IP(src=src, dst=dst, ttl=ttl)


def segment(
    src: tuple[str, int],
    dst: tuple[str, int],
    flags: str,
    seq: int,
    ack: int = 0,
    payload: bytes = b"",
    window: int = 512,
    ttl: int = 64,
) -> Packet:
    pkt = (
        Ether()
        / _ip(src[0], dst[0], ttl)
        / TCP(
            sport=src[1], dport=dst[1], flags=flags, seq=seq % 2**32, ack=ack % 2**32, window=window
        )
    )
    if payload:
        pkt = pkt / Raw(payload)
    return pkt


def datagram(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ttl: int = 64) -> Packet:
    return Ether() / _ip(src[0], dst[0], ttl) / UDP(sport=src[1], dport=dst[1]) / Raw(payload)


def tcp_exchange(
    message: bytes = b"hello",
    *,
    client: tuple[str, int] = CLIENT,
    server: tuple[str, int] = SERVER,
    isn_client: int = 1000,
    isn_server: int = 5000,
    echo_chunks: Sequence[int] | None = None,
    send_chunks: Sequence[int] | None = None,
) -> list[Packet]:
    c, s = isn_client, isn_server
    n = len(message)
    out = [
        segment(client, server, "S", c),
        segment(server, client, "SA", s, c + 1),
        segment(client, server, "A", c + 1, s + 1),
    ]
    offset = 0
    for size in send_chunks or [n]:
        out.append(
            segment(client, server, "PA", c + 1 + offset, s + 1, message[offset : offset + size])
        )
        offset += size
    out.append(segment(server, client, "A", s + 1, c + 1 + n))
    offset = 0
    for size in echo_chunks or [n]:
        out.append(
            segment(
                server, client, "PA", s + 1 + offset, c + 1 + n, message[offset : offset + size]
            )
        )
        offset += size
    out.append(segment(client, server, "A", c + 1 + n, s + 1 + n))
    out += [
        segment(client, server, "FA", c + 1 + n, s + 1 + n),
        segment(server, client, "FA", s + 1 + n, c + 2 + n),
        segment(client, server, "A", c + 2 + n, s + 2 + n),
    ]
    return out


def frames(
    packets: Sequence[Packet], *, start: float = 1_700_000_000.0, interface: str | None = "lo"
) -> list[Frame]:
    """Packets as the capture would hand them over, 1 ms apart."""
    return [
        Frame(
            data=bytes(p),
            timestamp=start + i / 1000,
            linktype=LINKTYPE_ETHERNET,
            interface=interface,
        )
        for i, p in enumerate(packets)
    ]
