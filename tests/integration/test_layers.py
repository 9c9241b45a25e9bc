"""``socketkit layers`` on real loopback exchanges: capture, decode, tie to calls.

Live capture needs root or CAP_NET_RAW (CI runs as root on Linux); where it
is not permitted those tests skip with that reason and the root-free view is
still tested. The capture is drained until it sees the exchange's last packet
(the final ACK, or every datagram) under a deadline: no sleeps.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from socketkit.endpoints import Endpoint, join_host_port
from socketkit.errors import PermissionDenied
from socketkit.layers.capture import Capture, open_packet_capture, port_filter, write_pcap
from socketkit.layers.decode import deduplicate
from socketkit.layers.live import LayersReport, observe
from socketkit.layers.rootless import inspect_socket, segment_sizes
from socketkit.layers.timeline import Conversation
from socketkit.runtime import Limits, serve_in_thread
from tests.support import TIMEOUT

MESSAGE = b"This is the message.  It will be repeated."


def capture_permitted() -> bool:
    try:
        open_packet_capture("lo").close()
    except PermissionDenied:
        return False
    return True


needs_capture = pytest.mark.skipif(
    not hasattr(socket, "AF_PACKET") or not capture_permitted(),
    reason="packet capture is not permitted here (needs Linux and root or CAP_NET_RAW); "
    "the root-free view is tested without it",
)


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def host_for(ipv6: bool) -> str:
    if ipv6 and not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    return "::1" if ipv6 else "127.0.0.1"


@contextmanager
def echo(loop_name: str, host: str, udp: bool, chunk: int | None = None) -> Iterator[Endpoint]:
    limits = Limits(read_chunk=chunk) if chunk else None
    server = serve_in_thread("echo", host=host, tcp=not udp, udp=udp, loop=loop_name, limits=limits)
    try:
        yield server.address("echo", "udp" if udp else "tcp")
    finally:
        server.stop(timeout=TIMEOUT)


def default_hop_limit(ipv6: bool) -> int:
    path = "/proc/sys/net/ipv6/conf/lo/hop_limit" if ipv6 else "/proc/sys/net/ipv4/ip_default_ttl"
    try:
        return int(Path(path).read_text())
    except OSError:
        return 64


def refuse(_interface: str | None, _port: int | None) -> Capture:
    raise PermissionDenied("packet capture is not permitted (test)")


def payload(report: LayersReport, direction: str) -> bytes:
    conv = report.timeline.conversation
    assert conv is not None
    return b"".join(p.application.payload for p in report.packets if conv.direction(p) == direction)


# --- live capture ------------------------------------------------------------


@needs_capture
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_tcp_capture_shows_every_packet_of_the_exchange(loop_name: str, ipv6: bool) -> None:
    host = host_for(ipv6)
    with echo(loop_name, host, udp=False) as server:
        report = observe(server, MESSAGE, ipv6=ipv6, timeout=TIMEOUT)
    assert report.mode == "capture"
    assert report.complete, "the capture did not see the final ACK"
    assert report.dropped == 0
    ex = report.exchange
    assert ex is not None
    assert ex.received == MESSAGE
    packets = report.packets
    flags = [p.transport.flags for p in packets if p.transport]
    assert flags[:3] == [("SYN",), ("SYN", "ACK"), ("ACK",)]
    assert flags.count(("SYN",)) == 1, "loopback's duplicate copies were not removed"
    assert sum("FIN" in f for f in flags) == 2
    assert flags[-1] == ("ACK",)
    conv = report.timeline.conversation
    assert conv == Conversation.of("tcp", ex.client, ex.server)
    assert all(conv.direction(p) is not None for p in packets)
    assert payload(report, "client -> server") == MESSAGE
    assert payload(report, "server -> client") == MESSAGE
    for p in packets:
        assert p.link.interface == "lo"
        assert p.link.source == p.link.destination == "00:00:00:00:00:00"
        assert p.internet is not None
        assert p.internet.version == (6 if ipv6 else 4)
        assert p.internet.source == p.internet.destination == host
        assert p.internet.ttl == default_hop_limit(ipv6)
    phases = [ph.name for ph in report.timeline.phases]
    assert phases[0] == "handshake"
    assert phases[-1] == "teardown"
    assert "data" in phases
    assert "acknowledgement" in phases


@needs_capture
def test_packets_are_tied_to_the_calls_and_their_times(loop_name: str) -> None:
    message = bytes(range(256)) * 12  # 3072 bytes, read back 512 at a time
    with echo(loop_name, "127.0.0.1", udp=False, chunk=512) as server:
        report = observe(server, message, chunk=512, timeout=TIMEOUT)
    assert report.complete
    ex = report.exchange
    assert ex is not None
    assert ex.received == message
    calls = {c.index: c for c in ex.calls}
    recvs = {c.index for c in ex.calls if c.name == "recv" and c.nbytes}
    assert len(recvs) >= 6
    tied_recvs: set[int] = set()
    for entry in report.timeline.entries:
        if entry.phase != "data":
            continue
        assert entry.calls, f"data packet #{entry.packet} is tied to no call"
        if entry.direction == "client -> server":
            assert {calls[i].name for i in entry.calls} == {"sendall"}
        else:
            assert {calls[i].name for i in entry.calls} == {"recv"}
            tied_recvs.update(entry.calls)
    assert tied_recvs == recvs, "every recv that returned bytes is tied to the segments it read"


@needs_capture
def test_packets_carry_the_kernels_time_not_the_drains(loop_name: str) -> None:
    # The capture is drained after the exchange; kernel stamps (SO_TIMESTAMPNS)
    # put each datagram between the calls around it. (TCP segments carry the
    # kernel's departure time instead, which may run ahead: see docs/layers.md.)
    with echo(loop_name, "127.0.0.1", udp=True) as server:
        report = observe(server, MESSAGE, udp=True, timeout=TIMEOUT)
    ex = report.exchange
    assert ex is not None
    send, recv = (next(c for c in ex.calls if c.name == n) for n in ("send", "recvmsg"))
    out, back = report.packets
    slack = 0.001
    assert send.started - slack <= out.timestamp <= recv.finished + slack
    assert send.started - slack <= back.timestamp <= recv.finished + slack
    assert out.timestamp <= back.timestamp


@needs_capture
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_udp_capture_is_two_datagrams_and_nothing_else(loop_name: str, ipv6: bool) -> None:
    host = host_for(ipv6)
    with echo(loop_name, host, udp=True) as server:
        report = observe(server, MESSAGE, udp=True, ipv6=ipv6, timeout=TIMEOUT)
    assert report.complete
    assert len(report.packets) == 2
    for p in report.packets:
        assert p.transport is not None
        assert p.transport.protocol == "UDP"
        assert p.transport.length == 8 + len(MESSAGE)
        assert p.application.payload == MESSAGE
        assert p.internet is not None
        assert p.internet.version == (6 if ipv6 else 4)
    assert [ph.name for ph in report.timeline.phases] == ["data"]
    assert [e.direction for e in report.timeline.entries] == [
        "client -> server",
        "server -> client",
    ]


@needs_capture
def test_loopback_frames_arrive_twice_and_are_kept_once(loop_name: str) -> None:
    with (
        echo(loop_name, "127.0.0.1", udp=True) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        capture = open_packet_capture("lo", server.port)
        try:
            sock.settimeout(TIMEOUT)
            sock.sendto(b"twice", (server.host, server.port))
            assert sock.recv(100) == b"twice"
            result = capture.collect(
                keep=lambda f: True,
                done=lambda frames: len(deduplicate(frames)) >= 2,
                timeout=TIMEOUT,
            )
        finally:
            capture.close()
    assert result.complete
    raw = result.frames
    assert len(raw) == 4
    assert sum(f.outgoing for f in raw) == 2
    assert len(deduplicate(raw)) == 2


@needs_capture
def test_the_kernel_filter_keeps_only_the_port_asked_for() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wanted,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as noise,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        wanted.bind(("127.0.0.1", 0))
        noise.bind(("127.0.0.1", 0))
        capture = open_packet_capture("lo", wanted.getsockname()[1])
        try:
            for _ in range(20):
                sender.sendto(b"noise", noise.getsockname())
            sender.sendto(b"wanted", wanted.getsockname())
            result = capture.collect(
                keep=lambda f: True,
                done=lambda frames: any(b"wanted" in f.data for f in frames),
                timeout=TIMEOUT,
            )
        finally:
            capture.close()
    assert result.complete
    assert all(b"noise" not in f.data for f in result.frames)


@needs_capture
def test_our_port_filter_is_the_program_tcpdump_compiles() -> None:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip(
            "tcpdump is not installed (the test set-up installs it: apt-get install tcpdump)"
        )
    for port in (7, 10007, 65535):
        done = subprocess.run(
            [tcpdump, "-dd", "-i", "lo", f"port {port}"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        theirs = [
            tuple(int(field, 16) if field.startswith("0x") else int(field) for field in parts)
            for line in done.stdout.splitlines()
            if (parts := [p.strip() for p in line.strip().strip("{},").split(",")]) and parts[0]
        ]
        assert theirs == port_filter(port)


@needs_capture
def test_collect_gives_up_at_its_deadline() -> None:
    capture = open_packet_capture("lo")
    try:
        result = capture.collect(keep=lambda f: False, done=lambda frames: False, timeout=0.2)
    finally:
        capture.close()
    assert not result.complete
    assert result.frames == []


# --- tcpdump agrees with our decoding --------------------------------------

_TCPDUMP_FLAGS = {
    "S": "SYN",
    "F": "FIN",
    "P": "PSH",
    "R": "RST",
    "U": "URG",
    "E": "ECE",
    "W": "CWR",
    ".": "ACK",
}
_HEADER = re.compile(r"^\d+\.\d+ IP6? (\S+)\.(\d+) > (\S+)\.(\d+): (.*)$")


def tcpdump_packets(path: str) -> list[dict[str, object]]:
    """tcpdump's reading of a pcap: addresses, ports, flags and payload bytes."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip(
            "tcpdump is not installed (the test set-up installs it: apt-get install tcpdump)"
        )
    done = subprocess.run(
        [tcpdump, "-nn", "-tt", "-x", "-r", path],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    packets: list[dict[str, object]] = []
    hexes: list[str] = []

    def finish() -> None:
        if packets:
            ip = bytes.fromhex("".join(hexes))
            n = int(packets[-1]["length"])  # type: ignore[call-overload]
            packets[-1]["payload"] = ip[len(ip) - n :] if n else b""

    for line in done.stdout.splitlines():
        match = _HEADER.match(line)
        if match:
            finish()
            hexes = []
            src, sport, dst, dport, rest = match.groups()
            flags = re.search(r"Flags \[([^\]]*)\]", rest)
            packets.append(
                {
                    "source": (src, int(sport)),
                    "destination": (dst, int(dport)),
                    "flags": {_TCPDUMP_FLAGS[c] for c in flags.group(1)} if flags else set(),
                    "length": int(re.findall(r"length (\d+)", rest)[-1]),
                }
            )
        elif line.startswith("\t0x"):
            hexes.append("".join(line.split(":", 1)[1].split()))
    finish()
    return packets


def ours(report: LayersReport) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for p in report.packets:
        assert p.internet is not None
        assert p.transport is not None
        out.append(
            {
                "source": (p.internet.source, p.transport.source_port),
                "destination": (p.internet.destination, p.transport.destination_port),
                "flags": set(p.transport.flags),
                "length": p.transport.payload_length,
                "payload": p.application.payload,
            }
        )
    return out


@needs_capture
@pytest.mark.parametrize(
    ("udp", "ipv6"), [(False, False), (False, True), (True, False)], ids=["tcp4", "tcp6", "udp4"]
)
def test_tcpdump_reads_our_pcap_and_agrees(
    loop_name: str, tmp_path: Path, udp: bool, ipv6: bool
) -> None:
    host = host_for(ipv6)
    with echo(loop_name, host, udp=udp) as server:
        report = observe(server, MESSAGE, udp=udp, ipv6=ipv6, timeout=TIMEOUT)
    assert report.complete
    path = str(tmp_path / "exchange.pcap")
    write_pcap(path, report.frames)
    theirs = tcpdump_packets(path)
    assert len(theirs) == len(report.packets) >= 2
    assert theirs == ours(report)


# --- the root-free view ------------------------------------------------------


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_without_capture_rights_the_socket_view_remains(loop_name: str, ipv6: bool) -> None:
    host = host_for(ipv6)
    message = b"x" * 100_000
    with echo(loop_name, host, udp=False) as server:
        report = observe(server, message, ipv6=ipv6, timeout=TIMEOUT, opener=refuse)
    assert report.mode == "rootless"
    assert report.packets == []
    assert report.capture_problem == "packet capture is not permitted (test)"
    ex = report.exchange
    assert ex is not None
    assert ex.received == message
    view = ex.view
    assert view is not None
    assert view.local == ex.client_text  # getsockname
    assert view.peer == ex.server_text == join_host_port(host, server.port or 0)  # getpeername
    assert view.family == ("IPv6" if ipv6 else "IPv4")
    assert view.hop_limit == default_hop_limit(ipv6)
    info = view.tcp_info
    assert info is not None
    assert info.state == "ESTABLISHED"
    assert info.snd_mss > 0
    assert info.rtt_us > 0
    assert info.snd_cwnd > 0
    # Not asserted to be 0: loopback does retransmit now and then on a loaded machine.
    assert isinstance(info.retransmits, int)
    assert info.bytes_received == len(message)
    assert info.bytes_acked is not None
    assert info.bytes_acked >= len(message)
    sizes = segment_sizes(len(message), info.snd_mss)
    assert sum(sizes) == len(message)
    assert max(sizes) <= info.snd_mss
    assert len(sizes) >= 2  # 100 kB cannot fit one loopback segment
    # with no packets, the timeline has nothing to show but the calls remain
    assert report.timeline.phases == []
    assert [c.name for c in ex.calls][:2] == ["connect", "sendall"]


def test_the_view_reads_the_ttl_and_hop_limit_the_socket_will_use(loop_name: str) -> None:
    with (
        echo(loop_name, "127.0.0.1", udp=True) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 42)
        sock.connect((server.host, server.port))
        view = inspect_socket(sock)
    assert view.hop_limit == 42
    assert view.transport == "udp"
    assert view.tcp_info is None
    if ipv6_loopback():
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock6:
            sock6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 9)
            sock6.connect(("::1", 9))
            assert inspect_socket(sock6).hop_limit == 9


