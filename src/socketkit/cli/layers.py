"""``socketkit layers``: the four layers of the TCP/IP stack on an exchange you cause."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from socketkit.cli.common import add_loop_option, positive_float, positive_int
from socketkit.cli.render import print_json, print_table
from socketkit.display import escape_payload
from socketkit.endpoints import Endpoint, Transport, join_host_port, parse_endpoint
from socketkit.errors import PermissionDenied, UsageError
from socketkit.runtime import Limits, serve_in_thread

if TYPE_CHECKING:
    # scapy (under socketkit.layers) takes a quarter second to import: only
    # `socketkit layers` itself should pay for it, not every other command.
    from socketkit.layers.capture import CaptureOpener
    from socketkit.layers.decode import DecodedPacket
    from socketkit.layers.exchange import AppCall
    from socketkit.layers.live import LayersReport
    from socketkit.layers.pictures import Glyphs
    from socketkit.layers.rootless import SocketView
    from socketkit.layers.timeline import TimelineEntry

__all__ = ["OPEN_CAPTURE", "register"]

OPEN_CAPTURE: CaptureOpener | None = None
"""The capture opener (None: the real one); tests replace it to play a machine
without capture rights."""

DEFAULT_MESSAGE = "hello"
DEFAULT_CHUNK = 1024

EXAMPLES = """\
examples:
  sudo socketkit layers                  echo "hello" through a built-in echo server; show
                                         every packet as link/internet/transport/application
  socketkit layers                       without capture rights: the root-free view
                                         (endpoints, TTL, TCP_INFO, MSS segmentation)
  socketkit layers --udp --ipv6          the same over UDP and IPv6: no handshake, no ACKs
  socketkit layers --message "$(head -c 3000 /etc/services)" --chunk 512
  socketkit layers 127.0.0.1:10007       against a running `socketkit serve echo`
  socketkit layers --pcap echo.pcap      also write a pcap (Wireshark, tcpdump -r echo.pcap)
  socketkit layers --read echo.pcap      show any pcap or pcapng file the same way
  socketkit layers --json | jq '.packets[].transport.flags'
  socketkit layers --compare             TCP and UDP side by side: 10 packets against 2
  socketkit layers --html echo.html      the same as a page: ladder, layers, hex, calls

