"""Logging set-up: text and JSON formats, timestamps and levels, the access log."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from socketkit.logs import (
    ACCESS_LOGGER,
    AccessRecord,
    TermsFilter,
    access_log_enabled,
    configure_access_log,
    configure_logging,
    log_access,
)

LOG = logging.getLogger("socketkit.test")
RECORD = AccessRecord(("::1", 40000, 0, 0), "echo", "tcp", 12, 11, 0.25, "closed")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = []
    for name in ("socketkit", ACCESS_LOGGER):
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
    yield
    for logger, handlers, level, propagate in saved:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("verbosity", "shown"), [(0, ["w"]), (1, ["i", "w"]), (2, ["d", "i", "w"])]
)
def test_verbosity_selects_levels(verbosity: int, shown: list[str]) -> None:
    out = io.StringIO()
    configure_logging(verbosity, stream=out)
    LOG.debug("d")
    LOG.info("i")
    LOG.warning("w")
    assert [line.removeprefix("socketkit: ") for line in lines(out)] == shown


def test_default_text_is_the_bare_transcript() -> None:
    out = io.StringIO()
    configure_logging(1, "[worker 0] ", stream=out)
    LOG.info("echo/tcp recv 16 bytes")
    LOG.warning("worker 1 exited")
    assert lines(out) == [
        "[worker 0] echo/tcp recv 16 bytes",
        "socketkit: [worker 0] worker 1 exited",
    ]


def test_timestamps_and_levels_for_servers() -> None:
    out = io.StringIO()
    configure_logging(2, stream=out, timestamps=True)
    LOG.info("echo/tcp accepted 127.0.0.1:5000")
    LOG.debug("detail")
    LOG.error("broken")
    info, debug, error = lines(out)
    clock = r"\d\d:\d\d:\d\d\.\d\d\d"
    assert re.fullmatch(clock + r" echo/tcp accepted 127\.0\.0\.1:5000", info)
    assert re.fullmatch(clock + r" debug: detail", debug)
    assert re.fullmatch(clock + r" socketkit: error: broken", error)


def test_reconfiguring_never_duplicates_lines() -> None:
    out = io.StringIO()
    configure_logging(1, stream=out)
    configure_logging(1, stream=out)
    LOG.info("once")
    assert lines(out) == ["once"]


def test_json_one_object_per_line() -> None:
    out = io.StringIO()
    configure_logging(1, "[worker 2] ", fmt="json", stream=out)
    LOG.info("line one\nline two")
    try:
        raise ValueError("boom")
    except ValueError:
        LOG.exception("failed")
    first, second = (json.loads(line) for line in lines(out))
    assert first["message"] == "line one\nline two"
    assert (first["level"], first["logger"], first["worker"]) == (
        "info",
        "socketkit.test",
        "worker 2",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_access_log_is_independent_of_verbosity() -> None:
    logs, access = io.StringIO(), io.StringIO()
    configure_logging(0, stream=logs)
    configure_access_log(access)
    assert access_log_enabled()
    log_access(RECORD)
    assert logs.getvalue() == ""
    (line,) = lines(access)
    assert re.fullmatch(
        r"\S+Z echo/tcp \[::1\]:40000 in=12 out=11 duration=0\.250s ended=closed", line
    )


def test_access_log_json_fields() -> None:
    access = io.StringIO()
    configure_access_log(access, fmt="json")
    log_access(AccessRecord(("::ffff:127.0.0.1", 9, 0, 0), "sum", "udp", 4, 2, 1.5, "idle_timeout"))
    record = json.loads(access.getvalue())
    assert {k: record[k] for k in ("peer", "service", "transport", "bytes_in", "bytes_out")} == {
        "peer": "127.0.0.1:9",
        "service": "sum",
        "transport": "udp",
        "bytes_in": 4,
        "bytes_out": 2,
    }
    assert (record["duration"], record["ended"], record["logger"]) == (
        1.5,
        "idle_timeout",
        ACCESS_LOGGER,
    )


def test_access_log_to_a_file_and_off(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    configure_access_log(str(path))
    log_access(RECORD)
    log_access(RECORD)
    configure_access_log(None)  # closes the file
    assert not access_log_enabled()
    log_access(RECORD)
    assert len(path.read_text().splitlines()) == 2


def test_access_log_unix_peer() -> None:
    record = AccessRecord("", "echo", "unix", 0, 0, 0.0, "closed")
    assert "unix:(unnamed)" in record.text()


def test_access_log_file_error_is_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        configure_access_log(str(tmp_path / "missing" / "access.log"))


def test_terms_filter_speaks_the_callers_words_longest_first() -> None:
    from socketkit.cli.serve import LIMIT_FLAGS

    stream = io.StringIO()
    configure_logging(0, stream=stream, terms=LIMIT_FLAGS)
    logging.getLogger("socketkit.server").warning(
        "refused %s: %d open from it (limit max_connections_per_source)", "10.0.0.1:5", 1
    )
    assert stream.getvalue() == (
        "socketkit: refused 10.0.0.1:5: 1 open from it (--max-per-source)\n"
    )
    rewrite = TermsFilter(LIMIT_FLAGS).rewrite
    assert rewrite("bad limit max_connections=0: it must be at least 1") == (
        "bad --max-connections=0: it must be at least 1"
    )
    assert TermsFilter({}).rewrite("(limit max_connections)") == "(limit max_connections)"


def test_terms_in_a_log_lines_arguments_are_rewritten_too() -> None:
    from socketkit.cli.serve import LIMIT_FLAGS

    stream = io.StringIO()
    configure_logging(0, stream=stream, terms=LIMIT_FLAGS)
    reason = "1 connections open from 127.0.0.1 (limit max_connections_per_source)"
    logging.getLogger("socketkit.server").warning("refused %s: %s", "127.0.0.1:5", reason)
    assert stream.getvalue() == (
        "socketkit: refused 127.0.0.1:5: 1 connections open from 127.0.0.1 (--max-per-source)\n"
    )
