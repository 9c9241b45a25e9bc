"""Decoding: bytes to the four layers, on packets the tests build with scapy."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, CookedLinux, Ether, Loopback
from scapy.packet import Raw

from socketkit.layers.decode import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Frame,
    decode_frame,
    decode_frames,
    deduplicate,
    flag_names,
)
from tests.unit.layers.builders import (
    CLIENT,
    CLIENT6,
    SERVER,
    SERVER6,
    datagram,
    frames,
    segment,
    tcp_exchange,
)


def test_each_packet_has_four_layers_with_the_fields_people_need() -> None:
    packets = decode_frames(frames(tcp_exchange(b"hello")))
    assert len(packets) == 10
    data = packets[3]
    assert data.link.interface == "lo"
    assert data.link.kind == "Ethernet"
    assert data.link.frame_length == 14 + 20 + 20 + 5
    assert data.internet is not None
    assert (data.internet.version, data.internet.source, data.internet.destination) == (
        4,
        "127.0.0.1",
        "127.0.0.1",
    )
    assert data.internet.ttl == 64
    assert data.internet.total_length == 20 + 20 + 5
    assert data.internet.protocol == "TCP"
    assert data.transport is not None
    assert (data.transport.source_port, data.transport.destination_port) == (CLIENT[1], SERVER[1])
    assert data.transport.flags == ("PSH", "ACK")
    assert data.transport.window == 512
    assert data.transport.payload_length == 5
    assert data.application.payload == b"hello"
    assert data.application.text == '"hello"'
    assert data.source == "127.0.0.1:40000"
    assert data.destination == "127.0.0.1:10007"


def test_sequence_numbers_are_relative_to_each_directions_start() -> None:
    packets = decode_frames(frames(tcp_exchange(b"hello", isn_client=1000, isn_server=77777)))
    seen = [(p.transport.relative_seq, p.transport.relative_ack) for p in packets if p.transport]
    assert seen == [
        (0, None),  # SYN: no ACK flag, no ack number
        (0, 1),  # SYN-ACK acknowledges the SYN
        (1, 1),
        (1, 1),  # "hello" is bytes 1-5
        (1, 6),  # the server got 5 bytes + the SYN
        (1, 6),  # the echo
        (6, 6),
        (6, 6),  # our FIN
        (6, 7),  # theirs, acknowledging ours
        (7, 7),
    ]
    assert packets[0].transport is not None
    assert packets[0].transport.seq == 1000


def test_relative_numbers_survive_sequence_wraparound() -> None:
    packets = decode_frames(
        frames(tcp_exchange(b"abc", isn_client=2**32 - 2, isn_server=2**32 - 1))
    )
    data = packets[3].transport
    assert data is not None
    assert data.seq == (2**32 - 1)  # absolute: the client's ISN + 1
    assert (data.relative_seq, data.relative_ack) == (1, 1)
    last = packets[-1].transport
    assert last is not None
    assert (last.relative_seq, last.relative_ack) == (5, 5)


def test_ipv6_hop_limit_and_length() -> None:
    [pkt] = decode_frames(frames([segment(CLIENT6, SERVER6, "PA", 1, 1, b"hi", ttl=7)]))
    assert pkt.internet is not None
    assert (pkt.internet.version, pkt.internet.source, pkt.internet.destination) == (
        6,
        "::1",
        "::1",
    )
    assert pkt.internet.ttl == 7
    assert pkt.internet.total_length == 40 + 20 + 2
    assert pkt.application.payload == b"hi"
    assert pkt.source == "[::1]:40000"


def test_udp_ports_length_and_payload() -> None:
    [pkt] = decode_frames(frames([datagram(CLIENT, SERVER, b"ping\n")]))
    assert pkt.transport is not None
    assert pkt.transport.protocol == "UDP"
    assert pkt.transport.length == 8 + 5
    assert pkt.transport.payload_length == 5
    assert pkt.transport.flags == ()
    assert pkt.transport.seq is None
    assert pkt.application.payload == b"ping\n"


def test_ethernet_padding_is_not_payload() -> None:
    # A 1-byte TCP segment is shorter than Ethernet's 60-byte minimum: the
    # frame is padded, and the padding must not show as application data.
    frame = bytes(segment(CLIENT, SERVER, "PA", 1, 1, b"x")) + b"\x00" * 5
    pkt = decode_frame(Frame(frame, 0.0))
    assert pkt.application.payload == b"x"
    udp = bytes(datagram(CLIENT, SERVER, b"y")) + b"\xff" * 10
    assert decode_frame(Frame(udp, 0.0)).application.payload == b"y"


def test_other_link_types_decode_to_the_same_upper_layers() -> None:
    ip_packet = IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / TCP(sport=1, dport=2, flags="S")
    cases = {
        LINKTYPE_RAW: bytes(ip_packet),
        LINKTYPE_LINUX_SLL: bytes(CookedLinux(proto=0x0800) / ip_packet),
        LINKTYPE_NULL: bytes(Loopback(type=2) / ip_packet),
        LINKTYPE_ETHERNET: bytes(Ether() / ip_packet),
    }
    kinds = set()
    for linktype, data in cases.items():
        pkt = decode_frame(Frame(data, 0.0, linktype=linktype))
        assert pkt.internet is not None, linktype
        assert pkt.internet.source == "10.0.0.1"
        assert pkt.internet.ttl == 9
        assert pkt.transport is not None
        assert pkt.transport.flags == ("SYN",)
        kinds.add(pkt.link.kind)
    assert kinds == {"raw IP", "Linux cooked", "BSD loopback", "Ethernet"}


def test_a_frame_that_is_not_ip_keeps_its_link_layer_only() -> None:
    pkt = decode_frame(Frame(bytes(Ether() / ARP(pdst="127.0.0.1")), 0.0))
    assert pkt.internet is None
    assert pkt.transport is None
    assert pkt.application.payload == b""
    assert "ARP" in pkt.summary
    assert pkt.link.kind == "Ethernet"


def test_loopbacks_outgoing_copy_is_dropped_elsewhere_nothing_is() -> None:
    base = frames(tcp_exchange(b"hello"))
    doubled = []
    for f in base:
        doubled += [replace(f, outgoing=True), f]
    assert deduplicate(doubled) == base
    assert len(decode_frames(doubled)) == len(base)
    eth = [replace(f, interface="eth0", outgoing=i % 2 == 0) for i, f in enumerate(base)]
    assert deduplicate(eth) == eth


def test_flag_names_follow_handshake_order() -> None:
    assert flag_names("SA") == ("SYN", "ACK")
    assert flag_names("FPA") == ("FIN", "PSH", "ACK")
    assert flag_names("R") == ("RST",)
    assert flag_names("") == ()


def test_packets_are_numbered_from_one_in_capture_order() -> None:
    packets = decode_frames(frames(tcp_exchange()))
    assert [p.index for p in packets] == list(range(1, 11))
    assert packets[0].timestamp < packets[-1].timestamp


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([LINKTYPE_ETHERNET, LINKTYPE_RAW, 113, 0, 999]))
def test_any_bytes_decode_without_raising(data: bytes, linktype: int) -> None:
    pkt = decode_frame(Frame(data, 0.0, linktype=linktype))
    assert pkt.link.frame_length == len(data)
    if pkt.transport is not None:
        assert pkt.transport.payload_length == len(pkt.application.payload)


def test_truncated_tcp_header_does_not_raise() -> None:
    full = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP() / Raw(b"data"))
    for cut in range(len(full)):
        decode_frame(Frame(full[:cut], 0.0))


def test_udp_with_a_lying_length_field() -> None:
    pkt = Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=5, dport=6, len=200) / Raw(b"ab")
    decoded = decode_frame(Frame(bytes(pkt), 0.0))
    assert decoded.transport is not None
    assert decoded.transport.payload_length == len(decoded.application.payload)
