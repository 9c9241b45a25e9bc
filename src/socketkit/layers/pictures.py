"""Pictures of an exchange for a terminal: the ladder diagram and encapsulation bars.

Pure text: packets and timeline entries in, lines out, so the same drawing
is tested without a terminal. The lecture draws these two pictures on its
slides (client and server as two vertical lines with arrows between them;
a packet as nested headers), and a learner reads them faster than a table.

Box-drawing and arrow characters are used when the output's encoding can
carry them; otherwise the same picture is drawn in ASCII, so a pipe into a
legacy terminal or a ``LANG=C`` session never shows mojibake or raises
UnicodeEncodeError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from socketkit.layers.decode import DecodedPacket, TransportLayer
from socketkit.layers.timeline import CLIENT_TO_SERVER, SERVER_TO_CLIENT, TimelineEntry

__all__ = [
    "ASCII",
    "UNICODE",
    "Glyphs",
    "LayerSpan",
    "encapsulation",
    "encapsulation_bar",
    "glyphs_for",
    "ladder",
    "ladder_label",
    "options_text",
    "side_by_side",
    "window_text",
]


@dataclass(frozen=True)
class Glyphs:
    """The characters a picture is drawn with."""

    line: str
    rule: str
    right: str
    left: str
    bar: str


UNICODE = Glyphs(line="│", rule="─", right="▶", left="◀", bar="┃")
ASCII = Glyphs(line="|", rule="-", right=">", left="<", bar="|")


def glyphs_for(encoding: str | None) -> Glyphs:
    """UNICODE when ``encoding`` can carry every glyph, else ASCII."""
    if not encoding:
        return ASCII
    sample = "".join((UNICODE.line, UNICODE.rule, UNICODE.right, UNICODE.left, UNICODE.bar))
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


@dataclass(frozen=True)
class LayerSpan:
    """One layer's share of a frame: its name, bytes, and where it starts."""

    layer: str
    """link, internet, transport, application or padding (the CSS class too)."""
    name: str
    size: int
    start: int
    note: str = ""


def encapsulation(p: DecodedPacket) -> list[LayerSpan]:
    """The frame cut into its layers, outermost first, with byte counts.

    Link header + IP header + transport header + data (+ Ethernet padding)
    adds up to the frame length; a frame that is not IP is one link span.
    """
    spans: list[LayerSpan] = []
    link = p.link
    offset = 0
    if link.header_length:
        spans.append(LayerSpan("link", link.kind, link.header_length, 0))
        offset = link.header_length
    ip = p.internet
    if ip is None:
        rest = link.frame_length - offset
        if rest > 0:
            spans.append(LayerSpan("link", "not IP", rest, offset))
        return spans
    spans.append(LayerSpan("internet", f"IPv{ip.version}", ip.header_length, offset))
    offset += ip.header_length
    t = p.transport
    if t is not None:
        note = ""
        if t.protocol == "TCP" and t.header_length > 20:
            note = f"20 + {t.header_length - 20} options"
        spans.append(LayerSpan("transport", t.protocol, t.header_length, offset, note))
        offset += t.header_length
    data = len(p.application.payload)
    if data:
        spans.append(LayerSpan("application", "data", data, offset))
        offset += data
    padding = link.frame_length - offset
    if padding > 0 and t is not None:
        spans.append(LayerSpan("padding", "padding", padding, offset))
    return spans


def encapsulation_bar(p: DecodedPacket, g: Glyphs) -> str:
    """``┃ Ethernet 14 B ┃ IPv4 20 B ┃ TCP 32 B ┃ data 5 B ┃ = 71 B``."""
    parts = []
    for span in encapsulation(p):
        note = f" ({span.note})" if span.note else ""
        parts.append(f" {span.name} {span.size} B{note} ")
    return g.bar + g.bar.join(parts) + g.bar + f" = {p.link.frame_length} B"


def ladder_label(t: TransportLayer | None, payload_length: int) -> str:
    """What the arrow for one packet says: flags and numbers, or the datagram size."""
    if t is None:
        return "?"
    if t.protocol != "TCP":
        return f"{t.protocol} {payload_length} B"
    seq = t.relative_seq if t.relative_seq is not None else t.seq
    label = f"{'+'.join(t.flags) or '-'} seq {seq}"
    if "ACK" in t.flags:
        ack = t.relative_ack if t.relative_ack is not None else t.ack
        label += f" ack {ack}"
    if payload_length:
        label += f" len {payload_length}"
    return label


