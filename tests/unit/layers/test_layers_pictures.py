"""The terminal pictures: ladder diagram and encapsulation bars, Unicode and ASCII."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from socketkit.cli.main import main
from socketkit.layers.capture import write_pcap
from socketkit.layers.decode import decode_frames
from socketkit.layers.pictures import (
    ASCII,
    UNICODE,
    encapsulation,
    encapsulation_bar,
    glyphs_for,
    ladder,
    side_by_side,
)
from socketkit.layers.timeline import build_timeline
from tests.unit.layers.builders import CLIENT6, SERVER6, datagram, frames, tcp_exchange


def test_glyphs_follow_what_the_encoding_can_carry() -> None:
    assert glyphs_for("utf-8") is UNICODE
    assert glyphs_for("UTF-16") is UNICODE
    assert glyphs_for("ascii") is ASCII
    assert glyphs_for("latin-1") is ASCII
    assert glyphs_for(None) is ASCII
    assert glyphs_for("no-such-codec") is ASCII


def test_encapsulation_adds_up_to_the_frame() -> None:
    packets = decode_frames(frames(tcp_exchange(b"hello")))
    data = packets[3]
    spans = encapsulation(data)
    assert [(s.layer, s.name, s.size) for s in spans] == [
        ("link", "Ethernet", 14),
        ("internet", "IPv4", 20),
        ("transport", "TCP", 20),
        ("application", "data", 5),
    ]
    assert [s.start for s in spans] == [0, 14, 34, 54]
    assert sum(s.size for s in spans) == data.link.frame_length == 59
    assert encapsulation_bar(data, UNICODE) == (
        "┃ Ethernet 14 B ┃ IPv4 20 B ┃ TCP 20 B ┃ data 5 B ┃ = 59 B"
    )
    assert (
        encapsulation_bar(data, ASCII)
        == "| Ethernet 14 B | IPv4 20 B | TCP 20 B | data 5 B | = 59 B"
    )
    udp6 = decode_frames(frames([datagram(CLIENT6, SERVER6, b"abc")]))[0]
    assert [(s.name, s.size) for s in encapsulation(udp6)] == [
        ("Ethernet", 14),
        ("IPv6", 40),
        ("UDP", 8),
        ("data", 3),
    ]


def test_ethernet_padding_is_its_own_span() -> None:
    # a 1-byte UDP datagram is padded to Ethernet's 60-byte minimum on a real wire
    from tests.unit.layers.builders import CLIENT, SERVER

    frame = frames([datagram(CLIENT, SERVER, b"x")])[0]
    padded = frame.__class__(data=frame.data + b"\0" * (60 - len(frame.data)), timestamp=0.0)
    spans = encapsulation(decode_frames([padded])[0])
    assert spans[-1].layer == "padding"
    assert spans[-1].size == 60 - (14 + 20 + 8 + 1)


def test_ladder_draws_one_arrow_per_packet_in_its_direction() -> None:
    packets = decode_frames(frames(tcp_exchange(b"hello")))
    timeline = build_timeline(packets)
    entries = {e.packet: e for e in timeline.entries}
    lines = ladder(packets, entries, "client 127.0.0.1:40000", "server 127.0.0.1:10007", UNICODE)
    rows = [line for line in lines if line.lstrip().startswith("#")]
    assert len(rows) == 10
    assert "SYN seq 0" in rows[0] and rows[0].rstrip().endswith("▶│")
    assert "│◀" in rows[1] and "SYN+ACK seq 0 ack 1" in rows[1]
    assert "PSH+ACK seq 1 ack 1 len 5" in rows[3] and "▶│" in rows[3]
    assert "│◀" in rows[5] and "len 5" in rows[5]
    assert "FIN+ACK" in rows[7]
    # every row has its two lines at the same columns
    columns = {(row.index("│"), row.rindex("│")) for row in rows}
    assert len(columns) == 1
    ascii_lines = ladder(packets, entries, "client a", "server b", ASCII)
    assert all(line.isascii() for line in ascii_lines)
    assert "|----" in ascii_lines[3] and "->|" in ascii_lines[3]


def test_side_by_side_keeps_the_left_column_width() -> None:
    assert side_by_side(["ab", "abcd"], ["x", "y", "z"], gap=1) == ["ab   x", "abcd y", "     z"]


def _run_with_stdout(encoding: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="\n")
    monkeypatch.setattr(sys, "stdout", out)
    assert main(argv) == 0
    out.flush()
    return raw.getvalue().decode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_cli_ladder_uses_unicode_only_when_stdout_can_encode_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    path = str(tmp_path / "x.pcap")
    write_pcap(path, frames(tcp_exchange(b"hello")))
    text = _run_with_stdout(encoding, ["layers", "--read", path], monkeypatch)
    assert "SYN seq 0" in text
    assert "Ethernet 14 B" in text and "TCP 20 B" in text and "data 5 B" in text
    if encoding == "ascii":
        assert text.isascii()
        assert "->|" in text and "|<-" in text
    else:
        assert "▶│" in text and "│◀" in text and "┃ Ethernet 14 B ┃" in text
