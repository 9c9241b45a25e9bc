"""print_table: TSV without a header when piped, a rich table on a terminal."""

from __future__ import annotations

import io
import json
import re

import pytest

from socketkit.cli.render import print_json, print_note, print_table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_is_plain_tsv_without_header() -> None:
    out = io.StringIO()
    print_table(["a", "b"], [(1, "x y"), ("[::1]:7", "")], stream=out, title="ignored")
    assert out.getvalue() == "1\tx y\n[::1]:7\t\n"


def test_terminal_gets_header_title_and_literal_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    out = Terminal()
    print_table(
        ["family", "address"],
        [("AF_INET6", "[::1]:7"), ("AF_INET", "[bold]x")],
        stream=out,
        title="getaddrinfo('localhost', 7)",
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert text.splitlines()[0] == "getaddrinfo('localhost', 7)"
    assert "family" in text
    assert "address" in text
    assert "[::1]:7" in text  # not eaten as rich markup
    assert "[bold]x" in text
    assert "\t" not in text


def test_note_goes_to_stderr_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    print_note("where this came from")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "where this came from\n"


def test_json_of_dataclasses_and_tuples() -> None:
    from socketkit.explore import HostAddress

    out = io.StringIO()
    print_json([HostAddress("AF_INET", "127.0.0.1"), (1, 2)], stream=out)
    assert json.loads(out.getvalue()) == [
        {"family": "AF_INET", "address": "127.0.0.1", "source": ""},
        [1, 2],
    ]
