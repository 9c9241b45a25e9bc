"""The root-free view's pure parts: TCP_INFO unpacking and MSS segmentation."""

from __future__ import annotations

import struct

import pytest

from socketkit.layers.rootless import (
    TCP_INFO_SIZE,
    implied_wire,
    parse_tcp_info,
    segment_sizes,
)


def tcp_info_bytes(**fields: int) -> bytes:
    """A struct tcp_info as Linux lays it out, with chosen fields set."""
    u8 = [fields.get("state", 1), 0, 0, 0, 0, 0, 0, 0]
    u32_names = [
        "rto",
        "ato",
        "snd_mss",
        "rcv_mss",
        "unacked",
        "sacked",
        "lost",
        "retrans",
        "fackets",
        "last_data_sent",
        "last_ack_sent",
        "last_data_recv",
        "last_ack_recv",
        "pmtu",
        "rcv_ssthresh",
        "rtt",
        "rttvar",
        "snd_ssthresh",
        "snd_cwnd",
        "advmss",
        "reordering",
        "rcv_rtt",
        "rcv_space",
        "total_retrans",
    ]
    u32 = [fields.get(n, 0) for n in u32_names]
    tail = struct.pack(
        "=QQQQIIIIIIQQQQIIQ",
        0,
        0,
        fields.get("bytes_acked", 0),
        fields.get("bytes_received", 0),
        fields.get("segs_out", 0),
        fields.get("segs_in", 0),
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        fields.get("bytes_sent", 0),
    )
    return struct.pack("=8B24I", *u8, *u32) + tail


def test_tcp_info_fields_come_from_their_offsets() -> None:
    raw = tcp_info_bytes(
        state=1,
        snd_mss=1448,
        rcv_mss=536,
        rtt=1234,
        rttvar=56,
        snd_cwnd=10,
        total_retrans=3,
        pmtu=1500,
        bytes_acked=101,
        bytes_received=202,
        segs_out=7,
        segs_in=8,
        bytes_sent=303,
    )
    assert len(raw) == TCP_INFO_SIZE == 208
    info = parse_tcp_info(raw)
    assert info.state == "ESTABLISHED"
    assert (info.snd_mss, info.rcv_mss) == (1448, 536)
    assert (info.rtt_us, info.rtt_var_us) == (1234, 56)
    assert info.snd_cwnd == 10
    assert info.retransmits == 3
    assert info.pmtu == 1500
    assert (info.bytes_acked, info.bytes_received, info.bytes_sent) == (101, 202, 303)
    assert (info.segs_out, info.segs_in) == (7, 8)


def test_an_older_kernels_shorter_struct_leaves_newer_fields_none() -> None:
    raw = tcp_info_bytes(state=6, snd_mss=1000, bytes_acked=5)[:104]
    info = parse_tcp_info(raw)
    assert info.state == "TIME_WAIT"
    assert info.snd_mss == 1000
    assert info.bytes_acked is None
    assert info.bytes_sent is None
    assert parse_tcp_info(b"").state == "state 0"


@pytest.mark.parametrize(
    ("length", "mss", "sizes"),
    [
        (0, 1448, []),
        (5, 1448, [5]),
        (1448, 1448, [1448]),
        (3000, 1000, [1000, 1000, 1000]),
        (2500, 1000, [1000, 1000, 500]),
        (10, 0, [10]),
    ],
)
def test_segment_sizes(length: int, mss: int, sizes: list[int]) -> None:
    assert segment_sizes(length, mss) == sizes
    assert sum(sizes) == length
    assert all(s <= mss for s in sizes) or mss == 0


def test_implied_wire_names_what_each_call_causes() -> None:
    assert "SYN, SYN-ACK, ACK" in implied_wire("connect", None, "tcp", 1448)
    assert "3 data segment(s) [1448, 1448, 104]" in implied_wire("sendall", 3000, "tcp", 1448)
    assert "FIN" in implied_wire("shutdown", None, "tcp", 1448)
    assert "EOF" in implied_wire("recv", 0, "tcp", 1448)
    assert "nothing" in implied_wire("connect", None, "udp", None)
    assert "one datagram of 5 bytes" in implied_wire("send", 5, "udp", None)
