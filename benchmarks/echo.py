"""Echo benchmark: socketkit's echo server against Python baselines, in one run.

    .venv/bin/python benchmarks/echo.py --quick        # a few minutes
    .venv/bin/python benchmarks/echo.py                # every cell of issue 6 (~15 min)
    .venv/bin/python benchmarks/echo.py --json out.json --markdown out.md
    .venv/bin/python benchmarks/echo.py --workers-only   # serve --workers 1 vs 2
    .venv/bin/python benchmarks/echo.py --generator-only # socketkit bench vs the C clients

What it does, and why:

- starts every server as its own process, each on its own port (port 0, read
  back from its stdout): socketkit (``python -m socketkit serve echo``), the
  baselines of benchmarks/baselines.py (asyncio streams and asyncio Protocol
  on uvloop, asyncio Protocol on rloop when installed, asyncio Protocol on
  the stock loop, a minimal selectors loop, a plain recv/send copy loop for
  the stream cells) and a C epoll echo server as the yardstick (built here
  with gcc when available; not a "baseline");
- judges every server with two generators: ``socketkit bench`` and, for rr
  and udp cells, the C epoll clients (benchmarks/c/), with the server's CPU
  time per request under each;
- pins every server to CPU 0 and the load generator to CPU 1, so they never
  compete for a core;
- loads each server with the same generator (``socketkit bench --json``;
  with one CPU it runs one worker), cell by cell, interleaving the servers and
  repeating each cell, and reports medians: run-to-run noise on shared
  machines reaches 15-30 %;
- reads each server's CPU time (utime + stime, /proc/PID/stat) around each
  run and divides by every echo the generator got back (warm-up included):
  the fairer figure when the generator saturates first;
- optionally compares ``socketkit bench`` with a C epoll client against the
  uvloop Protocol baseline (the "fastest other generator"), compares
  ``serve --workers 1`` with ``--workers 2`` under the C client, and opens
  many idle connections to socketkit to measure resident memory per
  connection.

Every process it starts is ended by PID in a ``finally``. Loopback only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
SERVER_CPU = 0
LOAD_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BASELINES = (
    "asyncio-streams+uvloop",
    "asyncio-protocol+uvloop",
    "asyncio-protocol+rloop",
    "asyncio-protocol",
    "selectors",
    "copyloop",
)


@dataclass(frozen=True)
class Cell:
    mode: str
    size: int
    conns: int

    @property
    def name(self) -> str:
        size = f"{self.size // 1024} KiB" if self.size >= 1024 else f"{self.size} B"
        return f"{self.mode} {size} x {self.conns}"


FULL_CELLS = [
    *(Cell("rr", size, conns) for size in (64, 1024, 16384) for conns in (1, 16, 256)),
    Cell("stream", 65536, 1),
    Cell("stream", 65536, 16),
    Cell("udp", 64, 16),
    Cell("udp", 1024, 16),
]
QUICK_CELLS = [
    Cell("rr", 64, 16),
    Cell("rr", 1024, 256),
    Cell("stream", 65536, 16),
    Cell("udp", 64, 16),
]


@dataclass
class Server:
    name: str
    argv: list[str]
    modes: set[str]
    baseline: bool = True
    proc: subprocess.Popen[str] | None = None
    port: int = 0


@dataclass
class Run:
    rps: float
    p99: float
    cpu_per_request_us: float
    answered: int
    size: int
    errors: int
    mib: float
    c_rps: float = 0.0
    """Requests/s the C epoll client reached against the same server (0: not run)."""
    c_cpu_per_request_us: float = 0.0
    """Server CPU per request under the C client."""


@dataclass
class Result:
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)


def pin(cpu: int) -> Any:
    def _pin() -> None:
        if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
            os.sched_setaffinity(0, {cpu})

    return _pin


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from the kernel's accounting."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def build_c(workdir: Path) -> dict[str, Path]:
    """Compile the C yardstick server and client; {} when gcc is missing."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return {}
    out = {}
    for name in ("epoll_echo", "epoll_client", "udp_rr_client"):
        if not (HERE / "c" / f"{name}.c").exists():
            continue
        target = workdir / name
        subprocess.run(
            [gcc, "-O2", "-o", str(target), str(HERE / "c" / f"{name}.c")],
            check=True,
            timeout=120,
        )
        out[name] = target
    return out


