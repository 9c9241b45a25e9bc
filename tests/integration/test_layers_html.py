"""``socketkit layers --html``: the page renders in a real headless browser, offline.

Debian's chromium loads the file with networking off (a dead proxy and a
resolver that resolves nothing), takes a screenshot and dumps the DOM after
layout; the test asserts the ladder's SVG and arrows are there, the pixels
are not blank, and the browser logged no console message. A control page
with a failing script proves the console check can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from socketkit.cli.main import main
from socketkit.layers.capture import write_pcap
from socketkit.layers.live import read_capture_file
from socketkit.layers.page import render_page
from tests.support import TIMEOUT
from tests.unit.layers.builders import CLIENT, SERVER, datagram, frames, tcp_exchange

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="chromium is not installed (the test set-up installs it: apt-get install chromium)",
)

_OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="sk-chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *_OFFLINE, f"--user-data-dir={profile}", *extra, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=4 * TIMEOUT,
            check=False,
        )


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _tcp_and_udp_page(tmp_path: Path) -> Path:
    tcp_pcap, udp_pcap = tmp_path / "tcp.pcap", tmp_path / "udp.pcap"
    write_pcap(str(tcp_pcap), frames(tcp_exchange(b"hello, layers")))
    write_pcap(
        str(udp_pcap),
        frames([datagram(CLIENT, SERVER, b"hello"), datagram(SERVER, CLIENT, b"hello")]),
    )
    reports = [read_capture_file(str(tcp_pcap)), read_capture_file(str(udp_pcap))]
    page = tmp_path / "compare.html"
    page.write_text(render_page(reports, title="TCP vs UDP"), encoding="utf-8")
    return page


def test_page_is_self_contained(tmp_path: Path) -> None:
    text = _tcp_and_udp_page(tmp_path).read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=|@import|url\((?!#)|@font-face""", text)
    # the only URL is the SVG namespace name, which is never fetched
    assert re.findall(r"https?://[^\s\"'<>]+", text) == ["http://www.w3.org/2000/svg"] * 2
    assert text.count('class="arrow"') == 10 + 2
    assert text.count("<svg") == 2
    # every byte of every frame is in the hex view, coloured by its layer
    hex_app = re.findall(r'<span class="application">[0-9a-f]{2}</span>', text)
    assert len(hex_app) == 2 * 13 + 2 * 5
    assert '<span class="internet">45</span>' in text  # IPv4 version/IHL byte


@needs_chromium
def test_page_renders_its_ladder_in_a_headless_browser(tmp_path: Path) -> None:
    from PIL import Image

    page = _tcp_and_udp_page(tmp_path)
    shot = tmp_path / "shot.png"
    done = chromium(page, f"--screenshot={shot}", "--window-size=1200,1600")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    with Image.open(shot) as image:
        assert image.size == (1200, 1600)
        grey = image.convert("L")
        histogram = grey.histogram()
        dark = sum(histogram[:128])
        assert dark > 2000, "the screenshot is (nearly) blank"
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 20  # text, four layer colours, lines
    dom = chromium(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    assert dom.stdout.count("<svg") == 2
    assert dom.stdout.count('class="arrow"') == 12
    assert "SYN+ACK seq 0 ack 1" in dom.stdout
    assert "UDP 5 B" in dom.stdout


@needs_chromium
def test_console_check_sees_a_script_error(tmp_path: Path) -> None:
    """The control: a page that throws is seen, so an empty list above means something."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>throw new Error('boom')</script>")
    done = chromium(bad, "--dump-dom")
    assert any("boom" in line for line in console_messages(done.stderr))


@needs_chromium
def test_cli_writes_a_page_from_a_capture_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "x.pcap"
    write_pcap(str(pcap), frames(tcp_exchange(b"hello")))
    page = tmp_path / "x.html"
    assert main(["layers", "--read", str(pcap), "--html", str(page)]) == 0
    err = capsys.readouterr().err
    assert f"wrote {page}" in err
    dom = chromium(page, "--dump-dom")
    assert console_messages(dom.stderr) == []
    assert dom.stdout.count('class="arrow"') == 10
