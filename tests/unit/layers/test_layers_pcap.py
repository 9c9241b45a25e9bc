"""pcap files: what we write reads back identically; other files fail clearly.

These touch only files under tmp_path (the capture itself is tested in
tests/integration/test_layers.py).
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import PcapNgWriter, wrpcap

from socketkit.errors import DataError, PermissionDenied, UsageError
from socketkit.layers import capture
from socketkit.layers.capture import grant_hint, open_packet_capture, read_pcap, write_pcap
from socketkit.layers.decode import LINKTYPE_RAW, Frame, decode_frames
from tests.unit.layers.builders import frames, tcp_exchange


def test_what_we_write_reads_back_the_same(tmp_path: Path) -> None:
    original = frames(tcp_exchange(b"hello"), start=1_700_000_000.123456)
    path = str(tmp_path / "x.pcap")
    write_pcap(path, original)
    back = read_pcap(path)
    assert [f.data for f in back] == [f.data for f in original]
    assert [round(f.timestamp, 6) for f in back] == [round(f.timestamp, 6) for f in original]
    assert {f.linktype for f in back} == {1}
    assert decode_frames(back)[3].application.payload == b"hello"


def test_a_truncated_pcap_gives_what_it_holds_and_one_line_not_scapys_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    original = frames(tcp_exchange(b"hello"), start=1_700_000_000.0)
    path = tmp_path / "cut.pcap"
    write_pcap(str(path), original)
    whole = path.read_bytes()
    intact: list[str] = []
    assert len(read_pcap(str(path), intact)) == len(original)
    assert intact == []
    path.write_bytes(whole[: 24 + 16 + len(original[0].data) + 16 + 10])  # inside packet 2
    for _ in range(5):  # scapy rate-limits a repeated warning; our check must not depend on it
        problems: list[str] = []
        back = read_pcap(str(path), problems)
        assert [f.data for f in back] == [original[0].data, original[1].data[:10]]
        assert problems == [
            f"{path} ends inside packet 2 (a truncated capture): "
            "showing what it holds, the last packet cut short"
        ]
    assert read_pcap(str(tmp_path / "cut.pcap")) == back  # problems are optional
    assert "truncated" not in capfd.readouterr().err  # scapy's own warning stays quiet


def test_a_pcap_written_by_scapy_itself_is_read(tmp_path: Path) -> None:
    path = str(tmp_path / "scapy.pcap")
    wrpcap(path, tcp_exchange(b"abc"))
    packets = decode_frames(read_pcap(path))
    assert len(packets) == 10
    assert packets[3].application.payload == b"abc"


def test_pcapng_and_raw_ip_link_type(tmp_path: Path) -> None:
    path = str(tmp_path / "raw.pcapng")
    with PcapNgWriter(path) as writer:
        writer.write(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="S"))
    [frame] = read_pcap(path)
    [pkt] = decode_frames([frame])
    assert pkt.internet is not None
    assert pkt.internet.source == "10.0.0.1"
    assert pkt.transport is not None
    assert pkt.transport.flags == ("SYN",)


def test_raw_ip_frames_keep_their_link_type(tmp_path: Path) -> None:
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="S"))
    path = str(tmp_path / "raw.pcap")
    write_pcap(path, [Frame(data, 1.0, linktype=LINKTYPE_RAW)])
    [frame] = read_pcap(path)
    assert frame.linktype == LINKTYPE_RAW


def test_an_empty_capture_is_a_valid_pcap(tmp_path: Path) -> None:
    path = str(tmp_path / "empty.pcap")
    write_pcap(path, [])
    assert read_pcap(path) == []


def test_mixed_link_types_are_refused(tmp_path: Path) -> None:
    mixed = [Frame(b"x", 0.0, linktype=1), Frame(b"y", 0.0, linktype=101)]
    with pytest.raises(DataError, match="several link types"):
        write_pcap(str(tmp_path / "m.pcap"), mixed)


def test_not_a_pcap_and_missing_files_are_data_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n" * 10)
    with pytest.raises(DataError, match="not a pcap"):
        read_pcap(str(text))
    with pytest.raises(DataError, match="no such file"):
        read_pcap(str(tmp_path / "missing.pcap"))
    with pytest.raises(DataError, match="cannot write"):
        write_pcap(str(tmp_path / "no-dir" / "x.pcap"), [])


def test_no_capture_right_is_one_line_that_says_how_to_grant_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_args: Any) -> socket.socket:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(capture.socket, "socket", refuse)
    with pytest.raises(PermissionDenied) as caught:
        open_packet_capture("lo")
    line = str(caught.value)
    assert "\n" not in line
    assert "not permitted" in line
    assert "CAP_NET_RAW" in line
    assert "sudo" in line
    assert "setcap cap_net_raw" in line
    assert caught.value.exit_code == 77
    assert grant_hint() in line


def test_no_packet_sockets_on_this_system_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(capture.socket, "AF_PACKET", raising=False)
    with pytest.raises(UsageError, match="Linux only"):
        open_packet_capture("lo")


def test_grant_hint_names_the_real_interpreter_not_a_venv_symlink(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """setcap refuses a symlink (a venv's bin/python3): the hint must name the real file."""
    real = tmp_path / "real" / "python3.11"
    real.parent.mkdir()
    real.write_bytes(b"")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    link = venv_bin / "python3"
    link.symlink_to(real)
    monkeypatch.setattr(capture.sys, "executable", str(link))
    hint = grant_hint()
    assert f"sudo setcap cap_net_raw+eip {real}" in hint
    assert f"setcap cap_net_raw+eip {link}" not in hint
    # sudo resets PATH: the command to run as root is the venv's interpreter by full path
    assert f"sudo {link} -m socketkit layers" in hint
    assert "every script it runs" in hint
    assert "\n" not in hint
