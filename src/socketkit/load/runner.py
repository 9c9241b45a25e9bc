"""Run a benchmark: one worker in this process, or one process per worker.

Several processes are how a Python generator outruns a Python server: each
has its own interpreter, event loop and connections. They connect first,
then all start at one common instant (the system-wide monotonic clock) so
their measured windows coincide, and their histograms are merged exactly.
Every child is ended by its own handle on the way out, errors included.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from time import monotonic, monotonic_ns
from typing import Any

from socketkit.errors import SocketkitError, TimedOut
from socketkit.load.config import BenchConfig
from socketkit.load.stats import BenchSummary, WorkerReport, merge_reports, summarize
from socketkit.load.worker import ProgressCounts, run_worker
from socketkit.runtime.loop import loop_factory

__all__ = ["Progress", "loop_kind", "run_bench"]

_START_DELAY_NS = 50_000_000
_SPAWN_ALLOWANCE = 30.0
_POLL = 0.2
_COUNTERS = 4


@dataclass(frozen=True)
class Progress:
    """How far a run is, for a progress display."""

    elapsed: float
    """Seconds since the common start (warm-up included)."""
    planned: float | None
    """Warm-up plus duration, or None when ``--requests`` sets the length."""
    answered: int
    errors: int
    mismatches: int
    losses: int


ProgressCallback = Callable[[Progress], None]


def run_bench(
    config: BenchConfig,
    *,
    on_progress: ProgressCallback | None = None,
    progress_every: float = _POLL,
) -> BenchSummary:
    """Run the whole benchmark and return what it measured.

    ``on_progress`` is called about every ``progress_every`` seconds (interval
    reports ask for a finer grain than a progress bar needs).
    """
    workers = config.effective_workers
    every = max(0.01, min(progress_every, _POLL))
    if workers == 1:
        reports = [_run_inline(config, on_progress, every)]
    else:
        reports = _run_processes(config, workers, on_progress, every)
    hist, totals = merge_reports(reports)
    return summarize(
        hist,
        totals,
        target=str(config.target),
        mode=config.mode,
        size=config.size,
        workers=workers,
        rate_asked=config.rate,
        loop=loop_kind(config.loop),
    )


def loop_kind(name: str) -> str:
    """The event loop ``--loop name`` resolves to here: asyncio, uvloop or rloop."""
    factory = loop_factory(name)
    module = getattr(factory, "__module__", "") or ""
    top = module.split(".", 1)[0]
    return top if top in ("uvloop", "rloop") else "asyncio"


def _planned(config: BenchConfig) -> float | None:
    return None if config.duration is None else config.warmup + config.duration


def _run_inline(
    config: BenchConfig, on_progress: ProgressCallback | None, every: float
) -> WorkerReport:
    started = 0.0

    async def start() -> int:
        nonlocal started
        started = monotonic()
        return monotonic_ns()

    def progress(counts: ProgressCounts) -> None:
        if on_progress is not None:
            on_progress(_progress(config, monotonic() - started, [counts]))

    with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
        return runner.run(
            run_worker(
                config.share(0),
                0,
                wait_start=start,
                on_progress=progress if on_progress else None,
                progress_every=every,
            )
        )


def _progress(config: BenchConfig, elapsed: float, counts: list[ProgressCounts]) -> Progress:
    return Progress(
        elapsed=elapsed,
        planned=_planned(config),
        answered=sum(c[0] for c in counts),
        errors=sum(c[1] for c in counts),
        mismatches=sum(c[2] for c in counts),
        losses=sum(c[3] for c in counts),
    )


# -- several processes -----------------------------------------------------------


def _child(
    config: BenchConfig,
    index: int,
    conn_base: int,
    shared: Any,
    messages: Any,
    go: Any,
    start: Synchronized[int],
    every: float,
) -> None:
    """A worker process: connect, say ready, wait for go, run, send the report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C

    async def wait_start() -> int:
        deadline = monotonic() + _SPAWN_ALLOWANCE + config.connect_timeout
        while not go.is_set():
            if monotonic() > deadline:
                raise TimedOut("the other load workers never became ready")
            await asyncio.sleep(0.002)
        value: int = start.value
        return value

    def ready() -> None:
        messages.put(("ready", index, None))

    def progress(counts: ProgressCounts) -> None:
        base = index * _COUNTERS
        for i, value in enumerate(counts):
            shared[base + i] = value

    try:
        with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
            report = runner.run(
                run_worker(
                    config,
                    conn_base,
                    wait_start=wait_start,
                    on_ready=ready,
                    on_progress=progress,
                    progress_every=every,
                )
            )
        messages.put(("done", index, report))
    except SocketkitError as exc:
        messages.put(("error", index, exc))
    except BaseException as exc:
        messages.put(("error", index, RuntimeError(f"load worker {index} failed: {exc!r}")))


