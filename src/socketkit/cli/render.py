"""Tables for people on a terminal, tab-separated lines when piped, JSON on demand.

On a terminal, tables are drawn by rich (it measures the terminal, wraps long
cells and honours NO_COLOR); piped, every row is one line of tab-separated
cells with no header, so ``cut``, ``awk`` and ``grep`` work on it. Cells are
never read as rich markup, so ``[::1]:7`` stays as written.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["is_terminal", "print_json", "print_note", "print_table", "to_jsonable"]


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default stdout) is a terminal a person reads."""
    out = stream or sys.stdout
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


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
    if not is_terminal(out):
        for row in cells:
            print("\t".join(row), file=out)
        return
    _rich_table(headers, cells, out, title)


def _rich_table(
    headers: Sequence[str], cells: list[list[str]], out: TextIO, title: str | None
) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
    )
    # Short columns keep their width; the last (a description, an address) wraps.
    for i, header in enumerate(headers):
        last = i == len(headers) - 1
        table.add_column(Text(header), no_wrap=not last, overflow="fold")
    for row in cells:
        table.add_row(*(Text(c) for c in row))
    console = Console(file=out, highlight=False, emoji=False)
    if title:
        # Above the table, not as its title: a title would wrap to the table's width.
        console.print(Text(title, style="bold"))
    console.print(table)


def print_note(text: str) -> None:
    """A sentence about the data: under the table on a terminal, on stderr when piped.

    Piped output must stay pure rows, yet the note (a source, a caveat) is
    still worth a line where a person will see it.
    """
    if is_terminal(sys.stdout):
        print(text, file=sys.stdout)
    else:
        print(text, file=sys.stderr)


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
