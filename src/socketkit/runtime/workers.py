"""``serve --workers N``: N processes sharing each TCP and UDP port (SO_REUSEPORT).

One event loop uses one core; a user who outgrows it runs more processes.
The shape, and why:

- the calling process is worker 0 and the *lead*: it binds every socket
  first (so port 0, names such as ``localhost`` and "address already in
  use" are settled once, with the usual errors) and serves like any server;
- workers 1..N-1 are fresh interpreters (``spawn``: no forked event loop
  or locks) that bind the lead's exact addresses with SO_REUSEPORT, each
  with sockets of their own, so the kernel spreads connections and
  datagrams over them by a hash of the peer's address (no shared accept
  queue, no thundering herd; this is nginx's ``reuseport`` and uvicorn's
  model on Linux);
- Unix sockets stay with the lead: SO_REUSEPORT does not apply to them;
- a worker ignores SIGINT (a terminal's Ctrl-C reaches the whole process
  group; the lead decides) and is told to stop through its pipe; a pipe
  that closes means the lead died, and the worker stops too, so no
  orphan keeps a port;
- a worker that dies is replaced, at most ``MAX_RESTARTS`` times a minute;
  beyond that the lead stops everything and says so. A worker that stopped
  on purpose (SIGTERM: a service manager signals the whole process group,
  and the workers may hear it before the lead) sent its counters and is not
  replaced;
- limits (connections, per-source caps, UDP rate) apply per worker, as
  nginx's ``worker_connections`` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from socketkit.errors import SocketkitError, TimedOut, UsageError, WorkerFailed
from socketkit.runtime.bind import Binding
from socketkit.runtime.limits import Limits
from socketkit.runtime.loop import remove_signal_handlers, run
from socketkit.runtime.server import Server
from socketkit.runtime.stats import ServerStatistics, combine_statistics

__all__ = ["MAX_WORKERS", "UNIX_ONLY", "WorkerPool", "combine_statistics"]

log = logging.getLogger("socketkit.workers")

MAX_WORKERS = 64
"""More processes than this is a typo on any machine this tool is for."""
MAX_RESTARTS = 5
"""Workers replaced within ``RESTART_WINDOW`` seconds before the lead gives up."""
RESTART_WINDOW = 60.0
START_TIMEOUT = 30.0
"""Seconds a new worker gets to import, bind and report ready."""
UNIX_ONLY = (
    "--workers shares TCP and UDP ports; a Unix socket is served by one process "
    "- drop --workers or serve TCP or UDP too"
)
_STOP_MARGIN = 5.0
"""Seconds past the grace period before a worker that has not exited is killed."""


@dataclass(frozen=True)
class _Spec:
    """What a worker needs, sent pickled to a fresh interpreter."""

    index: int
    bindings: tuple[Binding, ...]
    limits: Limits
    narrate: bool
    verbosity: int
    loop: str
    terms: tuple[tuple[str, str], ...] = ()


@dataclass
class _Worker:
    index: int
    process: Any
    conn: Connection
    ready: asyncio.Future[None]
    replacement: bool
    stats: ServerStatistics | None = None
    """Its counters, sent when it stopped on purpose (told to, or SIGTERM)."""
    stopping: bool = False


class WorkerPool:
    """Workers 1..N-1 of ``serve --workers N``, supervised from the lead's loop."""

    def __init__(
        self,
        lead: Server,
        count: int,
        *,
        loop: str = "auto",
        verbosity: int = 0,
        terms: Mapping[str, str] | None = None,
        on_failure: Callable[[SocketkitError], None] | None = None,
    ) -> None:
        if not 1 <= count <= MAX_WORKERS:
            raise UsageError(f"--workers {count}: choose 1-{MAX_WORKERS}")
        bindings = tuple(lead.concrete_bindings())
        if count > 1 and not bindings:
            raise UsageError(UNIX_ONLY)
        self.count = count
        self._spec = _Spec(
            0, bindings, lead.limits, lead.narrate, verbosity, loop, tuple((terms or {}).items())
        )
        self._on_failure = on_failure
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._retired: list[ServerStatistics] = []
        self._restarts: deque[float] = deque()
        self._last_error = ""
        self._started = False
        self._stopping = False
        self._all_gone = asyncio.Event()

    # -- public ---------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (the lead's own is not among them)."""
        return [w.process.pid for w in self._workers.values()]

    async def start(self) -> None:
        """Start every worker and wait until each has bound its sockets."""
        spawned: list[_Worker] = []
        try:
            for index in range(1, self.count):
                if self._stopping:
                    break
                spawned.append(self._spawn(index))
            await self._wait_ready(spawned)
        except BaseException:
            self.stop(now=True)
            await self.wait_stopped()
            raise
        finally:
            self._started = True
            _read_outcomes(spawned)
        self._update_all_gone()

    def stop(self, *, now: bool = False) -> None:
        """Ask every worker to stop: gracefully, or at once (a second Ctrl-C)."""
        self._stopping = True
        for worker in self._workers.values():
            if not worker.stopping or now:
                worker.stopping = True
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send("now" if now else "stop")

    async def wait_stopped(self, grace: float = 0.0) -> None:
        """Wait for every worker to exit; kill what is left after ``grace`` + a margin."""
        self._update_all_gone()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gone.wait(), grace + _STOP_MARGIN)
            return
        for worker in list(self._workers.values()):
            log.warning(
                "worker %d (pid %s) did not stop; killing it", worker.index, worker.process.pid
            )
            worker.process.kill()
        try:
            await asyncio.wait_for(self._all_gone.wait(), _STOP_MARGIN)
        except TimeoutError:
            log.warning("workers %s did not exit even when killed", self.pids)

    def statistics(self) -> list[ServerStatistics]:
        """What the workers reported when they stopped (the ones that could)."""
        return list(self._retired)

    # -- internals ------------------------------------------------------------

    def _spawn(self, index: int, *, replacement: bool = False) -> _Worker:
        loop = asyncio.get_running_loop()
        spec = dataclasses.replace(self._spec, index=index)
        try:
            ours, theirs = self._ctx.Pipe()
        except OSError as exc:
            raise _cannot_start(index, exc) from exc
        process = self._ctx.Process(
            target=_worker_main, args=(spec, theirs), name=f"socketkit-serve-{index}"
        )
        # The child inherits "ignore SIGINT" across exec, so a Ctrl-C while it
        # is still importing cannot print a KeyboardInterrupt traceback.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        except OSError as exc:
            ours.close()
            raise _cannot_start(index, exc) from exc
        finally:
            signal.signal(signal.SIGINT, previous)
            theirs.close()
        worker = _Worker(index, process, ours, loop.create_future(), replacement)
        self._workers[index] = worker
        self._all_gone.clear()
        loop.add_reader(ours.fileno(), self._on_message, worker)
        loop.add_reader(process.sentinel, self._on_exit, worker)
        return worker

    async def _wait_ready(self, workers: list[_Worker]) -> None:
        if not workers:
            return
        futures = [w.ready for w in workers]
        _, pending = await asyncio.wait(futures, timeout=START_TIMEOUT)
        errors = [f.exception() for f in futures if f.done() and f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]
        if pending:
            raise TimedOut(
                f"the serve workers did not start within {START_TIMEOUT:g} s - "
                "is the machine overloaded? try fewer --workers"
            )

    def _on_message(self, worker: _Worker) -> bool:
        """Handle one message from a worker; False when its pipe has closed."""
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(worker.conn.fileno())
            return False
        if kind == "ready":
            if not worker.ready.done():
                worker.ready.set_result(None)
            if worker.replacement:
                log.warning("worker %d is now pid %s", worker.index, worker.process.pid)
        elif kind == "error":
            self._last_error = str(payload)
            if not worker.ready.done():
                worker.ready.set_exception(payload)
                if worker.replacement:
                    worker.ready.exception()  # nobody awaits a replacement: read it here
        elif kind == "done":
            worker.stats = payload
        return True

    def _on_exit(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(worker.process.sentinel)
        # Its last words ("done" and its statistics) may still wait in the pipe.
        with contextlib.suppress(OSError, ValueError):
            while worker.conn.poll(0) and self._on_message(worker):
                pass
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        worker.process.join(1.0)  # its pipes close just before it can be reaped
        code = worker.process.exitcode
        del self._workers[worker.index]
        if worker.stats is not None:
            self._retired.append(worker.stats)
        if not worker.ready.done():
            worker.ready.set_exception(
                WorkerFailed(
                    f"serve worker {worker.index} {_how_it_ended(code)} before it was ready"
                )
            )
            if worker.replacement or self._stopping:
                worker.ready.exception()  # read here: nobody else will
        if worker.stats is not None and not self._stopping:
            # It stopped on purpose (a SIGTERM to it, or to the whole process
            # group before ours arrived): not a death to make up for.
            log.warning(
                "worker %d (pid %s) stopped on request; %d of %d processes remain",
                worker.index,
                worker.process.pid,
                len(self._workers) + 1,
                self.count,
            )
        elif self._started and not self._stopping:
            self._replace(worker, code)
        self._update_all_gone()

    def _update_all_gone(self) -> None:
        if not self._workers:
            self._all_gone.set()

    def _replace(self, worker: _Worker, code: int | None) -> None:
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) >= MAX_RESTARTS:
            last = self._last_error or f"the last {_how_it_ended(code)}"
            self._fail(
                WorkerFailed(
                    f"serve workers keep dying ({MAX_RESTARTS} replaced within "
                    f"{RESTART_WINDOW:g} s; {last}) - run with -v and fewer --workers"
                )
            )
            return
        self._restarts.append(now)
        log.warning(
            "worker %d (pid %s) %s; starting another",
            worker.index,
            worker.process.pid,
            _how_it_ended(code),
        )
        try:
            self._spawn(worker.index, replacement=True)
        except WorkerFailed as exc:
            self._fail(exc)

    def _fail(self, exc: SocketkitError) -> None:
        if self._stopping:
            return
        self.stop()
        if self._on_failure is not None:
            self._on_failure(exc)


