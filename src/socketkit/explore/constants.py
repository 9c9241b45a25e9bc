"""``socketkit constants``: the socket module's numbers, with every name they carry.

The lecture builds ``{getattr(socket, n): n for n in dir(socket) if n.startswith(prefix)}``;
a dict comprehension keeps only the last name for a value, so ``AF_ROUTE``
hides ``AF_NETLINK`` (both 16 on Linux) and ``IPPROTO_HOPOPTS`` hides
``IPPROTO_IP`` (both 0). Here a value maps to all its names.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from socketkit.errors import UsageError

__all__ = ["DEFAULT_PREFIXES", "Constant", "ConstantGroup", "constant_groups", "get_constants"]

DEFAULT_PREFIXES = ("AF_", "SOCK_", "IPPROTO_")
_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Constant:
    value: int
    names: tuple[str, ...]
    """Every name with this value, sorted; more than one means aliases."""


@dataclass(frozen=True)
class ConstantGroup:
    prefix: str
    constants: tuple[Constant, ...]
    """Sorted by value."""


def get_constants(prefix: str, module: ModuleType | Any = socket) -> dict[int, tuple[str, ...]]:
    """The lecture's helper, fixed: value -> every name starting with ``prefix``."""
    found: dict[int, list[str]] = {}
    for name in dir(module):
        if not name.startswith(prefix):
            continue
        value = getattr(module, name)
        if isinstance(value, int) and not isinstance(value, bool):
            found.setdefault(int(value), []).append(name)
    return {value: tuple(sorted(names)) for value, names in sorted(found.items())}


def constant_groups(
    prefixes: Sequence[str] = DEFAULT_PREFIXES, module: ModuleType | Any = socket
) -> tuple[ConstantGroup, ...]:
    """One group per prefix (case-insensitive); an unknown prefix is a usage error."""
    groups = []
    for raw in prefixes or DEFAULT_PREFIXES:
        prefix = raw.strip().upper()
        if not _PREFIX.match(prefix):
            raise UsageError(
                f"bad prefix {raw!r}: use letters, digits and _, e.g. AF_, SOCK_, IPPROTO_, SO_"
            )
        table = get_constants(prefix, module)
        if not table:
            raise UsageError(
                f"no constant in the socket module starts with {prefix!r} - "
                "try AF_, SOCK_, IPPROTO_, SO_, SOL_, MSG_ or AI_"
            )
        groups.append(
            ConstantGroup(prefix, tuple(Constant(v, names) for v, names in table.items()))
        )
    return tuple(groups)
