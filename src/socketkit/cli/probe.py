"""``socketkit probe``: placeholder, being built (see the issue tracker)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Registers nothing yet: the command is being built."""
