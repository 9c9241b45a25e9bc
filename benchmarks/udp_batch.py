"""Batched UDP: socketkit's UDP adapter, batched and plain, against the strongest peers.

    .venv/bin/python benchmarks/udp_batch.py                 # batches 1, 16, 64; 64 B and 1 KiB
    .venv/bin/python benchmarks/udp_batch.py --repeats 3 --duration 3

What it does, and why:

- starts each UDP echo server as its own process pinned to CPU 0:
  ``socketkit serve echo --udp-io batched`` (recvmmsg/sendmmsg through the
  native helper, runtime/_mmsg.c), the same with ``--udp-io plain``
  (recvfrom_into/sendto per datagram), the asyncio Protocol baselines of
  benchmarks/baselines.py on uvloop and, when installed, rloop, and the C
  epoll server of benchmarks/c (the yardstick). socketkit runs with its
  default guards (loopback sources get a free pass, as they do for users);
- loads each with benchmarks/c/udp_rr_client.c pinned to CPU 1: BATCH
  sockets, each keeping one datagram in flight (so BATCH is the most
  datagrams a wake-up can find), every echo checked;
- reads each server's CPU time (/proc/PID/stat) around the run and divides
  by every echo the client got back: server CPU per datagram;
- interleaves the servers within each repeat and reports medians.

Every process it starts is ended by PID in a ``finally``. Loopback only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from echo import read_port

HERE = Path(__file__).resolve().parent
PY = sys.executable
SERVER_CPU = 0
LOAD_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
SOCKETKIT = [PY, "-m", "socketkit", "serve", "echo", "--port", "0", "--no-tcp"]
BASE = [PY, str(HERE / "baselines.py"), "protocol", "--loop"]


def servers(c: dict[str, Path]) -> dict[str, list[str]]:
    found = {
        "socketkit batched": [*SOCKETKIT, "--udp-io", "batched"],
        "socketkit plain": [*SOCKETKIT, "--udp-io", "plain"],
        "asyncio-protocol+uvloop": [*BASE, "uvloop"],
    }
    if importlib.util.find_spec("rloop") is not None:
        found["asyncio-protocol+rloop"] = [*BASE, "rloop"]
    found["c-epoll"] = [str(c["epoll_echo"])]
    return found


def pin(cpu: int) -> Callable[[], None]:
    def _pin() -> None:
        if cpu in os.sched_getaffinity(0):
            os.sched_setaffinity(0, {cpu})

    return _pin


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- the run ------------------------------------------------------------------------


def build(workdir: Path) -> dict[str, Path]:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise SystemExit("this benchmark needs gcc (the load generator is C)")
    out = {}
    for name, source in (
        ("epoll_echo", HERE / "c" / "epoll_echo.c"),
        ("udp_rr_client", HERE / "c" / "udp_rr_client.c"),
    ):
        out[name] = workdir / name
        subprocess.run([gcc, "-O2", "-o", str(out[name]), str(source)], check=True, timeout=120)
    return out


def start(argv: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=pin(SERVER_CPU),
    )
    try:
        return proc, read_port(proc, time.monotonic() + 30)
    except RuntimeError:
        proc.kill()
        proc.wait(5)
        raise


def load(
    client: Path, proc: subprocess.Popen[str], port: int, batch: int, size: int, args: Any
) -> dict[str, float]:
    before = cpu_seconds(proc.pid)
    out = subprocess.run(
        [client, "127.0.0.1", str(port), str(batch), str(size), str(args.duration), "0.3"],
        capture_output=True,
        text=True,
        timeout=args.duration + 30,
        preexec_fn=pin(LOAD_CPU),
        check=False,
    )
    cpu = cpu_seconds(proc.pid) - before
    data = json.loads(out.stdout)
    answered = max(1, data["answered"])
    return {
        "rps": data["requests_per_second"],
        "cpu_us": cpu / answered * 1e6,
        "lost": data["lost"],
        "bad": data["mismatches"] + data["errors"],
    }


def run(args: Any) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sk-udpbatch-"))
    procs: dict[str, tuple[subprocess.Popen[str], int]] = {}
    try:
        c = build(workdir)
        for name, argv in servers(c).items():
            procs[name] = start(argv)
        names = list(procs)
        results: dict[tuple[int, int, str], list[dict[str, float]]] = {}
        for size in args.sizes:
            for batch in args.batches:
                for rep in range(args.repeats):
                    order = names[rep % len(names) :] + names[: rep % len(names)]
                    for name in order:
                        proc, port = procs[name]
                        r = load(c["udp_rr_client"], proc, port, batch, size, args)
                        results.setdefault((size, batch, name), []).append(r)
                print(table(size, batch, names, results), flush=True)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def table(
    size: int,
    batch: int,
    names: list[str],
    results: dict[tuple[int, int, str], list[dict[str, float]]],
) -> str:
    c_cpu = statistics.median(r["cpu_us"] for r in results[(size, batch, "c-epoll")])
    plain_cpu = statistics.median(r["cpu_us"] for r in results[(size, batch, "socketkit plain")])
    lines = [
        f"\n### udp {size} B, batch {batch} (datagrams in flight)\n",
        "| server | req/s | server CPU us/datagram | x C epoll | x plain | lost | bad |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        runs = results[(size, batch, name)]
        cpu = statistics.median(r["cpu_us"] for r in runs)
        rps = statistics.median(r["rps"] for r in runs)
        lines.append(
            f"| {name} | {rps:,.0f} | {cpu:.2f} | {cpu / c_cpu:.2f} | {cpu / plain_cpu:.2f} | "
            f"{sum(r['lost'] for r in runs):.0f} | {sum(r['bad'] for r in runs):.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[64, 1024]
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs: server and client share one", file=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