def servers(c: dict[str, Path], *, experiments: bool = False) -> list[Server]:
    socketkit = [
        PY,
        "-m",
        "socketkit",
        "serve",
        "echo",
        "--port",
        "0",
        "--max-connections",
        "30000",
        "--max-per-source",
        "30000",
        "--idle-timeout",
        "0",
    ]
    base = [PY, str(HERE / "baselines.py")]
    found = [
        Server("socketkit", socketkit, {"rr", "stream", "udp"}, baseline=False),
        # The same server on its Python paths: what the native default saves
        # (`env` execs the server, so the pid measured is the server's).
        Server("socketkit --udp-io plain", [*socketkit, "--udp-io", "plain"], {"udp"}, False),
        *(
            [
                Server(
                    "socketkit --loop rloop", [*socketkit, "--loop", "rloop"], {"rr", "udp"}, False
                )
            ]
            if importlib.util.find_spec("rloop") is not None
            else []
        ),
        Server(
            "socketkit SOCKETKIT_MIRROR=transport",
            ["env", "SOCKETKIT_MIRROR=transport", *socketkit, "--no-udp"],
            {"rr", "stream"},
            False,
        ),
        Server("asyncio-streams+uvloop", [*base, "streams", "--loop", "uvloop"], {"rr", "stream"}),
        Server(
            "asyncio-protocol+uvloop",
            [*base, "protocol", "--loop", "uvloop"],
            {"rr", "stream", "udp"},
        ),
        Server(
            "asyncio-protocol", [*base, "protocol", "--loop", "asyncio"], {"rr", "stream", "udp"}
        ),
        *(
            [
                Server(
                    "asyncio-protocol+rloop",
                    [*base, "protocol", "--loop", "rloop"],
                    {"rr", "stream", "udp"},
                )
            ]
            if importlib.util.find_spec("rloop") is not None
            else []
        ),
        Server("selectors", [*base, "selectors"], {"rr", "stream", "udp"}),
        Server("copyloop", [*base, "copyloop"], {"stream"}),
    ]
    # socketkit's serve already runs the mirror (echo) and the draining UDP
    # endpoint behind UdpGuard; these two relays are measured, not wired.
    fast = [PY, str(HERE / "fastpaths.py")]
    if experiments and sys.platform == "linux":
        found.append(
            Server("socketkit splice (experiment)", [*fast, "tcp-splice"], {"stream"}, False)
        )
    if experiments:
        found.append(
            Server("socketkit copy-relay (experiment)", [*fast, "tcp-copy"], {"stream"}, False)
        )
    if "epoll_echo" in c:
        found.append(
            Server("c-epoll (yardstick)", [str(c["epoll_echo"])], {"rr", "stream", "udp"}, False)
        )
    return found


