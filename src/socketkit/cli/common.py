"""Options and habits every command shares: -v, --loop, --debug, logging set-up."""

from __future__ import annotations

import argparse
import math
import os
import sys

from socketkit.logs import configure_logging
from socketkit.runtime.loop import LOOP_NAMES

__all__ = [
    "add_loop_option",
    "add_verbose_option",
    "configure_logging",
    "positive_float",
    "positive_int",
    "seconds_or_zero",
]


def add_verbose_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=f"narrate {what} on stderr, the way the lecture's lab does (-vv: debug detail)",
    )


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loop",
        choices=LOOP_NAMES,
        default="auto",
        help="event loop: auto (uvloop when installed), asyncio, uvloop or rloop (default: auto)",
    )


def silence_broken_output() -> None:
    """Flush stdout and stderr; point one whose reader left at /dev/null.

    Why: output nobody reads (``| head`` exited) is not a failure: the
    command goes on (a server keeps serving) and later writes, including
    Python's flush at exit, must not fail again.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type for seconds and rates: a finite number > 0."""
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def seconds_or_zero(text: str) -> float:
    """argparse type for waits where 0 means "at once" (or "never", as documented)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value