Capture needs root or CAP_NET_RAW. Without it, socketkit prints the exact commands
for this installation: `sudo /full/path/python -m socketkit layers` (sudo's PATH
skips virtual environments), or `sudo setcap cap_net_raw+eip /real/python3.X` on
the real interpreter file (a venv's python is a symlink, which setcap refuses).
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "layers",
        help="the TCP/IP stack's four layers on a live exchange you cause",
        description="Send a message to an echo server (a built-in one on loopback unless "
        "HOST:PORT is given), capture the packets that exchange causes on the loopback "
        "interface, and show each as its link, internet, transport and application layers, "
        "with a timeline of the handshake, data, acknowledgements and teardown tied to the "
        "socket calls that caused them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "address",
        nargs="?",
        metavar="HOST:PORT",
        help="an echo server to talk to (default: start one on loopback, port 0)",
    )
    p.add_argument("--message", metavar="TEXT", help=f'what to send (default "{DEFAULT_MESSAGE}")')
    p.add_argument("--udp", action="store_true", help="use UDP instead of TCP")
    p.add_argument("--ipv6", action="store_true", help="use IPv6 (the built-in server binds ::1)")
    p.add_argument(
        "--chunk",
        type=positive_int,
        metavar="N",
        help=f"bytes per recv() call, also the built-in server's (default {DEFAULT_CHUNK})",
    )
    p.add_argument("--pcap", metavar="FILE", help="also write the captured packets to a pcap file")
    p.add_argument(
        "--read", metavar="FILE", help="show a pcap/pcapng file instead of a live exchange"
    )
    p.add_argument("--json", action="store_true", help="print the decoded packets as JSON")
    p.add_argument(
        "--html",
        metavar="FILE",
        help="also write one self-contained HTML page (ladder as SVG, layers, hex by layer, "
        "calls); opens offline in any browser",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="run the exchange over TCP and over UDP and show them side by side",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="how long any network wait may take (default 5)",
    )
    add_loop_option(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from socketkit.layers.capture import write_pcap
    from socketkit.layers.live import read_capture_file

    if args.read:
        if (
            args.address
            or args.udp
            or args.ipv6
            or args.message is not None
            or args.chunk
            or args.compare
        ):
            raise UsageError(
                "--read shows a capture file: it takes no HOST:PORT, --udp, --ipv6, "
                "--message, --chunk or --compare"
            )
        report = read_capture_file(args.read)
    elif args.compare:
        return _run_compare(args)
    else:
        report = _live(args)
    if args.pcap and report.mode != "rootless":
        write_pcap(args.pcap, report.frames)
    if report.capture_problem:
        print(f"socketkit: {report.capture_problem}", file=sys.stderr)
    if report.mode == "capture" and not report.complete:
        print(
            "socketkit: warning: the capture did not see the end of the exchange within "
            f"{args.timeout:g} s; showing what arrived",
            file=sys.stderr,
        )
    if report.dropped:
        print(f"socketkit: warning: the kernel dropped {report.dropped} frames", file=sys.stderr)
    if args.json:
        print_json(_as_json(report, args.pcap))
    else:
        _render(report, args)
    if args.html:
        _write_html(args.html, [report], args)
    sys.stdout.flush()
    if args.pcap and report.mode == "rootless":
        raise PermissionDenied(f"no pcap written to {args.pcap}: capture is not permitted")
    return 0


def _live(args: argparse.Namespace) -> LayersReport:
    return _live_runs(args, [args.udp])[0]


def _live_runs(args: argparse.Namespace, transports: list[bool]) -> list[LayersReport]:
    """One observed exchange per entry of ``transports`` (True: UDP), same server."""
    from socketkit.layers.capture import open_packet_capture
    from socketkit.layers.live import observe

    message = (DEFAULT_MESSAGE if args.message is None else args.message).encode()
    chunk = args.chunk or DEFAULT_CHUNK
    opener = OPEN_CAPTURE or open_packet_capture

    def kwargs(udp: bool) -> dict[str, Any]:
        return {
            "udp": udp,
            "ipv6": args.ipv6,
            "chunk": chunk,
            "timeout": args.timeout,
            "opener": opener,
        }

    if args.address:
        target = parse_endpoint(args.address)
        return [observe(target, message, **kwargs(udp)) for udp in transports]
    host = "::1" if args.ipv6 else "127.0.0.1"
    limits = Limits(read_chunk=chunk)
    reports = []
    with serve_in_thread(
        "echo",
        host=host,
        tcp=not all(transports),
        udp=any(transports),
        limits=limits,
        loop=args.loop,
    ) as server:
        for udp in transports:
            transport: Transport = "udp" if udp else "tcp"
            bound = server.address("echo", transport)
            target = Endpoint(host=bound.host, port=bound.port)
            reports.append(observe(target, message, **kwargs(udp)))
    return reports


def _run_compare(args: argparse.Namespace) -> int:
    """``--compare``: the same message over TCP and over UDP, side by side."""
    if args.udp:
        raise UsageError("--compare runs both TCP and UDP: leave out --udp")
    if args.pcap:
        raise UsageError("--compare makes two captures: use --pcap without --compare")
    tcp, udp = _live_runs(args, [False, True])
    for report in (tcp, udp):
        if report.capture_problem:
            print(f"socketkit: {report.capture_problem}", file=sys.stderr)
            break
    if args.json:
        print_json({"tcp": _as_json(tcp, None), "udp": _as_json(udp, None)})
    else:
        _render_compare(tcp, udp)
    if args.html:
        _write_html(args.html, [tcp, udp], args)
    sys.stdout.flush()
    return 0


def _write_html(path: str, reports: list[LayersReport], args: argparse.Namespace) -> None:
    from socketkit.layers.page import render_page

    title = "socketkit layers: " + (
        args.read if args.read else " vs ".join(_title(r) for r in reports)
    )
    page = render_page(reports, title=title)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror} - choose another --html FILE"
        ) from exc
    print(
        f"socketkit: wrote {path} ({len(page.encode())} bytes, no network needed)", file=sys.stderr
    )


