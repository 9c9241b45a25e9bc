"""``socketkit completion`` and ``socketkit man``: placeholder, being built."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Registers nothing yet: the commands are being built."""
