"""A command started with a standard descriptor closed (``>&-``, ``<&-``, ``2>&-``).

Before the fix, ``>&-`` was "internal error: AttributeError" (exit 70) and
``<&-`` / ``2>&-`` aborted uvloop (``uv__close: Assertion 'fd > STDERR_FILENO'
failed``, exit 134), because the first socket took descriptor 0, 1 or 2.
Now a closed descriptor reads or writes /dev/null: the command does its job
and exits as it would with the stream there.
"""

from __future__ import annotations

import subprocess

import pytest

from socketkit.runtime import ServerThread
from tests.support import PY, TIMEOUT


def _run_closed(
    redirect: str, *argv: str, stdin: bytes | None = b"hi\n"
) -> subprocess.CompletedProcess[bytes]:
    # The shell closes the descriptor, then execs socketkit with it closed.
    script = f'exec "$@" {redirect}'
    return subprocess.run(
        ["sh", "-c", script, "sh", *PY, *argv],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize("redirect", [">&-", "<&-", "2>&-"])
def test_send_with_a_closed_standard_descriptor_works(
    echo_server: ServerThread, redirect: str
) -> None:
    ep = echo_server.address("echo", "tcp")
    target = f"{ep.host}:{ep.port}"
    done = _run_closed(redirect, "send", target, stdin=None if redirect == "<&-" else b"hi\n")
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr and b"internal error" not in done.stderr
    if redirect == "2>&-":
        assert done.stdout == b"hi\n"  # the echo still reaches stdout
    if redirect == "<&-":
        assert done.stdout == b""  # no input: an empty exchange, then a clean end


@pytest.mark.parametrize("redirect", [">&-", "<&-", "2>&-"])
def test_echo_with_a_closed_standard_descriptor_works(
    echo_server: ServerThread, redirect: str
) -> None:
    ep = echo_server.address("echo", "tcp")
    done = _run_closed(redirect, "echo", "hello", "--to", f"{ep.host}:{ep.port}")
    assert done.returncode == 0, done.stderr
    assert b"internal error" not in done.stderr
    if redirect != ">&-":
        assert done.stdout == b"hello\n"