def read_port(proc: subprocess.Popen[str], deadline: float) -> int:
    """The port a server printed: ``PORT n`` (baselines) or socketkit's table row."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), True)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("PORT "):
            return int(line.split()[1])
        for part in line.split():
            if part.startswith("127.0.0.1:"):
                return int(part.rsplit(":", 1)[1])
    raise RuntimeError(f"server {proc.args} did not print its port")


@contextmanager
def running(all_servers: Sequence[Server], *, pinned: bool = True) -> Iterator[None]:
    try:
        for s in all_servers:
            s.proc = subprocess.Popen(
                s.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                preexec_fn=pin(SERVER_CPU) if pinned else None,
            )
            s.port = read_port(s.proc, time.monotonic() + 30)
        yield
    finally:
        for s in all_servers:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
        for s in all_servers:
            if s.proc is not None:
                try:
                    s.proc.wait(5)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait(5)


def bench(server: Server, cell: Cell, duration: float, warmup: float) -> Run:
    assert server.proc is not None
    argv = [
        PY,
        "-m",
        "socketkit",
        "bench",
        f"127.0.0.1:{server.port}",
        "--mode",
        cell.mode,
        "--size",
        str(cell.size),
        "--conns",
        str(cell.conns),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--timeout",
        "1",
        "--workers",
        "1",
        "--json",
    ]
    before = cpu_seconds(server.proc.pid)
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + warmup + 60,
        preexec_fn=pin(LOAD_CPU),
        check=False,
    )
    cpu = cpu_seconds(server.proc.pid) - before
    if out.returncode not in (0, 1, 74) or not out.stdout.strip():
        print(f"  ! {server.name} {cell.name}: {out.stderr.strip()}", file=sys.stderr)
        return Run(0, 0, 0, 0, cell.size, 1, 0)
    data = json.loads(out.stdout)
    answered = max(1, data["answered"])
    return Run(
        rps=data["requests_per_second"],
        p99=data["latency_us"]["p99"],
        cpu_per_request_us=cpu / answered * 1e6,
        answered=answered,
        size=cell.size,
        errors=data["errors"] + data["mismatches"] + data["timeouts"],
        mib=data["mib_per_second"],
    )


GENERATOR_CELLS = (Cell("rr", 64, 16), Cell("rr", 64, 256), Cell("udp", 64, 16))


def c_generator(c: dict[str, Path], mode: str) -> Path | None:
    """The C client for a mode: epoll_client (rr), udp_rr_client (udp); None for stream."""
    return c.get({"rr": "epoll_client", "udp": "udp_rr_client"}.get(mode, ""))


def generator_comparison(
    srv: Server, c: dict[str, Path], duration: float, warmup: float, repeats: int
) -> list[dict[str, Any]]:
    """socketkit bench (one worker) vs the C epoll clients, same server, interleaved."""
    rows = []
    for cell in GENERATOR_CELLS:
        client = c_generator(c, cell.mode)
        if client is None or cell.mode not in srv.modes:
            continue
        ours, theirs = [], []
        for rep in range(repeats):
            if rep % 2 == 0:
                ours.append(bench(srv, cell, duration, warmup).rps)
                theirs.append(c_client(client, srv, cell, duration, warmup)[0])
            else:
                theirs.append(c_client(client, srv, cell, duration, warmup)[0])
                ours.append(bench(srv, cell, duration, warmup).rps)
        rows.append(
            {
                "cell": cell.name,
                "server": srv.name,
                "socketkit_bench": statistics.median(ours),
                "c_epoll_client": statistics.median(theirs),
                "runs": {"socketkit_bench": ours, "c_epoll_client": theirs},
            }
        )
    return rows


def c_client(
    client: Path, srv: Server, cell: Cell, duration: float, warmup: float, pinned: bool = True
) -> tuple[float, float]:
    """(requests/s, server CPU µs per answered request) under a C client."""
    assert srv.proc is not None
    before = cpu_seconds(srv.proc.pid)
    out = subprocess.run(
        [
            str(client),
            "127.0.0.1",
            str(srv.port),
            str(cell.conns),
            str(cell.size),
            str(duration),
            str(warmup),
        ],
        capture_output=True,
        text=True,
        timeout=duration + warmup + 30,
        preexec_fn=pin(LOAD_CPU) if pinned else None,
        check=False,
    )
    cpu = cpu_seconds(srv.proc.pid) - before
    try:
        data = json.loads(out.stdout)
        rate = float(data["requests_per_second"])
        answered = max(1, int(data["answered"]))
    except (ValueError, KeyError):
        print(f"  ! C client vs {srv.name} {cell.name}: {out.stdout.strip()}", file=sys.stderr)
        return 0.0, 0.0
    if data.get("mismatches"):
        print(f"  ! C client saw {data['mismatches']} mismatches from {srv.name}", file=sys.stderr)
    return rate, cpu / answered * 1e6


def workers_comparison(
    client: Path, duration: float, warmup: float, repeats: int
) -> list[dict[str, Any]]:
    """serve --workers 1 vs 2 under the C client, interleaved; nothing pinned.

    Two workers need two cores, so neither server nor client is pinned here:
    on a 2-core machine the client takes its share of the same cores.
    """
    one, two = servers({})[0], servers({})[0]
    one = Server("socketkit --workers 1", one.argv, one.modes, False)
    two = Server("socketkit --workers 2", [*two.argv, "--workers", "2"], two.modes, False)
    rows = []
    with running([one, two], pinned=False):
        for cell in (Cell("rr", 64, 16), Cell("rr", 64, 256), Cell("rr", 1024, 256)):
            rates: dict[str, list[float]] = {one.name: [], two.name: []}
            for rep in range(repeats):
                for srv in (one, two) if rep % 2 == 0 else (two, one):
                    rates[srv.name].append(c_client(client, srv, cell, duration, warmup, False)[0])
            r1, r2 = (statistics.median(rates[n]) for n in (one.name, two.name))
            rows.append({"cell": cell.name, "workers_1": r1, "workers_2": r2})
    return rows


def workers_text(rows: list[dict[str, Any]]) -> str:
    lines = [
        "\n### serve --workers 1 vs 2 (C epoll client, nothing pinned)\n",
        "| cell | 1 worker req/s | 2 workers req/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["workers_2"] / r["workers_1"] if r["workers_1"] else 0
        lines.append(
            f"| {r['cell']} | {r['workers_1']:,.0f} | {r['workers_2']:,.0f} | {ratio:.2f} |"
        )
    return "\n".join(lines)


_SOURCE = [1]


def _next_source(advance: bool) -> int:
    """The last octet of the 127.0.0.x source address to use (2-250, cycling)."""
    if advance:
        _SOURCE[0] = 2 + (_SOURCE[0] - 1) % 249
    return _SOURCE[0]


def idle_connections(srv: Server, count: int) -> dict[str, Any]:
    """Open ``count`` idle connections to the server, measure its RSS, then echo on all."""
    import selectors

    assert srv.proc is not None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    time.sleep(0.2)
    rss_before = rss_bytes(srv.proc.pid)
    socks: list[socket.socket] = []
    ok = 0
    try:
        for i in range(count):
            # Spread over 127.0.0.x sources so ephemeral ports never run short
            # (earlier runs leave theirs in TIME_WAIT): a new source every 5,000.
            s = socket.socket()
            for _ in range(50):
                try:
                    s.bind((f"127.0.0.{_next_source(i % 5000 == 0)}", 0))
                    break
                except OSError:
                    _next_source(True)
            s.settimeout(10)
            s.connect(("127.0.0.1", srv.port))
            socks.append(s)
        deadline = time.monotonic() + 30
        rss_after = rss_bytes(srv.proc.pid)
        while time.monotonic() < deadline:  # wait until accepted (RSS stops growing)
            time.sleep(0.5)
            now = rss_bytes(srv.proc.pid)
            if now == rss_after:
                break
            rss_after = now
        sel = selectors.DefaultSelector()
        for i, s in enumerate(socks):
            s.setblocking(False)
            s.send(i.to_bytes(8, "big"))
            sel.register(s, selectors.EVENT_READ, i)
        left = len(socks)
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                data = s.recv(64)
                if data == key.data.to_bytes(8, "big"):
                    ok += 1
                sel.unregister(s)
                left -= 1
        sel.close()
    finally:
        for s in socks:
            s.close()
    return {
        "connections": count,
        "echoed_correctly": ok,
        "rss_growth_bytes": rss_after - rss_before,
        "bytes_per_connection": (rss_after - rss_before) / max(1, count),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 cells, 2 repeats, 1.5 s each")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--only", help="comma-separated server names to run (socketkit always)")
    parser.add_argument("--cells", help="comma-separated cells like rr:64:16,udp:1024:16")
    parser.add_argument("--idle", type=int, help="idle connections to open (0: skip)")
    parser.add_argument("--no-generator-check", action="store_true")
    parser.add_argument(
        "--generator-only",
        action="store_true",
        help="only socketkit bench (1 worker) vs the C clients on rr 64x16, 64x256, udp 64x16",
    )
    parser.add_argument(
        "--no-c-client",
        action="store_true",
        help="judge servers with socketkit bench only (default: the C clients too)",
    )
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also run the relay experiments of benchmarks/fastpaths.py (stream cells)",
    )
    parser.add_argument(
        "--workers-only",
        action="store_true",
        help="only compare serve --workers 1 and 2 (needs gcc for the C client)",
    )
    parser.add_argument("--json", metavar="FILE", help="write every run's numbers here")
    parser.add_argument("--markdown", metavar="FILE", help="write the tables here too")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    duration = args.duration or (1.5 if args.quick else 2.0)
    cells = QUICK_CELLS if args.quick else FULL_CELLS
    if args.cells:
        cells = [
            Cell(m, int(s), int(c)) for m, s, c in (x.split(":") for x in args.cells.split(","))
        ]
    idle = args.idle if args.idle is not None else (2000 if args.quick else 10000)
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs: server and generator share one", file=sys.stderr)

    workdir = Path(tempfile.mkdtemp(prefix="sk-bench-"))
    try:
        c = build_c(workdir)
        if args.workers_only:
            if "epoll_client" not in c:
                print("the workers comparison needs gcc for the C client", file=sys.stderr)
                return 1
            print(
                workers_text(workers_comparison(c["epoll_client"], duration, args.warmup, repeats))
            )
            return 0
        all_servers = servers(c, experiments=args.experiments)
        if args.generator_only:
            return generator_only(all_servers, c, duration, args.warmup, repeats)
        if args.only:
            keep = {"socketkit", *args.only.split(",")}
            all_servers = [s for s in all_servers if s.name in keep]
        results: dict[tuple[str, str], Result] = {}
        extra: dict[str, Any] = {}
        sections: list[str] = []  # what is printed, kept for --markdown

        def emit(text: str) -> None:
            print(text, flush=True)
            sections.append(text)

        started = time.monotonic()
        with running(all_servers):
            for cell in cells:
                contenders = [s for s in all_servers if cell.mode in s.modes]
                if cell.mode != "stream":
                    contenders = [s for s in contenders if s.name != "copyloop"]
                for rep in range(repeats):
                    order = (
                        contenders[rep % len(contenders) :] + contenders[: rep % len(contenders)]
                    )
                    client = None if args.no_c_client else c_generator(c, cell.mode)
                    for srv in order:
                        run = bench(srv, cell, duration, args.warmup)
                        if client is not None:
                            run.c_rps, run.c_cpu_per_request_us = c_client(
                                client, srv, cell, duration, args.warmup
                            )
                        results.setdefault((cell.name, srv.name), Result()).runs.append(run)
                emit(cell_table(cell, contenders, results))
            by_name = {s.name: s for s in all_servers}
            target = by_name.get("c-epoll (yardstick)") or by_name.get("asyncio-protocol+uvloop")
            if not args.no_generator_check and "epoll_client" in c and target is not None:
                extra["generator"] = generator_comparison(target, c, duration, args.warmup, repeats)
                emit(generator_text(extra["generator"]))
            if "epoll_client" in c and len(os.sched_getaffinity(0)) >= 2:
                extra["workers"] = workers_comparison(
                    c["epoll_client"], duration, args.warmup, repeats
                )
                emit(workers_text(extra["workers"]))
            if idle:
                extra["idle"] = []
                for name in ("socketkit", "selectors"):
                    if name in by_name:
                        try:
                            measured = idle_connections(by_name[name], idle)
                        except OSError as exc:
                            print(f"\n(idle connections to {name} failed: {exc})")
                            continue
                        measured["server"] = name
                        extra["idle"].append(measured)
                        emit(idle_text(measured))
        extra["seconds"] = round(time.monotonic() - started, 1)
        verdicts = targets(cells, all_servers, results)
        print("\n## Targets\n")
        for line in verdicts:
            print(line)
        print(f"\n(total {extra['seconds']} s)")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "cells": {
                            f"{c_} | {s}": [r.__dict__ for r in res.runs]
                            for (c_, s), res in results.items()
                        },
                        **extra,
                        "targets": verdicts,
                    },
                    indent=2,
                )
            )
        if args.markdown:
            Path(args.markdown).write_text(
                "\n".join(sections) + "\n\n## Targets\n\n" + "\n".join(verdicts) + "\n"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def generator_only(
    all_servers: Sequence[Server], c: dict[str, Path], duration: float, warmup: float, repeats: int
) -> int:
    """The load generator check alone: socketkit bench vs the C clients on the C server."""
    names = ("c-epoll (yardstick)", "asyncio-protocol+uvloop")
    target = next((s for n in names for s in all_servers if s.name == n), None)
    if target is None or "epoll_client" not in c:
        print("the generator check needs gcc (the C server and clients)", file=sys.stderr)
        return 1
    with running([target]):
        rows = generator_comparison(target, c, duration, warmup, repeats)
    print(generator_text(rows))
    return 0


def best_baseline(
    cell: Cell, contenders: Sequence[Server], results: dict[tuple[str, str], Result]
) -> tuple[str, float]:
    best = ("", 0.0)
    for s in contenders:
        if s.baseline and s.name != "copyloop":
            rps = results[(cell.name, s.name)].median("rps")
            if rps > best[1]:
                best = (s.name, rps)
    return best


def cell_table(
    cell: Cell, contenders: Sequence[Server], results: dict[tuple[str, str], Result]
) -> str:
    """One cell: each server under socketkit bench and, for rr and udp, the C client."""
    _, best = best_baseline(cell, contenders, results)
    with_c = any(r.c_rps for s in contenders for r in results[(cell.name, s.name)].runs)
    head = "| server | req/s | MiB/s | p99 µs | x best baseline | server CPU µs/req |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if with_c:
        head += " C client req/s | server CPU µs/req (C client) |"
        rule += "---:|---:|"
    lines = [f"\n### {cell.name}\n", head + " errors |", rule + "---:|"]
    for s in contenders:
        res = results[(cell.name, s.name)]
        rps = res.median("rps")
        row = (
            f"| {s.name} | {rps:,.0f} | {res.median('mib'):,.1f} | {res.median('p99'):,.0f} | "
            f"{rps / best if best else 0:.2f} | {res.median('cpu_per_request_us'):.2f} |"
        )
        if with_c:
            row += f" {res.median('c_rps'):,.0f} | {res.median('c_cpu_per_request_us'):.2f} |"
        lines.append(row + f" {sum(r.errors for r in res.runs)} |")
    return "\n".join(lines)


def generator_text(rows: list[dict[str, Any]]) -> str:
    server = rows[0]["server"] if rows else "?"
    lines = [
        f"\n### generator check: socketkit bench (1 worker) vs C epoll clients, against {server}\n",
        "| cell | socketkit bench req/s | C client req/s | ratio | target >= 0.95 |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = r["socketkit_bench"] / r["c_epoll_client"] if r["c_epoll_client"] else 0
        verdict = "holds" if ratio >= 0.95 else "DOES NOT HOLD"
        lines.append(
            f"| {r['cell']} | {r['socketkit_bench']:,.0f} | {r['c_epoll_client']:,.0f} | "
            f"{ratio:.2f} | {verdict} |"
        )
    return "\n".join(lines)


def idle_text(r: dict[str, Any]) -> str:
    return (
        f"\n### idle connections: {r['server']}\n\n{r['connections']} idle connections: "
        f"{r['echoed_correctly']} echoed correctly; server RSS grew "
        f"{r['rss_growth_bytes'] / 1024:,.0f} KiB = {r['bytes_per_connection'] / 1024:.1f} KiB per connection"
    )


def ratio_text(ratio: float) -> str:
    """Two decimals, or three where two would round a miss up to 1.00 (or a pass down)."""
    text = f"{ratio:.2f}"
    if text == "1.00" and ratio != 1.0:
        return f"{ratio:.3f}"
    return text


def targets(
    cells: Sequence[Cell], all_servers: Sequence[Server], results: dict[tuple[str, str], Result]
) -> list[str]:
    out = []
    names = {s.name for s in all_servers}
    for cell in cells:
        contenders = [s for s in all_servers if (cell.name, s.name) in results]
        if (cell.name, "socketkit") not in results:
            continue
        ours = results[(cell.name, "socketkit")]
        best_name, best = best_baseline(cell, contenders, results)
        if not best_name:
            out.append(f"- {cell.name}: no baseline ran")
            continue
        rps = ours.median("rps")
        ratio = rps / best if best else 0
        verdict = "holds" if ratio >= 1.0 else "DOES NOT HOLD"
        line = f"- {cell.name}: socketkit {ratio_text(ratio)}x best baseline ({best_name}) in req/s: {verdict}"
        if cell.mode == "rr" and best_name:
            cpu = ours.median("cpu_per_request_us")
            best_cpu = min(
                results[(cell.name, s.name)].median("cpu_per_request_us")
                for s in contenders
                if s.baseline and s.name != "copyloop"
            )
            line += f"; CPU/request {cpu:.1f} vs best baseline {best_cpu:.1f} µs: {'holds' if cpu <= best_cpu else 'DOES NOT HOLD'}"
        if cell.mode == "stream":
            if "asyncio-protocol+uvloop" in names:
                uv = results[(cell.name, "asyncio-protocol+uvloop")].median("rps")
                line += f"; vs uvloop baseline {rps / uv if uv else 0:.2f}x ({'holds' if rps >= uv else 'DOES NOT HOLD'})"
            if "copyloop" in names:
                cpu = ours.median("cpu_per_request_us")
                copy = results[(cell.name, "copyloop")].median("cpu_per_request_us")
                share = cpu / copy if copy else 0
                line += f"; CPU per GiB {share:.2f}x the copy loop's (target <= 0.5: {'holds' if share <= 0.5 else 'DOES NOT HOLD'})"
        line += _rloop_text(cell, names, results)
        out.append(line)
    return out


def _rloop_text(cell: Cell, names: set[str], results: dict[tuple[str, str], Result]) -> str:
    """socketkit vs the rloop Protocol baseline: req/s and server CPU per request.

    Under the C client when it ran (it outruns every Python server), else
    under socketkit bench.
    """
    rloop = "asyncio-protocol+rloop"
    if rloop not in names or (cell.name, rloop) not in results:
        return ""
    ours, theirs = results[(cell.name, "socketkit")], results[(cell.name, rloop)]
    by_c = ours.median("c_rps") > 0 and theirs.median("c_rps") > 0
    rps_key, cpu_key = ("c_rps", "c_cpu_per_request_us") if by_c else ("rps", "cpu_per_request_us")
    ratio = ours.median(rps_key) / theirs.median(rps_key) if theirs.median(rps_key) else 0
    cpu_ratio = ours.median(cpu_key) / theirs.median(cpu_key) if theirs.median(cpu_key) else 0
    verdict = "holds" if ratio >= 1.0 and 0 < cpu_ratio <= 1.0 else "DOES NOT HOLD"
    parts = [f"{ours.median(cpu_key):.2f} (socketkit)", f"{theirs.median(cpu_key):.2f} (rloop)"]
    for other in ("asyncio-protocol+uvloop", "c-epoll (yardstick)"):
        if (cell.name, other) in results:
            parts.append(f"{results[(cell.name, other)].median(cpu_key):.2f} ({other})")
    return (
        f"; vs rloop Protocol ({'C client' if by_c else 'socketkit bench'}): "
        f"{ratio_text(ratio)}x req/s, {ratio_text(cpu_ratio)}x server CPU/request "
        f"[{' / '.join(parts)} µs]: {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
