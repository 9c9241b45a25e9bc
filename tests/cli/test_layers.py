"""``socketkit layers`` through main(argv), plus subprocess runs for exit codes.

Live runs need capture rights (CI is root on Linux) and skip with that reason
elsewhere; the no-permission path is tested everywhere by swapping the
capture opener, and once for real as an unprivileged user.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from socketkit.cli import layers as layers_cli
from socketkit.cli.main import main
from socketkit.errors import PermissionDenied
from socketkit.layers.capture import Capture, open_packet_capture
from tests.support import TIMEOUT, closed_port


def capture_permitted() -> bool:
    if not hasattr(socket, "AF_PACKET"):
        return False
    try:
        open_packet_capture("lo").close()
    except PermissionDenied:
        return False
    return True


needs_capture = pytest.mark.skipif(
    not capture_permitted(),
    reason="packet capture is not permitted here (needs Linux and root or CAP_NET_RAW)",
)

GRANT_LINE = "packet capture is not permitted (it needs root or CAP_NET_RAW) - run it as root: sudo"


@pytest.fixture
def no_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Play a machine where capture is not permitted, through the CLI's opener seam."""

    def refuse(_interface: str | None, _port: int | None) -> Capture:
        raise PermissionDenied(f"{GRANT_LINE}, or grant this Python once: sudo setcap ...")

    monkeypatch.setattr(layers_cli, "OPEN_CAPTURE", refuse)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main(["layers", "--json", "--timeout", str(TIMEOUT), *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_help_has_examples_and_how_to_grant_capture(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["layers", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "sudo socketkit layers" in out
    assert "setcap cap_net_raw" in out
    for flag in (
        "--json",
        "--pcap",
        "--read",
        "--udp",
        "--ipv6",
        "--chunk",
        "--message",
        "--html",
        "--compare",
    ):
        assert flag in out


@needs_capture
def test_live_capture_shows_four_layers_and_the_timeline(
    capsys: pytest.CaptureFixture[str], loop_name: str
) -> None:
    code = main(["layers", "--loop", loop_name, "--timeout", str(TIMEOUT)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    assert "captured 10 packets on lo" in out
    for layer in ("  link ", "  internet ", "  transport ", "  application "):
        assert out.count(layer) == 10, layer
    assert "flags SYN," in out
    assert "flags SYN,ACK," in out
    assert 'application  "hello" (5 bytes)' in out
    # piped, the timeline is tab-separated: phase, packets, calls
    assert "three-way handshake\t#1-#3\tconnect(" in out
    assert "teardown\t#8-#10\tshutdown(SHUT_WR), recv() returned 0 bytes (EOF)" in out
    assert "\tsendall(5 bytes)\t" in out


@needs_capture
def test_json_has_every_layer_of_every_packet(
    capsys: pytest.CaptureFixture[str], loop_name: str
) -> None:
    result = run_json(capsys, "--loop", loop_name, "--message", "hi\tthere")
    assert result["mode"] == "capture"
    assert result["complete"] is True
    packets = result["packets"]
    assert [p["transport"]["flags"] for p in packets[:3]] == [["SYN"], ["SYN", "ACK"], ["ACK"]]
    data = [p for p in packets if p["application"]["length"]]
    assert [p["application"]["text"] for p in data] == ["hi\\tthere", "hi\\tthere"]
    assert data[0]["application"]["hex"] == b"hi\tthere".hex()
    assert data[0]["direction"] == "client -> server"
    assert data[0]["phase"] == "data"
    assert data[0]["calls"] == [2]
    assert data[0]["internet"]["version"] == 4
    assert data[0]["link"]["interface"] == "lo"
    assert next(p["name"] for p in result["phases"]) == "handshake"
    assert result["calls"][0]["name"] == "connect"
    assert result["socket"]["tcp_info"]["state"] == "ESTABLISHED"


@needs_capture
@pytest.mark.parametrize("flags", [[], ["--udp"], ["--ipv6"]], ids=["tcp", "udp", "tcp6"])
def test_pcap_written_then_read_shows_the_same_packets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, loop_name: str, flags: list[str]
) -> None:
    path = str(tmp_path / "x.pcap")
    live = run_json(capsys, "--loop", loop_name, "--pcap", path, *flags)
    assert live["pcap"] == path
    read = run_json(capsys, "--read", path)
    assert read["mode"] == "file"

    def layers(report: dict[str, Any]) -> list[Any]:
        return [
            (p["direction"], p["phase"], p["internet"], p["transport"], p["application"])
            for p in report["packets"]
        ]

    assert layers(read) == layers(live)
    assert read["conversation"] == live["conversation"]


def test_without_capture_rights_one_line_then_the_root_free_view(
    capsys: pytest.CaptureFixture[str], no_capture: None, loop_name: str
) -> None:
    code = main(["layers", "--loop", loop_name, "--timeout", str(TIMEOUT)])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.count("\n") == 1
    assert err.startswith(f"socketkit: {GRANT_LINE}")
    assert "setcap" in err
    assert "captured" not in out
    assert 'sent "hello" (5 bytes), received "hello" (5 bytes)' in out
    assert "(getsockname)" in out
    assert "(getpeername)" in out
    assert "TTL\t" in out
    assert "round-trip time\t" in out
    assert "congestion window\t" in out
    assert "retransmits\t0" in out
    assert "bytes received\t5" in out
    assert "MSS segmentation\t5 bytes -> 1 segment(s) [5]" in out
    assert "three-way handshake: SYN, SYN-ACK, ACK" in out  # what connect() implies


def test_root_free_json(
    capsys: pytest.CaptureFixture[str], no_capture: None, loop_name: str
) -> None:
    message = "y" * 200_000
    result = run_json(capsys, "--loop", loop_name, "--message", message, "--chunk", "4096")
    assert result["mode"] == "rootless"
    assert result["packets"] == []
    assert result["capture_problem"].startswith(GRANT_LINE)
    info = result["socket"]["tcp_info"]
    assert info["bytes_received"] == 200_000
    assert sum(result["segments"]) == 200_000
    assert max(result["segments"]) == info["snd_mss"]
    recvs = [c for c in result["calls"] if c["name"] == "recv" and c["nbytes"]]
    assert all(c["nbytes"] <= 4096 for c in recvs)
    assert sum(c["nbytes"] for c in recvs) == 200_000


def test_root_free_udp_ipv6(
    capsys: pytest.CaptureFixture[str], no_capture: None, loop_name: str
) -> None:
    result = run_json(capsys, "--loop", loop_name, "--udp", "--ipv6")
    assert result["exchange"]["family"] == "IPv6"
    assert result["exchange"]["received"] == "hello"
    assert result["socket"]["tcp_info"] is None
    assert result["socket"]["hop_limit"] >= 1
    assert result["segments"] is None


def test_pcap_without_capture_rights_exits_77_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], no_capture: None, tmp_path: Path, loop_name: str
) -> None:
    path = tmp_path / "x.pcap"
    code = main(["layers", "--loop", loop_name, "--pcap", str(path)])
    out, err = capsys.readouterr()
    assert code == 77
    assert "socket view" in out or "(getsockname)" in out
    assert err.splitlines()[-1] == f"socketkit: no pcap written to {path}: capture is not permitted"
    assert not path.exists()


def test_refused_connection_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with closed_port() as port:
        code = main(["layers", f"127.0.0.1:{port}", "--timeout", str(TIMEOUT)])
    _out, err = capsys.readouterr()
    assert code == 69
    assert "connection refused" in err
    assert err.count("\n") == 1 or "not permitted" in err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["--read", "missing.pcap"], 65, "no such file"),
        (["--read", "x.pcap", "127.0.0.1:7"], 64, "--read shows a capture file"),
        (["--chunk", "0"], 64, "expected a whole number"),
        (["[::1:7"], 64, "bad address"),
        (["--ipv6", "127.0.0.1:7"], 64, "is an IPv4 address"),
    ],
)
def test_usage_and_data_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    assert main(["layers", *argv]) == code
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1