def _title(report: LayersReport) -> str:
    ex = report.exchange
    if ex is None:
        return "capture"
    return f"{ex.transport.upper()} over {ex.family}"


# --- people -----------------------------------------------------------------


def _ms(stamp: float, zero: float | None) -> str:
    return f"+{(stamp - (zero or stamp)) * 1000:.3f} ms"


def _render(report: LayersReport, args: argparse.Namespace) -> None:
    from socketkit.layers.live import clock_zero

    out = sys.stdout
    conv = report.timeline.conversation
    ex = report.exchange
    zero = clock_zero(report.packets, ex)
    if ex is not None:
        who = "" if args.address else " (socketkit's echo server, started for this run)"
        print(
            f"{ex.transport.upper()} over {ex.family}: client {ex.client_text} -> "
            f"server {ex.server_text}{who}",
            file=out,
        )
        print(
            f"sent {escape_payload(ex.sent)} ({len(ex.sent)} bytes), "
            f"received {escape_payload(ex.received)} ({len(ex.received)} bytes)",
            file=out,
        )
    elif args.read:
        print(f"{args.read}: {len(report.packets)} packets", end="", file=out)
        print(f"; timeline of {conv}" if conv else "", file=out)
    if report.mode == "capture":
        print(
            f"captured {len(report.packets)} packets on {report.interface}; "
            "each as the four layers of the TCP/IP stack",
            file=out,
        )
    entries = {e.packet: e for e in report.timeline.entries}
    calls = {c.index: c for c in ex.calls} if ex else {}
    g = _glyphs()
    if report.packets:
        print(file=out)
        for line in _ladder_lines(report, g):
            print(line, file=out)
    for p in report.packets:
        print(file=out)
        _render_packet(p, entries.get(p.index), calls, zero, g)
    if report.timeline.phases:
        print(file=out)
        rows = []
        for phase in report.timeline.phases:
            if ex is not None:
                detail = ", ".join(calls[i].label for i in phase.calls if i in calls) or "-"
            else:  # a file: no calls to show, so say what the phase's first packet does
                detail = entries[phase.packets[0]].what
            rows.append((phase.title, phase.span, detail))
        third = "application calls" if ex is not None else "first packet"
        print_table(["phase", "packets", third], rows, title="timeline")
    if ex is not None:
        print(file=out)
        _render_calls(report, zero)
    if report.mode == "rootless" and ex is not None and ex.view is not None:
        print(file=out)
        _render_rootless_layers(ex.view, ex.sent, ex.received)
    if ex is not None and ex.view is not None:
        print(file=out)
        _render_view(ex.view, len(ex.sent))


def _glyphs() -> Glyphs:
    from socketkit.layers.pictures import glyphs_for

    return glyphs_for(getattr(sys.stdout, "encoding", None))


def _ladder_lines(
    report: LayersReport, g: Glyphs, width: int = 44, *, with_calls: bool = True
) -> list[str]:
    """The ladder diagram with each packet's time and the calls it is tied to."""
    from socketkit.layers.live import clock_zero
    from socketkit.layers.pictures import ladder

    ex = report.exchange
    zero = clock_zero(report.packets, ex)
    entries = {e.packet: e for e in report.timeline.entries}
    calls = {c.index: c for c in ex.calls} if ex else {}
    conv = report.timeline.conversation
    client = join_host_port(*conv.client) if conv else "client"
    server = join_host_port(*conv.server) if conv else "server"
    notes = {}
    for p in report.packets:
        entry = entries.get(p.index)
        tied = ", ".join(calls[i].label for i in entry.calls if i in calls) if entry else ""
        notes[p.index] = f"{_ms(p.timestamp, zero)}" + (f"  {tied}" if tied and with_calls else "")
    return ladder(
        report.packets,
        entries,
        f"client {client}",
        f"server {server}",
        g,
        width=width,
        notes=notes,
    )


