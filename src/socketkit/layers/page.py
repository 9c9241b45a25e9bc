"""One self-contained HTML page of an exchange: ladder (SVG), layers, hex, calls.

Pure: reports in, a string out. The page must open offline in any browser
from a file a learner mails around, so everything is inline (CSS in a
<style>, the ladder as inline SVG), there is no script at all and nothing
is fetched (no fonts, images or stylesheets). The bytes of each frame are
shown as hex, each byte coloured by the layer it belongs to, with the same
colours as the encapsulation bar and the field tables above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from socketkit.display import escape_payload
from socketkit.endpoints import join_host_port
from socketkit.layers.decode import DecodedPacket, deduplicate
from socketkit.layers.pictures import (
    encapsulation,
    ladder_label,
    options_text,
    window_text,
)
from socketkit.layers.timeline import CLIENT_TO_SERVER, SERVER_TO_CLIENT, TimelineEntry

if TYPE_CHECKING:
    from socketkit.layers.live import LayersReport

__all__ = ["render_page"]

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
h3 { font-size: 1em; margin: 1.2em 0 .3em; }
code, .hex, td.mono { font-family: ui-monospace, monospace; font-size: 12.5px; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 2em; }
table { border-collapse: collapse; margin: .3em 0; }
td, th { border: 1px solid #ccd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f6; }
.bar { display: flex; border: 1px solid #778; max-width: 900px; margin: .3em 0; }
.bar div { padding: 2px 4px; white-space: nowrap; overflow: hidden; font-size: 12px;
  border-right: 1px solid #778; min-width: 3.5em; }
.link { background: #cddcf6; } .internet { background: #cdebc9; }
.transport { background: #f8e2b0; } .application { background: #f6c6c6; }
.padding { background: #ddd; }
.hex { line-height: 1.7; max-width: 900px; }
.hex span { padding: 0 1px; }
.legend span { padding: 1px 6px; margin-right: .5em; border: 1px solid #aab; }
.packet { border-top: 1px solid #dde; padding-top: .4em; }
svg text { font: 12px ui-monospace, monospace; }
"""

_LAYER_NAMES = {
    "link": "link",
    "internet": "internet (IP)",
    "transport": "transport",
    "application": "application data",
    "padding": "padding",
}