def test_read_a_file_that_is_not_a_capture(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 64)
    assert main(["layers", "--read", str(junk)]) == 65
    assert "not a pcap or pcapng file" in capsys.readouterr().err


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "socketkit", "layers", *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        **kwargs,
    )


def test_subprocess_error_has_no_traceback(tmp_path: Path) -> None:
    done = _run(["--read", str(tmp_path / "missing.pcap")])
    assert done.returncode == 65
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_really_unprivileged_user_gets_the_root_free_view() -> None:
    """One real run without CAP_NET_RAW: root with that capability dropped, else ourselves.

    Dropping the capability (rather than switching to another user) keeps the
    checkout readable wherever CI cloned it.
    """
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv(1) to drop CAP_NET_RAW")
        prefix = [setpriv, "--inh-caps=-net_raw", "--bounding-set=-net_raw"]
    elif capture_permitted():
        pytest.skip("this user has capture rights (CAP_NET_RAW), so the no-permission path is moot")
    else:
        prefix = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "socketkit", "layers", "--timeout", str(TIMEOUT)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        cwd="/",
        env=env,
    )
    if done.returncode != 0 and "Permission denied" in done.stderr and "python" in done.stderr:
        pytest.skip(f"the unprivileged user cannot run this Python: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"socketkit: {GRANT_LINE}")
    assert "setcap cap_net_raw+eip" in done.stderr
    assert "(getsockname)" in done.stdout
    assert "MSS segmentation" in done.stdout


@needs_capture
def test_live_ladder_bars_and_exact_headers(
    capsys: pytest.CaptureFixture[str], loop_name: str
) -> None:
    code = main(["layers", "--loop", loop_name, "--timeout", str(TIMEOUT), "--message", "hello"])
    out, err = capsys.readouterr()
    assert code == 0, err
    # the ladder: one arrow per packet, the SYN first (pytest's capture is UTF-8)
    assert "SYN seq 0" in out and "▶│" in out and "│◀" in out
    # Linux loopback: timestamps on every segment, so 32-byte TCP headers after the SYNs
    assert "┃ Ethernet 14 B ┃ IPv4 20 B ┃ TCP 40 B (20 + 20 options) ┃ = 74 B" in out
    assert "┃ Ethernet 14 B ┃ IPv4 20 B ┃ TCP 32 B (20 + 12 options) ┃ data 5 B ┃ = 71 B" in out
    assert "options: MSS 65495" in out and "SACK-permitted" in out and "WScale" in out
    assert "<< scale" in out  # windows after the handshake are shown scaled
    assert "header 40 B (data offset 10 words)" in out


@needs_capture
def test_compare_shows_tcp_and_udp_side_by_side(
    capsys: pytest.CaptureFixture[str], loop_name: str, tmp_path: Path
) -> None:
    page = tmp_path / "compare.html"
    argv = ["layers", "--loop", loop_name, "--timeout", str(TIMEOUT), "--compare"]
    assert main([*argv, "--html", str(page), "--message", "hello"]) == 0
    out, err = capsys.readouterr()
    ladder_rows = [line for line in out.splitlines() if line.lstrip().startswith("#1 ")]
    (row,) = ladder_rows  # TCP's #1 and UDP's #1 on the same line
    assert "SYN seq 0" in row and "UDP 5 B" in row
    assert out.splitlines()[2].startswith("TCP") and "UDP" in out.splitlines()[2]
    table = [line.split("\t") for line in out.splitlines() if line.startswith(("TCP\t", "UDP\t"))]
    assert [(r[0], r[1]) for r in table] == [("TCP", "10"), ("UDP", "2")]
    assert f"wrote {page}" in err
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 2
    assert "TCP over IPv4" in html and "UDP over IPv4" in html
    result = run_json(capsys, "--loop", loop_name, "--compare")
    assert len(result["tcp"]["packets"]) == 10
    assert len(result["udp"]["packets"]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--compare", "--udp"],
        ["--compare", "--pcap", "x.pcap"],
        ["--compare", "--read", "x.pcap"],
    ],
)
def test_compare_refuses_what_it_cannot_do(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["layers", *argv]) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compare" in err