def _render_compare(tcp: LayersReport, udp: LayersReport) -> None:
    from socketkit.layers.live import clock_zero
    from socketkit.layers.pictures import side_by_side

    g = _glyphs()
    ex = tcp.exchange
    if ex is not None:
        print(f"the same {len(ex.sent)}-byte message over TCP and over UDP, {ex.family}")
    if tcp.mode != "capture" or udp.mode != "capture":
        print("(no capture rights: the packet pictures need them; the calls are below)")
    # times only on the left, so the two ladders sit close; the calls are listed below
    left = ["TCP", *_ladder_lines(tcp, g, 36, with_calls=False)] if tcp.packets else ["TCP"]
    right = ["UDP", *_ladder_lines(udp, g, 36, with_calls=False)] if udp.packets else ["UDP"]
    print()
    for line in side_by_side(left, right):
        print(line)
    rows = []
    for name, report in (("TCP", tcp), ("UDP", udp)):
        wire = sum(p.link.frame_length for p in report.packets)
        data = sum(len(p.application.payload) for p in report.packets)
        calls = len(report.exchange.calls) if report.exchange else 0
        rows.append(
            (
                name,
                str(len(report.packets)),
                str(wire),
                str(data),
                str(wire - data),
                str(calls),
            )
        )
    print()
    print_table(
        ["transport", "packets", "bytes on the wire", "application bytes", "headers", "calls"],
        rows,
        title="TCP vs UDP for one echo",
    )
    for name, report in (("TCP", tcp), ("UDP", udp)):
        if report.exchange is not None:
            print()
            print(f"{name} application calls:")
            zero = clock_zero(report.packets, report.exchange)
            for c in report.exchange.calls:
                print(f"  {_ms(c.started, zero)}  {c.label}")


def _render_calls(report: LayersReport, zero: float | None) -> None:
    from socketkit.layers.rootless import implied_wire

    ex = report.exchange
    assert ex is not None
    rows = []
    for c in ex.calls:
        row = [_ms(c.started, zero), c.label, f"{(c.finished - c.started) * 1000:.3f} ms"]
        if report.mode == "rootless":
            info = ex.view.tcp_info if ex.view else None
            row.append(implied_wire(c.name, c.nbytes, ex.transport, info.snd_mss if info else None))
        rows.append(row)
    if report.mode == "rootless":
        print_table(
            ["time", "call", "took", "on the wire (by the protocol's rules; not captured)"],
            rows,
            title="application calls",
        )
    else:
        print_table(
            ["time", "call", "took"], rows, title="application calls (same clock as the packets)"
        )


