from __future__ import annotations

from socketkit.display import escape_payload, hexdump


def test_escape_payload_never_emits_control_bytes() -> None:
    text = escape_payload(bytes(range(256)), limit=None)
    assert all(0x20 <= ord(c) < 0x7F for c in text)
    assert escape_payload(b"hi\r\n\x1b[2J") == '"hi\\r\\n\\x1b[2J"'


def test_escape_payload_truncates_with_count() -> None:
    assert escape_payload(b"abcdef", limit=3) == '"abc"...(+3 bytes)'


def test_hexdump_offsets_and_ascii() -> None:
    lines = hexdump(b"hello, world! 0123", offset=16, prefix="> ")
    assert lines[0].startswith("> 00000010  68 65 6c 6c 6f")
    assert lines[0].endswith("|hello, world! 01|")
    assert lines[1].startswith("> 00000020  32 33")
