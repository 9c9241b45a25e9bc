"""Who may connect: the open connections, the caps, and the wait for them to end.

The caps are checked when a connection is accepted, before any protocol
object exists: asyncio's own server accepts up to ``backlog`` sockets before
any protocol callback runs, so a cap checked in ``connection_made`` comes
late. Every listener of a server shares one table, so the caps count every
service's connections together.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

from socketkit.runtime.connection import Connection
from socketkit.runtime.limits import Limits
from socketkit.runtime.timers import Timers

__all__ = ["ConnectionTable"]


class ConnectionTable:
    """The open connections of one server and the total and per-source caps."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._active: set[Connection] = set()
        self._per_source: Counter[str] = Counter()
        self.closing = False
        """Set at shutdown: every new connection is refused."""

    def __len__(self) -> int:
        return len(self._active)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._active))

    def refusal(self, source: str) -> str:
        """Why a new connection from ``source`` must be refused ("" if it may stay)."""
        limits = self._limits
        if len(self._active) >= limits.max_connections:
            return f"{limits.max_connections} connections open (limit max_connections)"
        if self._per_source[source] >= limits.max_connections_per_source:
            return (
                f"{limits.max_connections_per_source} connections open from {source} "
                "(limit max_connections_per_source)"
            )
        return ""

    def full(self, waiting: int = 0) -> str:
        """Why no connection at all may start now, counting ``waiting`` not yet admitted ("" if one may).

        Why apart from ``refusal``: behind a load balancer the real source is
        known only once the PROXY header arrived; until then only the total
        cap can be checked, and connections still sending their header count
        against it, so a flood of silent connections cannot pile up.
        """
        limits = self._limits
        if len(self._active) + waiting >= limits.max_connections:
            return f"{limits.max_connections} connections open (limit max_connections)"
        return ""

    def add(self, conn: Connection) -> None:
        self._active.add(conn)
        self._per_source[conn.source] += 1

    def release(self, conn: Connection) -> None:
        """Free the connection's slot (idempotent) and mark it closed."""
        if conn in self._active:
            self._active.discard(conn)
            self._per_source[conn.source] -= 1
            if self._per_source[conn.source] <= 0:
                del self._per_source[conn.source]
        if not conn.closed.done():
            conn.closed.set_result(None)

    def report(self) -> None:
        """Bring every open connection's lazily counted traffic into the counters."""
        for conn in self._active:
            conn.report()

    async def wait_closed(self, timers: Timers, timeout: float) -> bool:
        """Wait until every open connection has closed, or ``timeout`` passed; True if all did."""
        waiting = [c.closed for c in self._active if not c.closed.done()]
        if not waiting:
            return True
        if timeout <= 0:
            return False
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        remaining = len(waiting)

        def one_closed(_: object) -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0 and not outcome.done():
                outcome.set_result(True)

        def expire() -> None:
            if not outcome.done():
                outcome.set_result(False)

        for future in waiting:
            future.add_done_callback(one_closed)
        handle = timers.call_later(timeout, expire)
        try:
            return await outcome
        finally:
            handle.cancel()
            for future in waiting:
                future.remove_done_callback(one_closed)