def _render_packet(
    p: DecodedPacket,
    entry: TimelineEntry | None,
    calls: dict[int, AppCall],
    zero: float | None,
    g: Glyphs,
) -> None:
    from socketkit.layers.pictures import encapsulation_bar, options_text, window_text

    phase = f"  {entry.phase}" if entry else ""
    direction = f"  {entry.direction}" if entry and entry.direction != "-" else ""
    print(f"#{p.index}  {_ms(p.timestamp, zero)}{direction}{phase}")
    print(f"  {encapsulation_bar(p, g)}")
    link = p.link
    where = f"{link.interface}: " if link.interface else ""
    macs = f" ({link.source} -> {link.destination})" if link.source else ""
    header = f", header {link.header_length} B" if link.header_length else ""
    print(f"  link         {where}{link.kind} frame, {link.frame_length} bytes{header}{macs}")
    ip = p.internet
    if ip is None:
        print(f"  internet     (not IP: {p.summary})")
        return
    if ip.version == 4:
        df = ", DF (don't fragment)" if ip.dont_fragment else ""
        print(
            f"  internet     IPv4 {ip.source} -> {ip.destination}, header {ip.header_length} B, "
            f"total length {ip.total_length} ({ip.header_length} + {ip.payload_length}), "
            f"TTL {ip.ttl}, ID {ip.identification}{df}, carries {ip.protocol}"
        )
    else:
        print(
            f"  internet     IPv6 {ip.source} -> {ip.destination}, header 40 B (fixed), "
            f"payload length {ip.payload_length} (the packet is 40 + {ip.payload_length} = "
            f"{ip.total_length} B), hop limit {ip.ttl}, next header {ip.protocol}"
        )
    t = p.transport
    if t is None:
        print("  transport    (neither TCP nor UDP)")
    elif t.protocol == "TCP":
        seq = t.relative_seq if t.relative_seq is not None else t.seq
        ack = (
            t.relative_ack if t.relative_ack is not None else (t.ack if "ACK" in t.flags else None)
        )
        ack_text = f", ack {ack}" if ack is not None else ""
        print(
            f"  transport    TCP {t.source_port} -> {t.destination_port}, "
            f"header {t.header_length} B (data offset {t.header_length // 4} words), "
            f"flags {t.flag_text}, seq {seq}{ack_text}, {window_text(t)}, "
            f"{t.payload_length} bytes of data"
        )
        if t.options:
            print(f"               options: {options_text(t)}")
    else:
        print(
            f"  transport    UDP {t.source_port} -> {t.destination_port}, "
            f"length {t.length} (8-byte header + {t.payload_length} bytes of data)"
        )
    app = p.application
    print(
        f"  application  {app.text} ({len(app.payload)} bytes)"
        if app.payload
        else "  application  -"
    )
    if entry is not None:
        tied = ", ".join(calls[i].label for i in entry.calls if i in calls)
        print(f"  => {entry.what}" + (f"  [{tied}]" if tied and tied not in entry.what else ""))


def _render_rootless_layers(view: SocketView, sent: bytes, received: bytes) -> None:
    from socketkit.layers.rootless import segment_sizes

    print("the four layers, as far as the socket itself can tell (no capture)")
    print(
        f"  application  you sent {escape_payload(sent)} ({len(sent)} bytes) and got back "
        f"{escape_payload(received)} ({len(received)} bytes)"
    )
    local_port = view.local.rsplit(":", 1)[-1]
    peer_port = view.peer.rsplit(":", 1)[-1]
    extra = ""
    if view.tcp_info is not None:
        sizes = segment_sizes(len(sent), view.tcp_info.snd_mss)
        extra = f"; MSS {view.tcp_info.snd_mss}, so {len(sizes)} segment(s) of {sizes} bytes"
    print(f"  transport    {view.transport.upper()} port {local_port} -> port {peer_port}{extra}")
    hop = "TTL" if view.family == "IPv4" else "hop limit"
    hop_value = view.hop_limit if view.hop_limit is not None else "?"
    print(f"  internet     {view.family} {view.local} -> {view.peer}, {hop} {hop_value}")
    mtu = f"path MTU {view.mtu} bytes; " if view.mtu else ""
    print(f"  link         {mtu}frames and interfaces are invisible without capture rights")


