"""Options and habits every command shares: -v, --loop, --debug, logging set-up."""

from __future__ import annotations

import argparse
import logging
import math
import sys

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


class _Formatter(logging.Formatter):
    """Narration as is; warnings and errors start "socketkit: " like every other error line.

    Why: -v narration is the lab's transcript and reads best bare, but a
    warning (a worker replaced, accept errors) must say who is speaking.
    """

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix.replace("%", "%%") + "%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"socketkit: {text}" if record.levelno >= logging.WARNING else text


def configure_logging(verbosity: int, prefix: str = "") -> None:
    """-v shows the narration (INFO), -vv debug detail; default: warnings only.

    ``prefix`` starts every line (``serve --workers`` names the worker).
    """
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(prefix))
    root = logging.getLogger("socketkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


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