def _arrow(label: str, width: int, direction: str, g: Glyphs) -> str:
    """An arrow ``width`` characters wide with ``label`` in its middle."""
    text = f" {label} "
    room = width - 2  # the head and one rule character at least
    if len(text) > room:
        text = text[: max(room - 1, 0)] + "~"
    left = (width - 1 - len(text)) // 2
    right = width - 1 - len(text) - left
    body = g.rule * left + text + g.rule * right
    return body + g.right if direction == CLIENT_TO_SERVER else g.left + body


def ladder(
    packets: Sequence[DecodedPacket],
    entries: Mapping[int, TimelineEntry],
    client: str,
    server: str,
    g: Glyphs,
    *,
    width: int = 44,
    notes: Mapping[int, str] | None = None,
) -> list[str]:
    """The sequence (ladder) diagram: client on the left, server on the right.

    ``client`` and ``server`` are ``"client ADDRESS"``-style headings: the
    first word and the rest go on two header rows, over each line.

    One row per packet: its number, an arrow in its direction labelled with
    its flags and relative numbers, and a note (the time and the socket call
    that caused it, when ``notes`` gives one). Packets that belong to neither
    direction of the conversation get a row without an arrow.
    """
    pad = " " * 5
    lines = []
    for left, right in zip(client.split(" ", 1), server.split(" ", 1), strict=False):
        gap = max(width + 2 - len(left) - len(right), 1)
        lines.append(f"{pad}{left}{' ' * gap}{right}".rstrip())
    lines.append(f"{pad}{g.line}{' ' * width}{g.line}")
    for p in packets:
        entry = entries.get(p.index)
        direction = entry.direction if entry else "-"
        label = ladder_label(p.transport, len(p.application.payload))
        if direction in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            middle = _arrow(label, width, direction, g)
        else:
            middle = f" ({label}) ".center(width)
        note = (notes or {}).get(p.index, "")
        row = f"{'#' + str(p.index):>4} {g.line}{middle}{g.line}"
        lines.append(f"{row}  {note}".rstrip())
    lines.append(f"{pad}{g.line}{' ' * width}{g.line}")
    return lines


def side_by_side(left: Sequence[str], right: Sequence[str], gap: int = 4) -> list[str]:
    """Two blocks of lines next to each other (TCP beside UDP)."""
    wide = max((len(line) for line in left), default=0)
    rows = max(len(left), len(right))
    out = []
    for i in range(rows):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        out.append(f"{a:<{wide}}{' ' * gap}{b}".rstrip())
    return out


def window_text(t: TransportLayer) -> str:
    """The receive window in bytes with the raw field beside it.

    ``window 65536 B (field 512 << scale 7)``; a SYN's window is never
    scaled; when the SYN was not captured the shift is unknown and only the
    field can be shown.
    """
    field = t.window if t.window is not None else 0
    if "SYN" in t.flags:
        return f"window {field} B (field {field}; a SYN's window is never scaled)"
    if t.window_scale is None or t.scaled_window is None:
        return f"window field {field} (scale unknown: the SYN was not captured)"
    if t.window_scale == 0:
        return f"window {field} B (field {field}, no scaling)"
    return f"window {t.scaled_window} B (field {field} << scale {t.window_scale})"


_OPTION_WORDS = {
    "MSS": "MSS {v} (largest segment I accept)",
    "WScale": "WScale {v} (my windows x{mult})",
    "SAckOK": "SACK-permitted",
    "SAck": "SACK {v}",
    "Timestamp": "timestamps {v}",
    "NOP": "NOP",
    "EOL": "EOL",
}


def options_text(t: TransportLayer) -> str:
    """The TCP options in header order, in words: ``MSS 65495 (...), SACK-permitted, ...``."""
    out = []
    for o in t.options:
        template = _OPTION_WORDS.get(o.name)
        if template is None:
            out.append(o.text)
            continue
        mult = 1 << int(o.value) if o.name == "WScale" and o.value.isdigit() else 1
        out.append(template.format(v=o.value, mult=mult))
    return ", ".join(out)