def _read_outcomes(workers: list[_Worker]) -> None:
    """Read every settled start-up outcome, so none is reported as never retrieved."""
    for worker in workers:
        if worker.ready.done() and not worker.ready.cancelled():
            worker.ready.exception()


def _cannot_start(index: int, exc: OSError) -> WorkerFailed:
    return WorkerFailed(
        f"cannot start serve worker {index}: {exc.strerror or exc} - "
        "raise the process or file limits (ulimit -u, ulimit -n) or use fewer --workers"
    )


# -- the worker process ----------------------------------------------------------


def _how_it_ended(code: int | None) -> str:
    """``killed by SIGKILL`` for a negative exit code (multiprocessing's "killed by signal N")."""
    if code is None:
        return "ended (no exit status)"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _worker_main(spec: _Spec, conn: Connection) -> None:
    """A worker's whole life: bind, report, serve until told (or orphaned), report."""
    # The lead handles Ctrl-C and a closed terminal (SIGHUP) for all of us and
    # tells each worker to stop gracefully; SIGTERM to a worker stops only it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from socketkit.logs import configure_logging

    configure_logging(spec.verbosity, prefix=f"[worker {spec.index}] ", terms=dict(spec.terms))
    try:
        run(_serve(spec, conn), loop=spec.loop)
    except SocketkitError as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", exc))
        sys.exit(exc.exit_code)
    except Exception as exc:
        # A bug: the lead says it in one line (and stops); the traceback only with -vv.
        log.debug("serve worker %d failed", spec.index, exc_info=True)
        with contextlib.suppress(OSError):
            conn.send(("error", WorkerFailed(f"serve worker {spec.index} failed: {exc!r}")))
        sys.exit(WorkerFailed.exit_code)


async def _serve(spec: _Spec, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    server = Server(
        spec.bindings,
        limits=spec.limits,
        narrate=spec.narrate,
        port_sharing="join",
    )
    await server.start()

    def on_message() -> None:
        try:
            order = conn.recv()
        except (EOFError, OSError):
            # The lead is gone: stop, so no orphan keeps the port.
            loop.remove_reader(conn.fileno())
            server.request_shutdown()
            return
        server.request_shutdown(0 if order == "now" else None)

    signals = 0

    def on_sigterm() -> None:
        nonlocal signals
        signals += 1
        server.request_shutdown(None if signals == 1 else 0)

    # Before "ready": the lead announces this pid then, and a SIGTERM sent at
    # once must find our handler, not the default that kills without a word.
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        conn.send(("ready", None))
    except OSError:
        # The lead is gone already: nobody to serve for.
        remove_signal_handlers(loop, (signal.SIGTERM,))
        await server.shutdown(0)
        return
    loop.add_reader(conn.fileno(), on_message)
    try:
        await server.wait_closed()
    finally:
        remove_signal_handlers(loop, (signal.SIGTERM,))
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(conn.fileno())
    with contextlib.suppress(OSError):
        conn.send(("done", server.statistics()))
