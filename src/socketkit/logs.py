"""Logging set-up shared by the CLI and the runtime, and the access log.

Two streams, configured independently:

- **Server and client logs** (logger ``socketkit`` and its children):
  ``configure_logging(verbosity)``. ``-v`` shows the lecture-style narration
  (INFO), ``-vv`` debug detail; by default warnings only. ``fmt="text"``
  keeps the lab's transcript readable (``14:03:07.123 echo/tcp ...`` with
  ``timestamps=True``; warnings and errors say ``socketkit:`` and their
  level); ``fmt="json"`` writes one JSON object per line for log shippers.
- **The access log** (logger ``socketkit.access``):
  ``configure_access_log(target)`` and ``log_access(AccessRecord(...))``: one
  record per connection or datagram, written to a file or stderr
  whatever ``-v`` says (the logger does not propagate to ``socketkit``).

Why here and not in ``cli/``: ``serve --workers`` configures logging in each
worker process from the runtime, and the runtime must not import the CLI.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TextIO

from socketkit.endpoints import format_sockaddr

__all__ = [
    "ACCESS_LOGGER",
    "AccessRecord",
    "LogFormat",
    "TermsFilter",
    "access_log_enabled",
    "configure_access_log",
    "configure_logging",
    "export_settings",
    "log_access",
]

LogFormat = Literal["text", "json"]
ACCESS_LOGGER = "socketkit.access"


def _clock(created: float) -> str:
    """``14:03:07.123`` in local time: short, and what a person at the terminal reads."""
    return time.strftime("%H:%M:%S", time.localtime(created)) + f".{int(created % 1 * 1000):03d}"


def _iso(created: float) -> str:
    """``2026-12-05T14:03:07.123Z``: UTC, sortable, for files and shippers."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


