"""Exact headers: TCP options, window scaling, header lengths, IPv6 payload length.

Checked twice: against the numbers the test put into the packets, and
against tcpdump's own reading (``tcpdump -nn -v``) of the same pcap.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from socketkit.layers.capture import write_pcap
from socketkit.layers.decode import decode_frames, tcp_options
from socketkit.layers.pictures import options_text, window_text
from tests.support import TIMEOUT
from tests.unit.layers.builders import frames

SYN_OPTIONS = [
    ("MSS", 65495),
    ("SAckOK", b""),
    ("Timestamp", (1000, 0)),
    ("NOP", None),
    ("WScale", 7),
]
SYNACK_OPTIONS = [
    ("MSS", 1460),
    ("SAckOK", b""),
    ("Timestamp", (2000, 1000)),
    ("NOP", None),
    ("WScale", 9),
]
TS = [("NOP", None), ("NOP", None), ("Timestamp", (1001, 2000))]


def _handshake(v6: bool = False, server_scale: bool = True) -> list[Packet]:
    def ip(src: str, dst: str) -> Packet:
        return IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst, flags="DF", id=7)

    c, s = ("::1", "::1") if v6 else ("127.0.0.1", "127.0.0.1")
    synack_opts = SYNACK_OPTIONS if server_scale else SYNACK_OPTIONS[:-2]
    return [
        Ether()
        / ip(c, s)
        / TCP(sport=40000, dport=7, flags="S", seq=100, window=65495, options=SYN_OPTIONS),
        Ether()
        / ip(s, c)
        / TCP(
            sport=7, dport=40000, flags="SA", seq=500, ack=101, window=65483, options=synack_opts
        ),
        Ether()
        / ip(c, s)
        / TCP(sport=40000, dport=7, flags="A", seq=101, ack=501, window=512, options=TS),
        Ether()
        / ip(c, s)
        / TCP(sport=40000, dport=7, flags="PA", seq=101, ack=501, window=512, options=TS)
        / Raw(b"hello"),
        Ether()
        / ip(s, c)
        / TCP(
            sport=7,
            dport=40000,
            flags="A",
            seq=501,
            ack=106,
            window=128,
            options=[("NOP", None), ("NOP", None), ("SAck", (101, 106))],
        ),
    ]


def test_options_are_decoded_in_header_order_with_kinds_and_sizes() -> None:
    syn = decode_frames(frames(_handshake()))[0].transport
    assert syn is not None
    assert [(o.kind, o.name, o.value, o.length) for o in syn.options] == [
        (2, "MSS", "65495", 4),
        (4, "SAckOK", "", 2),
        (8, "Timestamp", "val 1000 ecr 0", 10),
        (1, "NOP", "", 1),
        (3, "WScale", "7", 3),
    ]
    assert syn.header_length == 20 + 20  # 4 + 2 + 10 + 1 + 3 bytes of options
    assert options_text(syn) == (
        "MSS 65495 (largest segment I accept), SACK-permitted, timestamps val 1000 ecr 0, "
        "NOP, WScale 7 (my windows x128)"
    )
    sack = tcp_options([("SAck", (1, 6, 10, 20)), ("EOL", None), (30, b"\x01\x02")])
    assert [o.text for o in sack] == ["SAck 1-6 10-20", "EOL", "option 30 0102"]
    assert [o.length for o in sack] == [18, 1, 4]


def test_window_is_scaled_by_the_senders_own_syn_shift() -> None:
    packets = decode_frames(frames(_handshake()))
    t = [p.transport for p in packets]
    assert all(x is not None for x in t)
    syn, synack, ack, data, server_ack = t  # type: ignore[misc]
    assert (syn.window, syn.window_scale, syn.scaled_window) == (65495, 0, 65495)
    assert (synack.window, synack.window_scale, synack.scaled_window) == (65483, 0, 65483)
    assert (ack.window, ack.window_scale, ack.scaled_window) == (512, 7, 512 << 7)
    assert (server_ack.window, server_ack.window_scale, server_ack.scaled_window) == (
        128,
        9,
        128 << 9,
    )
    assert window_text(ack) == "window 65536 B (field 512 << scale 7)"
    assert "never scaled" in window_text(syn)
    assert data.header_length == 32


def test_scaling_is_off_both_ways_when_one_syn_lacks_the_option() -> None:
    packets = decode_frames(frames(_handshake(server_scale=False)))
    ack = packets[2].transport
    assert ack is not None
    assert (ack.window_scale, ack.scaled_window) == (0, 512)
    assert window_text(ack) == "window 512 B (field 512, no scaling)"


def test_without_the_syn_the_shift_is_unknown_and_only_the_field_is_shown() -> None:
    packets = decode_frames(frames(_handshake()[2:]))
    ack = packets[0].transport
    assert ack is not None
    assert (ack.window, ack.window_scale, ack.scaled_window) == (512, None, None)
    assert "scale unknown" in window_text(ack)


def test_ip_header_and_payload_lengths() -> None:
    v4 = decode_frames(frames(_handshake()))[3].internet
    assert v4 is not None
    assert (v4.header_length, v4.total_length, v4.payload_length) == (20, 20 + 32 + 5, 37)
    assert v4.length_field == ("total length", 57)
    assert (v4.identification, v4.dont_fragment) == (7, True)
    v6 = decode_frames(frames(_handshake(v6=True)))[3].internet
    assert v6 is not None
    assert (v6.header_length, v6.payload_length, v6.total_length) == (40, 37, 77)
    assert v6.length_field == ("payload length", 37)


# --- tcpdump's reading of the same pcap ------------------------------------

_LINE = re.compile(r"Flags \[[^\]]*\].*")


def tcpdump_verbose(path: str) -> list[str]:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip(
            "tcpdump is not installed (the test set-up installs it: apt-get install tcpdump)"
        )
    done = subprocess.run(
        [tcpdump, "-nn", "-v", "-S", "-r", path],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    # -v folds each packet over two lines; join them
    joined = re.sub(r"\n\s+", " ", done.stdout.strip())
    return joined.splitlines()


def tcpdump_options(text: str) -> list[str]:
    found = re.search(r"options \[([^\]]*)\]", text)
    return found.group(1).split(",") if found else []


def as_tcpdump(name: str, value: str) -> str:
    """Our option as tcpdump -v spells it."""
    spelled = {"MSS": "mss", "WScale": "wscale", "SAckOK": "sackOK", "NOP": "nop", "EOL": "eol"}
    if name == "Timestamp":
        return f"TS {value}"
    if name == "SAck":
        return "sack 1 {" + "}{".join(f"{b.replace('-', ':')}" for b in value.split()) + "}"
    return f"{spelled[name]} {value}".strip()


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_tcpdump_agrees_on_options_window_and_lengths(tmp_path: Path, v6: bool) -> None:
    path = str(tmp_path / "headers.pcap")
    built = frames(_handshake(v6=v6))
    write_pcap(path, built)
    ours = decode_frames(built)
    theirs = tcpdump_verbose(path)
    assert len(theirs) == len(ours) == 5
    for p, line in zip(ours, theirs, strict=True):
        t, ip = p.transport, p.internet
        assert t is not None and ip is not None
        assert f"win {t.window}," in line  # tcpdump shows the raw field
        assert tcpdump_options(line) == [as_tcpdump(o.name, o.value) for o in t.options]
        name, value = ip.length_field
        assert name == ("payload length" if v6 else "total length")
        if v6:
            assert f"payload length: {value})" in line
        else:
            assert f"length {value})" in line
            assert f"id {ip.identification}" in line
            assert "flags [DF]" in line
        assert re.search(rf"length {t.payload_length}$", line)