def render_page(reports: Sequence[LayersReport], *, title: str) -> str:
    """The whole page; two reports (TCP and UDP) are drawn side by side."""
    body = [f"<h1>{escape(title)}</h1>", _legend()]
    if len(reports) > 1:
        body.append(_comparison_table(reports))
    body.append('<div class="cols">')
    for report in reports:
        body.append(f"<section>{_heading(report)}{_ladder_svg(report)}</section>")
    body.append("</div>")
    body.append('<div class="cols">')
    for report in reports:
        body.append(f"<section>{_calls_table(report)}{_packets(report)}</section>")
    body.append("</div>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _legend() -> str:
    spans = "".join(
        f'<span class="{layer}">{escape(name)}</span>'
        for layer, name in _LAYER_NAMES.items()
        if layer != "padding"
    )
    return f'<p class="legend">colours by layer: {spans}</p>'


def _name(report: LayersReport) -> str:
    ex = report.exchange
    if ex is not None:
        return f"{ex.transport.upper()} over {ex.family}"
    conv = report.timeline.conversation
    return conv.protocol if conv else "capture"


def _heading(report: LayersReport) -> str:
    ex = report.exchange
    parts = [f"<h2>{escape(_name(report))}</h2>"]
    if ex is not None:
        parts.append(
            f"<p>client <code>{escape(ex.client_text)}</code> &rarr; server "
            f"<code>{escape(ex.server_text)}</code>; sent {escape(escape_payload(ex.sent))} "
            f"({len(ex.sent)} bytes), received {escape(escape_payload(ex.received))} "
            f"({len(ex.received)} bytes)</p>"
        )
    if report.mode == "rootless":
        parts.append(
            "<p><b>No packets:</b> capture was not permitted, so only the application "
            f"calls are shown. {escape(report.capture_problem or '')}</p>"
        )
    return "".join(parts)


def _comparison_table(reports: Sequence[LayersReport]) -> str:
    rows = []
    for report in reports:
        wire = sum(p.link.frame_length for p in report.packets)
        data = sum(len(p.application.payload) for p in report.packets)
        calls = len(report.exchange.calls) if report.exchange else 0
        rows.append(
            f"<tr><td>{escape(_name(report))}</td><td>{len(report.packets)}</td>"
            f"<td>{wire}</td><td>{data}</td><td>{wire - data}</td><td>{calls}</td></tr>"
        )
    return (
        '<table class="compare"><tr><th>exchange</th><th>packets</th><th>bytes on the wire</th>'
        "<th>application bytes</th><th>header bytes</th><th>socket calls</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _zero(report: LayersReport) -> float | None:
    from socketkit.layers.live import clock_zero

    return clock_zero(report.packets, report.exchange)


def _ms(stamp: float, zero: float | None) -> str:
    return f"+{(stamp - (zero or stamp)) * 1000:.3f} ms"


def _ladder_svg(report: LayersReport) -> str:
    """Client and server as two vertical lines, one labelled arrow per packet."""
    if not report.packets:
        return "<p>(no packets captured)</p>"
    conv = report.timeline.conversation
    client = join_host_port(*conv.client) if conv else "client"
    server = join_host_port(*conv.server) if conv else "server"
    entries = {e.packet: e for e in report.timeline.entries}
    zero = _zero(report)
    left, right, top, step = 60, 400, 50, 34
    width = right + 110
    height = top + step * len(report.packets) + 20
    out = [
        f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="ladder diagram of {escape(_name(report))}">',
        '<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" '
        'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs>',
        f'<text x="{left}" y="16" text-anchor="middle">client</text>',
        f'<text x="{left}" y="30" text-anchor="middle">{escape(client)}</text>',
        f'<text x="{right}" y="16" text-anchor="middle">server</text>',
        f'<text x="{right}" y="30" text-anchor="middle">{escape(server)}</text>',
        f'<line x1="{left}" y1="{top - 12}" x2="{left}" y2="{height - 8}" '
        'stroke="#333" stroke-width="2"/>',
        f'<line x1="{right}" y1="{top - 12}" x2="{right}" y2="{height - 8}" '
        'stroke="#333" stroke-width="2"/>',
    ]
    for row, p in enumerate(report.packets):
        y = top + step * row + 14
        entry = entries.get(p.index)
        label = escape(ladder_label(p.transport, len(p.application.payload)))
        layer = "application" if p.application.payload else "transport"
        colour = "#c0392b" if layer == "application" else "#333"
        direction = entry.direction if entry else "-"
        out.append(f'<text x="4" y="{y + 4}">#{p.index}</text>')
        if direction == CLIENT_TO_SERVER:
            x1, x2 = left + 2, right - 2
        elif direction == SERVER_TO_CLIENT:
            x1, x2 = right - 2, left + 2
        else:
            x1 = x2 = 0
        if x1 != x2:
            out.append(
                f'<line class="arrow" x1="{x1}" y1="{y}" x2="{x2}" y2="{y + 10}" '
                f'stroke="{colour}" stroke-width="1.5" marker-end="url(#head)"/>'
            )
        out.append(
            f'<text x="{(left + right) / 2}" y="{y - 2}" text-anchor="middle" '
            f'fill="{colour}">{label}</text>'
        )
        out.append(f'<text x="{right + 8}" y="{y + 8}">{_ms(p.timestamp, zero)}</text>')
    out.append("</svg>")
    return "".join(out)


def _calls_table(report: LayersReport) -> str:
    ex = report.exchange
    if ex is None:
        return ""
    zero = _zero(report)
    tied: dict[int, list[int]] = {}
    for e in report.timeline.entries:
        for i in e.calls:
            tied.setdefault(i, []).append(e.packet)
    rows = "".join(
        f'<tr><td class="mono">{_ms(c.started, zero)}</td><td><code>{escape(c.label)}</code>'
        f'</td><td class="mono">{(c.finished - c.started) * 1000:.3f} ms</td>'
        f"<td>{', '.join(f'#{n}' for n in tied.get(c.index, [])) or '-'}</td></tr>"
        for c in ex.calls
    )
    return (
        "<h3>timeline of application calls (same clock as the packets)</h3>"
        "<table><tr><th>time</th><th>call</th><th>took</th><th>packets</th></tr>"
        f"{rows}</table>"
    )


def _packets(report: LayersReport) -> str:
    entries = {e.packet: e for e in report.timeline.entries}
    frames = deduplicate(report.frames)
    zero = _zero(report)
    out = []
    for p in report.packets:
        data = frames[p.index - 1].data if p.index - 1 < len(frames) else b""
        out.append(_packet(p, entries.get(p.index), data, zero))
    return "".join(out)


def _packet(p: DecodedPacket, entry: TimelineEntry | None, data: bytes, zero: float | None) -> str:
    what = f" - {escape(entry.direction)}: {escape(entry.what)}" if entry else ""
    spans = encapsulation(p)
    total = max(p.link.frame_length, 1)
    bar = "".join(
        f'<div class="{s.layer}" style="flex: {max(s.size, 1)} 1 0" '
        f'title="{escape(s.name)} {s.size} bytes">{escape(s.name)} {s.size} B</div>'
        for s in spans
    )
    rows = "".join(
        f'<tr class="{layer}"><th>{escape(layer)}</th><td>{escape(text)}</td></tr>'
        for layer, text in _fields(p)
    )
    return (
        f'<div class="packet"><h3>#{p.index} {_ms(p.timestamp, zero)}{what}</h3>'
        f'<div class="bar" title="{total} bytes">{bar}</div>'
        f"<table>{rows}</table>{_hex(data, spans)}</div>"
    )


def _fields(p: DecodedPacket) -> list[tuple[str, str]]:
    link = p.link
    out = [
        (
            "link",
            f"{link.kind} frame, {link.frame_length} bytes, header {link.header_length} B"
            + (f", {link.source} -> {link.destination}" if link.source else ""),
        )
    ]
    ip = p.internet
    if ip is None:
        return out
    if ip.version == 4:
        out.append(
            (
                "internet",
                f"IPv4 {ip.source} -> {ip.destination}, header {ip.header_length} B, "
                f"total length {ip.total_length}, TTL {ip.ttl}, ID {ip.identification}"
                + (", DF" if ip.dont_fragment else "")
                + f", protocol {ip.protocol}",
            )
        )
    else:
        out.append(
            (
                "internet",
                f"IPv6 {ip.source} -> {ip.destination}, header 40 B, payload length "
                f"{ip.payload_length}, hop limit {ip.ttl}, next header {ip.protocol}",
            )
        )
    t = p.transport
    if t is not None and t.protocol == "TCP":
        seq = t.relative_seq if t.relative_seq is not None else t.seq
        ack = t.relative_ack if t.relative_ack is not None else t.ack
        text = (
            f"TCP {t.source_port} -> {t.destination_port}, header {t.header_length} B, "
            f"flags {t.flag_text}, seq {seq} (raw {t.seq})"
            + (f", ack {ack} (raw {t.ack})" if "ACK" in t.flags else "")
            + f", {window_text(t)}"
        )
        if t.options:
            text += f"; options: {options_text(t)}"
        out.append(("transport", text))
    elif t is not None:
        out.append(
            (
                "transport",
                f"UDP {t.source_port} -> {t.destination_port}, length {t.length} "
                f"(8-byte header + {t.payload_length} bytes)",
            )
        )
    if p.application.payload:
        out.append(
            (
                "application",
                f"{escape_payload(p.application.payload)} ({len(p.application.payload)} bytes)",
            )
        )
    return out


def _hex(data: bytes, spans: Sequence[object]) -> str:
    """The frame's bytes as hex, each byte in its layer's colour, 16 to a line."""
    from socketkit.layers.pictures import LayerSpan

    layers = ["padding"] * len(data)
    for span in spans:
        assert isinstance(span, LayerSpan)
        for i in range(span.start, min(span.start + span.size, len(data))):
            layers[i] = span.layer
    lines = []
    for row in range(0, len(data), 16):
        cells = " ".join(
            f'<span class="{layers[i]}">{data[i]:02x}</span>'
            for i in range(row, min(row + 16, len(data)))
        )
        lines.append(f"{row:04x}&nbsp; {cells}")
    return f'<div class="hex">{"<br>".join(lines)}</div>' if lines else ""
