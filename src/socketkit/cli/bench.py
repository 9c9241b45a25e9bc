"""``socketkit bench``: load an echo server, verify every byte, report rates and latency."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import re
import sys
from typing import Any

from socketkit.cli.common import add_loop_option, positive_float, positive_int
from socketkit.cli.render import print_json
from socketkit.endpoints import Endpoint, parse_endpoint
from socketkit.errors import ConnectionLost, EchoMismatch, UsageError
from socketkit.load import MODES, BenchConfig, BenchSummary, Histogram, Progress, run_bench
from socketkit.load.config import default_workers
from socketkit.load.intervals import Interval, IntervalMeter
from socketkit.load.runner import loop_kind
from socketkit.load.stats import percentile_curve

__all__ = ["as_json", "header", "interval_line", "parse_size", "register", "summary_text"]

EXAMPLES = """\
examples:
  socketkit serve echo --port 0 &               then use the port it prints:
  socketkit bench 127.0.0.1:10007               rr, 16 connections x 64 B, 5 s after 1 s warm-up
  socketkit bench 127.0.0.1:10007 --conns 256 --size 1K --duration 10
  socketkit bench 127.0.0.1:10007 --mode stream --size 64K --conns 16
  socketkit bench 127.0.0.1:10007 --mode udp --size 1K --timeout 0.5
  socketkit bench 127.0.0.1:10007 --rate 20000 --duration 30   open loop: fixed request rate
  socketkit bench --unix /tmp/echo.sock --requests 100000 --json
  socketkit bench 127.0.0.1:10007 -i 1 --duration 10   a report every second, as iperf3 -i
  socketkit bench 127.0.0.1:10007 --plot latency.png   (needs: pip install 'socketkit[plot]')

Output: a header line (mode, connections, size, duration, target), then the
verified requests, requests/s, throughput in MiB/s (2**20 bytes/s of echoed
payload, one direction; every socketkit command uses MiB/s), latency in
microseconds as p50 p90 p99 p999 max (the same names as in --json), and the
failures. With --json the same names appear as keys.

Modes: rr sends a message on each connection and waits for all of it to come
back before the next; stream keeps --window bytes in flight per connection;
udp sends datagrams and counts a reply later than --timeout as lost.
Every echoed byte is checked against what was sent. Latency is measured
from the intended send time (with --rate, the slot in the fixed schedule),
so a stalling server is charged for every request it delays.
Exit 0 when every echo matched, 1 on any mismatch, 74 when connections failed
or answers never came (UDP losses are reported, not failures).
"""

_SIZE = re.compile(r"^\s*(\d+)\s*([kKmM]?)(i?[bB])?\s*$")


def parse_size(text: str) -> int:
    """``64``, ``1K``, ``16KiB``, ``1M``: bytes (K = 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size such as 64, 1K or 64KiB, got {text!r}")
    value = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a size of at least 1 byte, got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="load an echo server: requests/s, MiB/s, latency percentiles, verified payloads",
        description="Echo load generator: many connections over several processes, every "
        "echoed byte verified, latency percentiles from exactly merged histograms.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target", nargs="?", metavar="HOST:PORT", help="the echo server ([v6]:PORT for IPv6)"
    )
    p.add_argument("--unix", metavar="PATH", help="load a Unix stream socket at PATH instead")
    p.add_argument("--mode", choices=MODES, default="rr", help="rr, stream or udp (default rr)")
    p.add_argument(
        "--conns", type=positive_int, default=16, metavar="N", help="connections (default 16)"
    )
    p.add_argument(
        "--size", type=parse_size, default=64, metavar="BYTES", help="message size (default 64)"
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--duration",
        type=positive_float,
        metavar="SECONDS",
        help="measure this long (default 5)",
    )
    length.add_argument(
        "--requests", type=positive_int, metavar="N", help="measure this many requests instead"
    )
    p.add_argument(
        "--warmup",
        type=_non_negative,
        default=1.0,
        metavar="SECONDS",
        help="traffic before measuring, checked but not counted (default 1)",
    )
    p.add_argument(
        "--rate",
        type=positive_float,
        metavar="PER_SECOND",
        help="open loop: this many requests per second in total, on a fixed schedule",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help=(
            "load processes, each with its own event loop (default: one per core, here "
            f"{default_workers()}; leave a core to a server on this machine)"
        ),
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="udp: a reply later than this is lost; tcp: wait this long for the last answers (default 2)",
    )
    p.add_argument(
        "--window",
        type=parse_size,
        default=256 * 1024,
        metavar="BYTES",
        help="stream mode: bytes in flight per connection (default 256K)",
    )
    p.add_argument(
        "-i",
        "--interval",
        type=positive_float,
        metavar="SECONDS",
        help="print requests/s and MiB/s every SECONDS while running (as iperf3 -i)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--plot", metavar="FILE.png", help="write the latency distribution (needs matplotlib)"
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no live progress bar, even on a terminal"
    )
    add_loop_option(p)
    p.set_defaults(handler=_run)


