"""The one place that chooses the event loop.

uvloop is used when it is installed (``auto``), never through the deprecated
``uvloop.install()``: the factory goes to ``asyncio.Runner``, as uvloop's own
README and uvicorn do. rloop, a Rust loop on PyPI, is offered as a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from socketkit.errors import UsageError

__all__ = ["LOOP_NAMES", "loop_factory", "loop_name", "remove_signal_handlers", "run"]

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LOOP_NAMES = ("auto", "asyncio", "uvloop", "rloop")
_PACKAGE = {"rloop": "'socketkit[rloop]'"}
"""What to install for a loop that is an extra of ours (uvloop is a plain dependency)."""


def _import_factory(module: str) -> LoopFactory:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"--loop {module}: {module} is not installed - pip install {_PACKAGE.get(module, module)}, "
            "or use --loop asyncio"
        ) from None
    factory: LoopFactory = mod.new_event_loop
    return factory


def loop_factory(name: str = "auto") -> LoopFactory:
    """A callable that makes a new loop of the named kind."""
    if name == "auto":
        try:
            return _import_factory("uvloop")
        except UsageError:
            return asyncio.new_event_loop
    if name == "asyncio":
        return asyncio.new_event_loop
    if name in ("uvloop", "rloop"):
        return _import_factory(name)
    raise UsageError(f"unknown loop {name!r}: choose from {', '.join(LOOP_NAMES)}")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop``, ``rloop`` or ``asyncio``: the kind of a running loop."""
    module = type(loop).__module__.split(".", 1)[0]
    return module if module in ("uvloop", "rloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], *, loop: str = "auto", debug: bool = False) -> T:
    """Run a coroutine on a fresh loop of the chosen kind.

    An unknown or missing loop closes ``main`` before raising, so its
    refusal is one line, not a "coroutine was never awaited" warning too.
    """
    try:
        factory = loop_factory(loop)
    except BaseException:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory, debug=debug) as runner:
        return runner.run(main)


def remove_signal_handlers(loop: asyncio.AbstractEventLoop, signals: Iterable[int]) -> None:
    """Remove our signal handlers, whatever the loop makes of it.

    Why: rloop 0.5's ``remove_signal_handler`` raises AttributeError (it
    reads an attribute it never set), and that must not turn a clean stop
    into an internal error; the loop is about to close anyway.
    """
    for sig in signals:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
