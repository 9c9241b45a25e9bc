"""How payload bytes are shown to people: escaped, so no control byte ever
reaches a terminal raw, and hex dumps in the familiar offset/hex/ASCII form.
"""

from __future__ import annotations

__all__ = ["escape_payload", "hexdump"]

_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x5C: "\\\\", 0x22: '\\"'}
_TABLE = [_NAMED.get(b, chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in range(256)]


def escape_payload(data: bytes, limit: int | None = 80) -> str:
    """``"hello\\r\\n"``-style text for bytes; long payloads end in ``...(+N bytes)``."""
    shown = data if limit is None else data[:limit]
    text = '"' + "".join(_TABLE[b] for b in shown) + '"'
    if len(shown) < len(data):
        text += f"...(+{len(data) - len(shown)} bytes)"
    return text


def hexdump(data: bytes, *, offset: int = 0, prefix: str = "") -> list[str]:
    """Lines of ``OFFSET  16 hex bytes  |ascii|``, offsets continuing from ``offset``."""
    lines = []
    for start in range(0, len(data), 16):
        row = data[start : start + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)
        lines.append(f"{prefix}{offset + start:08x}  {hexes:<47}  |{text}|")
    return lines