def _target(args: argparse.Namespace) -> Endpoint:
    if args.unix and args.target:
        raise UsageError("give HOST:PORT or --unix PATH, not both")
    if args.unix:
        return Endpoint(path=args.unix)
    if not args.target:
        raise UsageError("which server? give HOST:PORT (e.g. 127.0.0.1:10007) or --unix PATH")
    return parse_endpoint(args.target)


def _config(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        target=_target(args),
        mode=args.mode,
        connections=args.conns,
        size=args.size,
        duration=None if args.requests else (args.duration or 5.0),
        requests=args.requests,
        warmup=args.warmup,
        rate=args.rate,
        workers=args.workers or default_workers(),
        timeout=args.timeout,
        window=args.window,
        loop=args.loop,
    )


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'socketkit[plot]'")
    loop = loop_kind(config.loop)
    if not args.json:
        print(header(config, loop), flush=True)
    meter = IntervalMeter(args.interval, config.size, config.warmup) if args.interval else None
    if meter is not None:
        summary = _run_with_intervals(config, meter, show=not args.json)
    elif not args.json and not args.no_progress and sys.stderr.isatty():
        summary = _run_with_progress(config)
    else:
        summary = run_bench(config)
    if args.json:
        print_json(as_json(summary, meter.intervals if meter else None))
    else:
        print(summary_text(summary))
    if args.plot:
        _plot(summary, args.plot)
        if not args.json:
            print(f"latency distribution written to {args.plot}", file=sys.stderr)
    return _verdict(summary)


def header(config: BenchConfig, loop: str) -> str:
    """What is measured, before anything is: mode, connections, size, duration, target."""
    length = (
        f"{config.duration:g} s" if config.duration is not None else f"{config.requests} requests"
    )
    warmup = f" after {config.warmup:g} s warm-up" if config.warmup else ""
    workers = config.effective_workers
    pace = f"open loop at {config.rate:,.0f} requests/s" if config.rate else "closed loop"
    extra = f", window {config.window} B" if config.mode == "stream" else ""
    extra += f", loss timeout {config.timeout:g} s" if config.mode == "udp" else ""
    return (
        f"socketkit bench: mode {config.mode}, {config.connections} connections x "
        f"{config.size} B, {length}{warmup}, target {config.target} "
        f"({workers} worker{'s' if workers != 1 else ''} on {loop}, {pace}{extra})"
    )


_INTERVAL_HEAD = f"{'interval':>15}  {'requests':>10}  {'requests/s':>11}  {'MiB/s':>9}"


def interval_line(i: Interval) -> str:
    span = f"{i.start:6.2f}-{i.end:6.2f} s"
    note = "  (warm-up)" if i.warmup else ""
    return (
        f"{span:>15}  {i.requests:>10,}  {i.requests_per_second:>11,.0f}  "
        f"{i.mib_per_second:>9.2f}{note}"
    )


def _run_with_intervals(config: BenchConfig, meter: IntervalMeter, *, show: bool) -> BenchSummary:
    if show:
        print(_INTERVAL_HEAD, flush=True)
    last = [0.0, 0]

    def update(p: Progress) -> None:
        last[:] = [p.elapsed, p.answered]
        closed = meter.sample(p.elapsed, p.answered)
        if closed is not None and show:
            print(interval_line(closed), flush=True)

    # Fine samples: an interval closes at the first one past its boundary.
    summary = run_bench(config, on_progress=update, progress_every=meter.every / 50)
    closed = meter.finish(float(last[0]), int(last[1]))
    if closed is not None and show:
        print(interval_line(closed), flush=True)
    return summary


def _verdict(summary: BenchSummary) -> int:
    if summary.mismatches:
        print(
            f"socketkit: {summary.mismatches} echoes differed from what was sent - "
            "the server corrupts, drops or reorders data",
            file=sys.stderr,
        )
        return EchoMismatch.exit_code
    if summary.errors or summary.timeouts:
        print(
            f"socketkit: {summary.errors} connection errors and {summary.timeouts} unanswered "
            "requests - the server refused, reset or stalled connections",
            file=sys.stderr,
        )
        return ConnectionLost.exit_code
    return 0


