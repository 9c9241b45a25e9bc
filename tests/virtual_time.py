"""Virtual time for tests: a ``ManualTimers`` a test can wait on, and loop turns.

Tests that exercise the runtime's deadlines (idle timeout, linger, back-off,
grace, the UDP token bucket) pass ``VirtualClock()`` as ``Server(timers=...)``
and move time with ``advance()``; they never sleep.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from socketkit.runtime.timers import Cancellable, ManualTimers
from tests.support import TIMEOUT

__all__ = ["VirtualClock", "loop_turns"]


class VirtualClock(ManualTimers):
    """``ManualTimers`` a test can wait on: every schedule or cancel wakes ``until``."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[asyncio.Future[None]] = []

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable:
        handle = super().call_later(delay, callback)
        self._wake()
        clock = self

        class Handle:
            def cancel(self) -> None:
                handle.cancel()
                clock._wake()

        return Handle()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait (at most TIMEOUT) until ``condition()`` holds, checked on each timer change."""
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter


async def loop_turns(count: int) -> None:
    """Let the event loop poll for I/O ``count`` times (no timer involved).

    Why not ``sock_sendall``/``sock_recv`` on a socketpair: they return
    without suspending when the socket is ready, so the loop would not run.
    """
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    with a, b:
        b.setblocking(False)
        for _ in range(count):
            polled = loop.create_future()
            loop.add_reader(b.fileno(), lambda f=polled: f.done() or f.set_result(None))
            try:
                a.send(b"p")
                await asyncio.wait_for(polled, TIMEOUT)
            finally:
                loop.remove_reader(b.fileno())
            assert b.recv(1) == b"p"