def _run_processes(
    config: BenchConfig, workers: int, on_progress: ProgressCallback | None, every: float
) -> list[WorkerReport]:
    ctx = multiprocessing.get_context("spawn")
    shared = ctx.Array("d", workers * _COUNTERS, lock=False)
    messages = ctx.Queue()
    go = ctx.Event()
    start = ctx.Value("q", 0, lock=False)
    procs = []
    conn_base = 0
    for index in range(workers):
        share = config.share(index)
        procs.append(
            ctx.Process(
                target=_child,
                args=(share, index, conn_base, shared, messages, go, start, every),
                name=f"socketkit-bench-{index}",
                daemon=True,
            )
        )
        conn_base += share.connections
    reports: dict[int, WorkerReport] = {}
    try:
        for proc in procs:
            proc.start()
        ready: set[int] = set()
        deadline = monotonic() + _SPAWN_ALLOWANCE + config.connect_timeout
        while len(ready) < workers:
            kind, index, payload = _next_message(messages, procs, deadline)
            if kind == "ready":
                ready.add(index)
            else:
                _raise_from(kind, payload)
        started = monotonic()
        start.value = monotonic_ns() + _START_DELAY_NS
        go.set()
        run_for = (config.duration or 24 * 3600.0) + config.warmup
        deadline = started + run_for + config.timeout + 30.0
        while len(reports) < workers:
            try:
                kind, index, payload = messages.get(timeout=every)
            except queue.Empty:
                _check_alive(procs, reports)
                if monotonic() > deadline:
                    raise TimedOut("the load workers did not finish in time") from None
                if on_progress is not None:
                    counts = [
                        tuple(int(shared[i * _COUNTERS + j]) for j in range(_COUNTERS))
                        for i in range(workers)
                    ]
                    on_progress(_progress(config, monotonic() - started, counts))  # type: ignore[arg-type]
                continue
            if kind == "done":
                reports[index] = payload
            else:
                _raise_from(kind, payload)
        if on_progress is not None:
            final = [(r.answered, r.errors, r.mismatches, r.losses) for r in reports.values()]
            on_progress(_progress(config, monotonic() - started, final))
        for proc in procs:
            proc.join(5.0)
        return [reports[i] for i in range(workers)]
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            if proc.pid is not None:
                proc.join(2.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join(1.0)
        messages.close()
        with contextlib.suppress(Exception):
            messages.join_thread()


def _next_message(messages: Any, procs: list[Any], deadline: float) -> tuple[str, int, Any]:
    while True:
        try:
            item: tuple[str, int, Any] = messages.get(timeout=_POLL)
            return item
        except queue.Empty:
            _check_alive(procs, {})
            if monotonic() > deadline:
                raise TimedOut("the load workers did not connect in time") from None


def _check_alive(procs: list[Any], reports: dict[int, WorkerReport]) -> None:
    for index, proc in enumerate(procs):
        if index not in reports and not proc.is_alive() and proc.exitcode not in (None, 0):
            raise RuntimeError(f"load worker {index} died (exit code {proc.exitcode})")


def _raise_from(kind: str, payload: Any) -> None:
    if isinstance(payload, BaseException):
        raise payload
    raise RuntimeError(f"load worker sent {kind!r}")
