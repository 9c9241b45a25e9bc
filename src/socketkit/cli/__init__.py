"""The command line: parse, call the library, render; errors become one line here."""

from __future__ import annotations

from socketkit.cli.main import main

__all__ = ["main"]
