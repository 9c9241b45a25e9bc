"""Shared fixtures: the loop matrix, a strict runner, servers on port 0.

Every integration test runs under asyncio and uvloop (``loop_name``). The
runner fails a test on any call to the loop's exception handler (uvloop's
own test base does the same), and every wait is bounded by ``TIMEOUT``,
scaled by SOCKETKIT_TEST_TIMEOUT_FACTOR on slow machines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import settings

from socketkit.runtime import ServerThread, loop_factory, mmsg, serve_in_thread
from tests.support import TIMEOUT

# Test what users get: subprocesses inherit this environment, and a variable this
# machine happens to export (PYTHONUNBUFFERED hides stdout buffering bugs) must
# not make a test pass that fails for a user.
for _name in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING"):
    os.environ.pop(_name, None)

# Property tests must not fail on a loaded 2-core CI machine for being slow.
settings.register_profile("socketkit", deadline=None)
settings.load_profile("socketkit")

T = TypeVar("T")


LOOPS = ["asyncio", "uvloop"]
UDP_IO = ["batched", "plain"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "udp_io: run the test once per UDP I/O path (batched recvmmsg/sendmmsg, plain "
        "recvfrom/sendto), chosen through $SOCKETKIT_UDP_IO so servers in subprocesses follow",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("udp_io") is not None:
        if "udp_io" not in metafunc.fixturenames:
            metafunc.fixturenames.append("udp_io")
        metafunc.parametrize("udp_io", UDP_IO, indirect=True)


@pytest.fixture
def udp_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The UDP path this test runs (``@pytest.mark.udp_io``): every fast path, same tests."""
    name: str = request.param
    if name == "batched" and not mmsg.available():
        # On Linux the helper must be there: test_mmsg.py fails if it is not.
        pytest.skip("batched UDP needs the native helper (Linux, built at install)")
    monkeypatch.setenv(mmsg.ENV, name)
    return name


@pytest.fixture(autouse=True)
def _restore_socketkit_logger() -> Iterator[None]:
    """In-process CLI runs configure the "socketkit" logger; undo it after each test."""
    logger = logging.getLogger("socketkit")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
    return name


Runner = Callable[[Callable[[], Awaitable[T]]], T]


@pytest.fixture
def arun(loop_name: str) -> Runner[Any]:
    """``arun(coro_fn)``: run on a fresh loop of the current kind, strictly, with a timeout."""

    def _run(fn: Callable[[], Awaitable[T]], timeout: float = TIMEOUT) -> T:
        problems: list[dict[str, Any]] = []

        async def main() -> T:
            asyncio.get_running_loop().set_exception_handler(
                lambda _loop, ctx: problems.append(ctx)
            )
            async with asyncio.timeout(timeout):
                return await fn()

        with asyncio.Runner(loop_factory=loop_factory(loop_name), debug=True) as runner:
            result = runner.run(main())
        assert not problems, f"the event loop reported: {problems}"
        return result

    return _run


@pytest.fixture
def unix_dir() -> Iterator[str]:
    """A short directory for Unix socket paths (they are limited to ~107 bytes)."""
    path = tempfile.mkdtemp(prefix="sk-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def echo_server(loop_name: str, unix_dir: str) -> Iterator[ServerThread]:
    """An echo server on port 0 (TCP and UDP, IPv4) and a Unix socket, in a thread."""
    server = serve_in_thread("echo", unix=os.path.join(unix_dir, "echo.sock"), loop=loop_name)
    try:
        yield server
    finally:
        server.stop(timeout=TIMEOUT)
    assert not server.loop_errors, f"the server's loop reported: {server.loop_errors}"
