"""Batched UDP micro-benchmark: runtime/mmsg.py against recvfrom_into/sendto and C.

    .venv/bin/python benchmarks/udp_batch.py                 # batches 1, 16, 64; 64 B and 1 KiB
    .venv/bin/python benchmarks/udp_batch.py --repeats 3 --duration 3
    .venv/bin/python benchmarks/udp_batch.py --micro         # in-process costs only

What it does, and why:

- starts four UDP echo servers, each its own process pinned to CPU 0:
  ``plain`` (the adapter's loop today: ``recvfrom_into`` until it would
  block, ``bytes``, a service call, ``sendto`` per reply), ``mmsg``
  (``MmsgSocket`` always batched), ``adaptive`` (``MmsgSocket``'s default:
  plain start, batched once a wake-up found more than one datagram) and the
  C epoll server of benchmarks/c (the yardstick). The Python servers run on
  uvloop with ``add_reader``, as socketkit's UDP adapter does, and hand each
  datagram to a service function as ``bytes`` with a ``now``;
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
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
SERVER_CPU = 0
LOAD_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
KINDS = ("plain", "mmsg", "adaptive")


def pin(cpu: int) -> Callable[[], None]:
    def _pin() -> None:
        if cpu in os.sched_getaffinity(0):
            os.sched_setaffinity(0, {cpu})

    return _pin


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- the servers (run as: udp_batch.py serve KIND) ----------------------------------


def service(data: bytes, now: float) -> list[bytes]:
    """Stands in for a sans-I/O DatagramService: echo."""
    return [data]


def plain_reader(sock: socket.socket) -> Callable[[], None]:
    """runtime/udp.py's loop, reduced to what the primitive replaces."""
    buffer = bytearray(65536)
    view = memoryview(buffer)
    clock = time.monotonic

    def on_readable() -> None:
        recv = sock.recvfrom_into
        send = sock.sendto
        now = clock()
        for _ in range(256):
            try:
                n, addr = recv(buffer)
            except (BlockingIOError, InterruptedError):
                break
            for reply in service(bytes(view[:n]), now):
                try:
                    send(reply, addr)
                except (BlockingIOError, InterruptedError):
                    pass

    return on_readable


def mmsg_reader(sock: socket.socket, adaptive: bool) -> Callable[[], None]:
    """How the adapter would use MmsgSocket: receive, serve, queue, flush."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from socketkit.runtime.mmsg import MmsgSocket

    batcher = MmsgSocket(sock, adaptive=adaptive)
    clock = time.monotonic

    def on_readable() -> None:
        receive = batcher.receive
        queue = batcher.queue
        for _ in range(4):  # at most 4 x 64 = 256 per wake-up, as the plain loop
            got = receive()
            now = clock()
            for data, addr in zip(got.payloads, got.addresses, strict=True):
                for reply in service(data, now):
                    queue(reply, addr)
            batcher.flush()
            if got.drained:
                break

    return on_readable


async def serve(kind: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    reader = plain_reader(sock) if kind == "plain" else mmsg_reader(sock, kind == "adaptive")
    loop = asyncio.get_running_loop()
    loop.add_reader(sock.fileno(), reader)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


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
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=pin(0)
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"{argv} did not print its port")
    return proc, int(line.split()[1])


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
        me = [PY, str(Path(__file__).resolve()), "serve"]
        for kind in KINDS:
            procs[kind] = start([*me, kind])
        procs["c-epoll"] = start([str(c["epoll_echo"])])
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
    plain_cpu = statistics.median(r["cpu_us"] for r in results[(size, batch, "plain")])
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


# -- in-process costs ---------------------------------------------------------------


def micro() -> int:
    """Per-call costs of the pieces (no load generator; one process)."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from socketkit.runtime.mmsg import MmsgSocket

    buf = bytearray(65536)
    view = memoryview(buf)
    import ctypes

    base = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    n = 200_000
    rows = [
        ("bytes(view[:1024])", lambda: bytes(view[:1024])),
        ("view[:1024].tobytes()", lambda: view[:1024].tobytes()),
        ("ctypes.string_at(addr, 1024)", lambda: ctypes.string_at(base, 1024)),
        ("(baseline: empty lambda)", lambda: None),
    ]
    print("| operation | us per call |\n|---|---:|")
    for label, fn in rows:
        print(f"| {label} | {timeit.timeit(fn, number=n) / n * 1e6:.3f} |")
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = server.getsockname()
    for adaptive in (False, True):
        batcher = MmsgSocket(server, adaptive=adaptive)
        for batch in (1, 16, 64):
            rounds = 2000 // batch + 20
            payload = bytes(64)
            total = 0.0
            for _ in range(rounds):
                for _ in range(batch):
                    client.sendto(payload, target)
                t = time.perf_counter()
                got = batcher.receive()
                total += time.perf_counter() - t
                assert len(got.payloads) == batch, (len(got.payloads), batch)
                batcher.receive()  # the wake-up's last, empty call (hot) or nothing
            print(
                f"| MmsgSocket.receive adaptive={adaptive} batch {batch} | "
                f"{total / (rounds * batch) * 1e6:.3f} per datagram |"
            )
    total = 0.0
    for _ in range(2000):
        client.sendto(bytes(64), target)
        t = time.perf_counter()
        server.recvfrom_into(buf)
        try:
            server.recvfrom_into(buf)
        except BlockingIOError:
            pass
        total += time.perf_counter() - t
    print(f"| recvfrom_into + the would-block one | {total / 2000 * 1e6:.3f} per datagram |")
    server.close()
    client.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="run one Python server (used by the benchmark)")
    srv.add_argument("kind", choices=KINDS)
    parser.add_argument(
        "--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[64, 1024]
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--micro", action="store_true", help="in-process costs only")
    args = parser.parse_args()
    if args.command == "serve":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.kind))
        return 0
    if args.micro:
        return micro()
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs: server and client share one", file=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
