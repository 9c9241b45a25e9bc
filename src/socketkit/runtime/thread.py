"""Run a server in a background thread: for tests, notebooks and sync code.

``with serve_in_thread("echo") as server:`` returns once every socket is
bound (a bind error is raised right there), exposes the bound endpoints, and
shuts the server down gracefully on exit. No sleeps: the thread signals the
caller when binding is done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from socketkit.endpoints import Endpoint, Transport
from socketkit.errors import TimedOut
from socketkit.protocols import ServiceInfo
from socketkit.runtime.bind import Binding, BoundEndpoint, plan_bindings
from socketkit.runtime.limits import Limits
from socketkit.runtime.loop import loop_factory
from socketkit.runtime.server import Server
from socketkit.runtime.stats import ServerStatistics

__all__ = ["ServerThread", "serve_in_thread"]

T = TypeVar("T")


class ServerThread:
    """A ``Server`` on its own event loop in a daemon thread."""

    def __init__(
        self,
        bindings: Sequence[Binding],
        *,
        limits: Limits | None = None,
        loop: str = "auto",
        start_timeout: float = 10.0,
        **server_kwargs: Any,
    ) -> None:
        self._bindings = bindings
        self._limits = limits
        self._loop_name = loop
        self._start_timeout = start_timeout
        self._server_kwargs = server_kwargs
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="socketkit-server", daemon=True)
        self.final_statistics: ServerStatistics | None = None
        self.loop_errors: list[dict[str, Any]] = []
        """What the server's loop reported to its exception handler (tests assert it
        stays empty: an error there is a bug, even if no client noticed)."""

    @property
    def server(self) -> Server:
        assert self._server is not None, "the server thread is not running"
        return self._server

    @property
    def endpoints(self) -> list[BoundEndpoint]:
        return self.server.endpoints

    def address(self, service: str | None = None, transport: Transport = "tcp") -> Endpoint:
        return self.server.address(service, transport)

    def statistics(self) -> ServerStatistics:
        """A snapshot taken on the server's own loop (thread-safe)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
        return future.result(timeout=self._start_timeout)

    async def _snapshot(self) -> ServerStatistics:
        return self.server.statistics()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the server's loop thread and return its result.

        Why: ``ManualTimers`` is not thread-safe; a test advances virtual
        time with ``thread.call(lambda: timers.advance(5))`` so the callbacks
        run where the connections live.
        """
        assert self._loop is not None, "the server thread is not running"

        async def run() -> T:
            return fn()

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout=self._start_timeout)

    def start(self) -> ServerThread:
        """Start the thread and wait until every socket is bound (idempotent)."""
        if self._thread.ident is not None:
            return self
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimedOut(f"the server did not bind within {self._start_timeout} s")
        if self._error is not None:
            self._thread.join(self._start_timeout)
            raise self._error
        return self

    def stop(self, grace: float | None = None, timeout: float = 30.0) -> ServerStatistics | None:
        """Shut down gracefully and wait for the thread (at most ``timeout`` s)."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._grace = grace
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        return self.final_statistics

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    _grace: float | None = None

    def _main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory(self._loop_name)) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                raise

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        default_handler = self._loop.get_exception_handler()

        def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            self.loop_errors.append(context)
            if default_handler is not None:
                default_handler(loop, context)
            else:
                loop.default_exception_handler(context)

        self._loop.set_exception_handler(record)
        self._stop = asyncio.Event()
        self._server = Server(self._bindings, limits=self._limits, **self._server_kwargs)
        await self._server.start()
        self._ready.set()
        await self._stop.wait()
        self.final_statistics = await self._server.shutdown(self._grace)


def serve_in_thread(
    *services: str | ServiceInfo,
    host: str = "127.0.0.1",
    port: int = 0,
    tcp: bool = True,
    udp: bool = True,
    unix: str | None = None,
    limits: Limits | None = None,
    loop: str = "auto",
    **server_kwargs: Any,
) -> ServerThread:
    """Start serving ``services`` (default: echo) in a thread.

    ``port=0`` (the default) gives every service its own free port, read back
    from ``endpoints`` or ``address()``; another port serves one service there,
    or several at that port base.
    """
    chosen = services or ("echo",)
    names = [s.name if isinstance(s, ServiceInfo) else s for s in chosen]
    bindings = plan_bindings(
        chosen,
        host=host,
        port=port if port and len(chosen) == 1 else None,
        port_base=port,
        ports=dict.fromkeys(names, 0) if port == 0 else None,
        tcp=tcp,
        udp=udp,
        unix=unix,
    )
    return ServerThread(bindings, limits=limits, loop=loop, **server_kwargs).start()