def _render_view(view: SocketView, message_length: int) -> None:
    from socketkit.layers.rootless import segment_sizes

    rows: list[tuple[str, str]] = [
        ("client socket", f"{view.local} (getsockname)"),
        ("server socket", f"{view.peer} (getpeername)"),
        (
            "TTL" if view.family == "IPv4" else "hop limit",
            f"{view.hop_limit} ({'IP_TTL' if view.family == 'IPv4' else 'IPV6_UNICAST_HOPS'})",
        ),
    ]
    if view.mtu:
        rows.append(("path MTU", f"{view.mtu} bytes"))
    info = view.tcp_info
    if info is not None:
        rows += [
            ("TCP state", info.state),
            ("round-trip time", f"{info.rtt_us} us (variation {info.rtt_var_us} us)"),
            ("MSS sending", f"{info.snd_mss} bytes (the peer's MSS option, less TCP options)"),
            (
                "MSS receiving",
                f"{info.rcv_mss} bytes: the kernel's estimate of the peer's segment size, "
                "used to pace ACKs; it starts at 536 (RFC 1122's default MSS) and grows "
                "only when larger segments arrive",
            ),
            ("congestion window", f"{info.snd_cwnd} segments"),
            ("retransmits", str(info.retransmits)),
        ]
        if info.bytes_sent is not None:
            rows.append(("bytes sent", str(info.bytes_sent)))
        if info.bytes_acked is not None:
            rows.append(("bytes acked", f"{info.bytes_acked} (the SYN counts as one)"))
        if info.bytes_received is not None:
            rows.append(("bytes received", str(info.bytes_received)))
        sizes = segment_sizes(message_length, info.snd_mss)
        rows.append(
            ("MSS segmentation", f"{message_length} bytes -> {len(sizes)} segment(s) {sizes}")
        )
    print_table(["what", "value"], rows, title="socket view (needs no capture rights)")


# --- machines ---------------------------------------------------------------


def _packet_json(
    p: DecodedPacket, entry: TimelineEntry | None, zero: float | None
) -> dict[str, Any]:
    t = p.transport
    return {
        "index": p.index,
        "time": p.timestamp,
        "elapsed_ms": round((p.timestamp - (zero or p.timestamp)) * 1000, 3),
        "direction": entry.direction if entry else None,
        "phase": entry.phase if entry else None,
        "what": entry.what if entry else None,
        "calls": list(entry.calls) if entry else [],
        "source": p.source,
        "destination": p.destination,
        "link": _asdict(p.link),
        "internet": _asdict(p.internet) if p.internet else None,
        "transport": {**_asdict(t), "flags": list(t.flags)} if t else None,
        "application": {
            "length": len(p.application.payload),
            "text": _escaped(p.application.payload),
            "hex": p.application.payload.hex(),
        },
    }


def _asdict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def _escaped(data: bytes) -> str:
    """The payload escaped as for people, without the surrounding quotes."""
    return escape_payload(data, limit=None)[1:-1]


def _as_json(report: LayersReport, pcap: str | None) -> dict[str, Any]:
    from socketkit.layers.live import clock_zero
    from socketkit.layers.rootless import segment_sizes

    ex = report.exchange
    zero = clock_zero(report.packets, ex)
    entries = {e.packet: e for e in report.timeline.entries}
    conv = report.timeline.conversation
    return {
        "mode": report.mode,
        "interface": report.interface,
        "complete": report.complete,
        "capture_problem": report.capture_problem,
        "pcap": pcap if report.mode != "rootless" else None,
        "conversation": None
        if conv is None
        else {
            "protocol": conv.protocol,
            "client": join_host_port(*conv.client),
            "server": join_host_port(*conv.server),
        },
        "packets": [_packet_json(p, entries.get(p.index), zero) for p in report.packets],
        "phases": [
            {
                "name": ph.name,
                "title": ph.title,
                "packets": list(ph.packets),
                "calls": list(ph.calls),
            }
            for ph in report.timeline.phases
        ],
        "calls": [
            {
                **_asdict(c),
                "label": c.label,
                "elapsed_ms": round((c.started - (zero or c.started)) * 1000, 3),
            }
            for c in (ex.calls if ex else [])
        ],
        "exchange": None
        if ex is None
        else {
            "transport": ex.transport,
            "family": ex.family,
            "client": ex.client_text,
            "server": ex.server_text,
            "sent": _escaped(ex.sent),
            "received": _escaped(ex.received),
        },
        "socket": _asdict(ex.view) if ex and ex.view else None,
        "segments": (
            segment_sizes(len(ex.sent), ex.view.tcp_info.snd_mss)
            if ex and ex.view and ex.view.tcp_info
            else None
        ),
    }