def test_udp_without_capture_rights(loop_name: str) -> None:
    with echo(loop_name, "127.0.0.1", udp=True) as server:
        report = observe(server, b"ping", udp=True, timeout=TIMEOUT, opener=refuse)
    assert report.mode == "rootless"
    ex = report.exchange
    assert ex is not None
    assert ex.received == b"ping"
    assert [c.name for c in ex.calls] == ["connect", "send", "recvmsg", "close"]
    assert ex.view is not None
    assert ex.view.tcp_info is None


@needs_capture
@pytest.mark.parametrize("ipv6", [False, True], ids=["tcp4", "tcp6"])
def test_tcpdump_verbose_agrees_on_options_windows_and_lengths(
    loop_name: str, tmp_path: Path, ipv6: bool
) -> None:
    """The exact headers of a live exchange, field by field, as ``tcpdump -nn -v`` reads them."""
    from tests.unit.layers.test_layers_headers import (
        as_tcpdump,
        tcpdump_options,
        tcpdump_verbose,
    )

    host = host_for(ipv6)
    with echo(loop_name, host, udp=False) as server:
        report = observe(server, MESSAGE, ipv6=ipv6, timeout=TIMEOUT)
    assert report.complete
    path = str(tmp_path / "exchange.pcap")
    write_pcap(path, report.frames)
    theirs = tcpdump_verbose(path)
    assert len(theirs) == len(report.packets) == 10
    scales = set()
    for p, line in zip(report.packets, theirs, strict=True):
        t, ip = p.transport, p.internet
        assert t is not None and ip is not None
        assert f"win {t.window}," in line
        assert tcpdump_options(line) == [as_tcpdump(o.name, o.value) for o in t.options]
        name, value = ip.length_field
        assert name == ("payload length" if ipv6 else "total length")
        assert (f"payload length: {value})" if ipv6 else f"length {value})") in line
        if "SYN" not in t.flags:
            assert t.window_scale is not None and t.scaled_window == t.window << t.window_scale
            scales.add(t.window_scale)
    syn = report.packets[0].transport
    assert syn is not None
    wscale = syn.option("WScale")
    assert wscale is not None  # Linux always offers window scaling on loopback
    assert int(wscale.value) in scales
