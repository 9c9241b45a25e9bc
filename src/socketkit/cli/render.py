"""Tables for people on a terminal, tab-separated lines when piped, JSON on demand."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["print_json", "print_table", "to_jsonable"]


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    stream: TextIO | None = None,
    title: str | None = None,
) -> None:
    """Aligned columns with a header on a terminal; plain TSV rows (no header) when piped."""
    out = stream or sys.stdout
    cells = [[str(c) for c in row] for row in rows]
    if not out.isatty():
        for row in cells:
            print("\t".join(row), file=out)
        return
    if title:
        print(title, file=out)
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip(), file=out)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and the like as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def print_json(value: Any, *, stream: TextIO | None = None) -> None:
    print(json.dumps(to_jsonable(value), indent=2, sort_keys=False), file=stream or sys.stdout)
