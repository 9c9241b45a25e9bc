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

Capture needs root or CAP_NET_RAW: run with sudo, or grant it to this Python
once with `sudo setcap cap_net_raw+eip $(readlink -f $(which python3))`.
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
        if args.address or args.udp or args.ipv6 or args.message is not None or args.chunk:
            raise UsageError(
                "--read shows a capture file: it takes no HOST:PORT, --udp, --ipv6, "
                "--message or --chunk"
            )
        report = read_capture_file(args.read)
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
    sys.stdout.flush()
    if args.pcap and report.mode == "rootless":
        raise PermissionDenied(f"no pcap written to {args.pcap}: capture is not permitted")
    return 0


def _live(args: argparse.Namespace) -> LayersReport:
    from socketkit.layers.capture import open_packet_capture
    from socketkit.layers.live import observe

    message = (DEFAULT_MESSAGE if args.message is None else args.message).encode()
    chunk = args.chunk or DEFAULT_CHUNK
    opener = OPEN_CAPTURE or open_packet_capture
    kwargs: dict[str, Any] = {
        "udp": args.udp,
        "ipv6": args.ipv6,
        "chunk": chunk,
        "timeout": args.timeout,
        "opener": opener,
    }
    if args.address:
        return observe(parse_endpoint(args.address), message, **kwargs)
    host = "::1" if args.ipv6 else "127.0.0.1"
    transport: Transport = "udp" if args.udp else "tcp"
    limits = Limits(read_chunk=chunk)
    with serve_in_thread(
        "echo", host=host, tcp=not args.udp, udp=args.udp, limits=limits, loop=args.loop
    ) as server:
        bound = server.address("echo", transport)
        return observe(Endpoint(host=bound.host, port=bound.port), message, **kwargs)


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
    for p in report.packets:
        print(file=out)
        _render_packet(p, entries.get(p.index), calls, zero)
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
    p: DecodedPacket, entry: TimelineEntry | None, calls: dict[int, AppCall], zero: float | None
) -> None:
    phase = f"  {entry.phase}" if entry else ""
    direction = f"  {entry.direction}" if entry and entry.direction != "-" else ""
    print(f"#{p.index}  {_ms(p.timestamp, zero)}{direction}{phase}")
    link = p.link
    where = f"{link.interface}: " if link.interface else ""
    macs = f" ({link.source} -> {link.destination})" if link.source else ""
    print(f"  link         {where}{link.kind} frame, {link.frame_length} bytes{macs}")
    ip = p.internet
    if ip is None:
        print(f"  internet     (not IP: {p.summary})")
        return
    hop = "TTL" if ip.version == 4 else "hop limit"
    print(
        f"  internet     IPv{ip.version} {ip.source} -> {ip.destination}, "
        f"{hop} {ip.ttl}, total length {ip.total_length}, carries {ip.protocol}"
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
            f"  transport    TCP {t.source_port} -> {t.destination_port}, flags {t.flag_text}, "
            f"seq {seq}{ack_text}, window {t.window}, {t.payload_length} bytes of data"
        )
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
            ("MSS", f"{info.snd_mss} bytes sending, {info.rcv_mss} receiving"),
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