class TextFormatter(logging.Formatter):
    """Narration as is; warnings and errors start "socketkit: " like every other error line.

    Why: -v narration is the lab's transcript and reads best bare, but a
    warning (a worker replaced, accept errors) must say who is speaking.
    With ``timestamps`` every line starts with the time, and a level other
    than INFO is named (``debug:``, ``warning:``, ``error:``), so a server's
    log says when and how bad without cluttering the narration.
    """

    def __init__(self, prefix: str = "", *, timestamps: bool = False) -> None:
        super().__init__("%(message)s")
        self._prefix = prefix
        self._timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        text = self._prefix + super().format(record)
        if self._timestamps and record.levelno != logging.INFO:
            text = f"{record.levelname.lower()}: {text}"
        if record.levelno >= logging.WARNING:
            text = f"socketkit: {text}"
        if self._timestamps:
            text = f"{_clock(record.created)} {text}"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and extras.

    Extras are the ``access`` dict of an access record and ``worker`` (the
    prefix, when set). Non-JSON values are written with ``str()``.
    """

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self._worker = prefix.strip().strip("[]") or None

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._worker:
            out["worker"] = self._worker
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TermsFilter(logging.Filter):
    """Rewrites the library's words into the caller's: ``limit max_connections`` -> ``--max-connections``.

    Why: the runtime names its own settings (a ``Server()`` user has no
    flags), while a person running ``socketkit serve`` should read the flag
    to change. Longer names go first, so ``max_connections_per_source`` is
    never half-rewritten as ``max_connections``.
    """

    def __init__(self, terms: Mapping[str, str]) -> None:
        super().__init__()
        self._terms = sorted(terms.items(), key=lambda item: -len(item[0]))

    def rewrite(self, text: str) -> str:
        for word, replacement in self._terms:
            text = text.replace(word, replacement)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.rewrite(record.msg)
        if isinstance(record.args, tuple):
            # a refusal's reason arrives as an argument ("refused %s: %s")
            record.args = tuple(
                self.rewrite(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


SETTINGS_ENV = "SOCKETKIT_LOG_SETTINGS"
"""Where ``export_settings`` leaves the log choices for child processes."""


def export_settings(fmt: LogFormat, timestamps: bool, access_log: str | None) -> None:
    """Pass the log format, timestamps and access-log target to processes we spawn.

    Why the environment: ``serve --workers`` starts fresh interpreters that
    configure their own logging with ``configure_logging(verbosity, prefix)``;
    with this set, their lines look like the lead's, and their connections
    reach the same access log (appended by each process, one line per write).
    """
    os.environ[SETTINGS_ENV] = json.dumps(
        {"fmt": fmt, "timestamps": timestamps, "access_log": access_log}
    )


def _exported() -> dict[str, Any]:
    try:
        found = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def configure_logging(
    verbosity: int,
    prefix: str = "",
    *,
    fmt: LogFormat | None = None,
    timestamps: bool | None = None,
    stream: TextIO | None = None,
    terms: Mapping[str, str] | None = None,
) -> None:
    """-v shows the narration (INFO), -vv debug detail; default: warnings only.

    ``prefix`` starts every line (``serve --workers`` names the worker).
    ``timestamps`` puts the time and level on text lines (servers want them;
    the one-shot clients' narration reads better without). ``fmt="json"``
    always carries both. ``terms`` rewrites library words in every message
    (see ``TermsFilter``). Replaces the handlers of the ``socketkit`` logger
    (calling it again reconfigures, it never adds a second handler); the
    access log is left as it is, unless a parent process exported its
    settings (``export_settings``): then ``fmt`` and ``timestamps`` default to
    the parent's, and the access log is opened as the parent's was.
    """
    exported = _exported()
    if fmt is None:
        fmt = "json" if exported.get("fmt") == "json" else "text"
    if timestamps is None:
        timestamps = bool(exported.get("timestamps", False))
    if exported.get("access_log"):
        try:
            configure_access_log(str(exported["access_log"]), fmt=fmt)
        except OSError:
            pass  # the parent opened it a moment ago; a failure here is reported there
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(
        JsonFormatter(prefix) if fmt == "json" else TextFormatter(prefix, timestamps=timestamps)
    )
    if terms:
        handler.addFilter(TermsFilter(terms))
    root = logging.getLogger("socketkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


# -- the access log -------------------------------------------------------------


@dataclass(frozen=True)
class AccessRecord:
    """One connection (TCP, Unix) or one datagram (UDP).

    ``peer`` is what ``getpeername``/``recvfrom`` gave, or the real client
    named by a PROXY header; ``ended`` says how it ended, in a word the
    runtime chooses: ``closed`` (the connection ended on its own: the client
    or a one-shot service closed it), ``shutdown`` (open when the server
    stopped), ``idle_timeout``, ``aborted``, ``proxy_rejected``; for a
    datagram ``answered`` or ``no_reply``. ``duration`` is in seconds.
    """

    peer: Any
    service: str
    transport: str
    bytes_in: int
    bytes_out: int
    duration: float
    ended: str

    def fields(self) -> dict[str, Any]:
        out = asdict(self)
        out["peer"] = format_sockaddr(self.peer)
        out["duration"] = round(self.duration, 6)
        return out

    def text(self) -> str:
        return (
            f"{self.service}/{self.transport} {format_sockaddr(self.peer)} "
            f"in={self.bytes_in} out={self.bytes_out} duration={self.duration:.3f}s "
            f"ended={self.ended}"
        )


class _AccessTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{_iso(record.created)} {record.getMessage()}"


def configure_access_log(target: str | TextIO | None, *, fmt: LogFormat = "text") -> None:
    """Send access records to ``target``: a file path (appended, line-buffered),
    ``"-"`` for stderr, an open text stream, or None to turn the access log off.

    Independent of -v and of ``configure_logging``. Raises ``OSError`` when
    the file cannot be opened (the caller turns it into a ``SocketkitError``
    naming the path).
    """
    logger = logging.getLogger(ACCESS_LOGGER)
    for old in logger.handlers:
        if isinstance(old, logging.FileHandler):
            old.close()
    logger.handlers.clear()
    logger.propagate = False
    if target is None:
        logger.setLevel(logging.CRITICAL + 1)
        logger.addHandler(logging.NullHandler())
        return
    handler: logging.Handler
    if target == "-":
        handler = logging.StreamHandler(sys.stderr)
    elif isinstance(target, str):
        handler = logging.FileHandler(target, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if fmt == "json" else _AccessTextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def access_log_enabled() -> bool:
    """True when records would be written: skip building them otherwise."""
    return logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)


def log_access(record: AccessRecord) -> None:
    """Write one access record (text: one line; json: its fields as keys)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if logger.isEnabledFor(logging.INFO):
        logger.info(record.text(), extra={"access": record.fields()})