def _run_with_progress(config: BenchConfig) -> BenchSummary:
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    console = Console(stderr=True)
    planned = None if config.duration is None else config.warmup + config.duration
    columns = [
        TextColumn("[bold]bench[/bold] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with RichProgress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"{config.mode} {config.target}", total=planned, status="connecting")
        last: list[tuple[float, int]] = []

        def update(p: Progress) -> None:
            last.append((p.elapsed, p.answered))
            del last[:-6]
            first_t, first_n = last[0]
            now_rate = (p.answered - first_n) / (p.elapsed - first_t) if p.elapsed > first_t else 0
            phase = "warm-up" if p.elapsed < config.warmup else "measuring"
            status = (
                f"{phase}  {now_rate:,.0f} req/s  {p.answered:,} answered  "
                f"{p.errors} errors  {p.mismatches} mismatches"
            )
            if config.mode == "udp":
                status += f"  {p.losses} lost"
            done = min(p.elapsed, planned) if planned is not None else None
            bar.update(task, completed=done, status=status)

        return run_bench(config, on_progress=update)


def as_json(summary: BenchSummary, intervals: list[Interval] | None = None) -> dict[str, Any]:
    """The summary's fields under the same names the text uses (``p999`` in both)."""
    data = {
        f.name: getattr(summary, f.name)
        for f in dataclasses.fields(summary)
        if f.name != "histogram"
    }
    data["latency_us"] = dataclasses.asdict(summary.latency_us)
    data["ok"] = summary.ok
    data["loss_ratio"] = summary.loss_ratio
    if intervals is not None:
        data["intervals"] = [dataclasses.asdict(i) for i in intervals]
    return data


def summary_text(s: BenchSummary) -> str:
    """The result for people: one labelled line per kind of figure, units stated once.

    Percentiles are spelled as in the JSON (``p50 p90 p99 p999 max``);
    throughput is echoed payload in one direction, in MiB/s (2**20 bytes).
    """
    lat = s.latency_us
    lines = [
        f"requests     {s.requests:,} verified in {s.seconds:.2f} s ({s.answered:,} answered "
        "with warm-up and drain)",
        f"rate         {s.requests_per_second:,.0f} requests/s, {s.mib_per_second:,.2f} MiB/s",
        f"latency µs   p50 {lat.p50:,.1f}  p90 {lat.p90:,.1f}  p99 {lat.p99:,.1f}  "
        f"p999 {lat.p999:,.1f}  max {lat.max:,.1f}",
        f"failures     {s.errors} errors, {s.mismatches} mismatches, {s.timeouts} timeouts",
    ]
    if s.mode == "udp":
        lines.append(f"udp          {s.losses} lost ({s.loss_ratio:.2%}), {s.late} late")
    return "\n".join(lines)


def _plot(summary: BenchSummary, path: str) -> None:
    """An HDR-style percentile plot: where the tail is, at a glance."""
    # Imported by name: matplotlib is an optional extra without type stubs here.
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")

    curve = percentile_curve(Histogram.from_dict(summary.histogram))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        if curve:
            # x = 1 / (1 - p): each "nine" of the tail gets the same width.
            body = [(p, v) for p, v in curve if p < 100.0]
            xs = [1.0 / (1.0 - p / 100.0) for p, _ in body]
            ys = [v for _, v in body]
            xs.append((xs[-1] if xs else 1.0) * 2)  # the maximum, just past the last nine
            ys.append(curve[-1][1])
            ax.plot(xs, ys, drawstyle="steps-post")
            ax.set_xscale("log")
            ticks = [t for t in (2, 10, 100, 1000, 10000, 100000, 1000000) if t <= max(xs)]
            labels = {2: "50%", 10: "90%", 100: "99%", 1000: "99.9%"}
            ax.set_xticks(ticks, [labels.get(t, f"{100 - 100 / t:g}%") for t in ticks])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (µs)")
        ax.set_title(
            f"{summary.mode} {summary.target}: {summary.connections} conns x {summary.size} B, "
            f"{summary.requests_per_second:,.0f} req/s"
        )
        ax.grid(True, which="both", alpha=0.3)
        try:
            fig.savefig(path, dpi=100)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)
