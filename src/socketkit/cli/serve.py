"""``socketkit serve``: run services on TCP, UDP and Unix sockets."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import os
import signal
import sys
from typing import Any

from socketkit.cli.common import (
    add_loop_option,
    add_verbose_option,
    configure_logging,
    positive_float,
    positive_int,
    seconds_or_zero,
)
from socketkit.cli.render import print_table
from socketkit.endpoints import Endpoint, parse_port
from socketkit.errors import SocketkitError, UsageError
from socketkit.logs import TermsFilter
from socketkit.protocols import (
    DEFAULT_PORT_BASE,
    ServiceInfo,
    ServiceOptions,
    get_service,
    service_names,
)
from socketkit.protocols.qotd import MAX_QUOTE, load_quotes_file
from socketkit.protocols.sum import MAX_LINE
from socketkit.runtime import BoundEndpoint, Limits, Server, loop_name, plan_bindings, run
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.stats import ServerStatistics
from socketkit.runtime.workers import MAX_WORKERS, UNIX_ONLY, WorkerPool, combine_statistics

__all__ = ["register"]

_DEFAULTS = Limits()

LIMIT_FLAGS = {
    "limit max_connections_per_source": "--max-per-source",
    "limit max_connections": "--max-connections",
    "limit idle_timeout": "--idle-timeout",
    "limit read_chunk": "--chunk",
    "limit write_buffer_high": "--write-buffer",
    "limit shutdown_grace": "--grace",
    "limit udp_rate": "--udp-rate",
    "limit udp_burst": "--udp-burst",
    "limit udp_amplification": "--udp-amplification",
    "limit udp_allow_low_ports": "--udp-allow-low-ports",
}
"""The runtime's words for its limits (``Limits`` fields) and the flags that set them."""

EXAMPLES = """\
examples:
  socketkit serve                       every service on 127.0.0.1, ports 10000 + well-known
  socketkit serve echo -v --chunk 16    the lab's echo server, narrating each 16-byte chunk
  socketkit serve echo --port 0         any free port (printed at start-up)
  socketkit serve echo --host ::        dual stack: IPv6 and IPv4 on every interface
  socketkit serve echo --unix /tmp/echo.sock --no-tcp --no-udp
  socketkit serve qotd --quotes my-quotes.txt   your own quotes, one per paragraph
  socketkit serve sum --port 0 --max-line 1024  the homework's server on a free port
  socketkit serve --host :: --udp-amplification 2   expose UDP, replies up to 2x the request
  socketkit serve echo --workers 2      two processes share each port (SO_REUSEPORT)

UDP safety (why: docs/services.md): datagrams from ports 0, 7, 9, 13, 17, 19,
37, our own service ports and (unless --udp-allow-low-ports) any port below
1024 are ignored, as are broadcast and multicast sources; each source address
gets --udp-rate replies per second; a reply to a non-loopback source carries
at most --udp-amplification times the request's bytes (chargen and qotd send
what fits). Loopback sources get full replies unless --udp-guard-loopback.

--workers N runs N processes that share each TCP and UDP port through
SO_REUSEPORT (Linux); the kernel spreads clients over them by address.
Limits apply per worker; a Unix socket is served by the first process only;
a worker that dies is replaced (one stopped with SIGTERM is not).

Ctrl-C or SIGTERM stops accepting, gives open connections --grace seconds to
finish, then exits 0 with a one-line summary; a second Ctrl-C stops at once.
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the small services (echo...) on TCP, UDP and Unix sockets",
        description="Run services on loopback (unless --host says otherwise), each at "
        f"port base ({DEFAULT_PORT_BASE}) + its well-known port.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"services to run (default: all): {', '.join(service_names())}",
    )
    where = p.add_argument_group("where to listen")
    where.add_argument(
        "--host",
        default="127.0.0.1",
        help="address or name to bind (default 127.0.0.1; :: for dual stack, 0.0.0.0 for all IPv4)",
    )
    where.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="PORT|NAME=PORT",
        help="port for a single service (0: any free port), or NAME=PORT per service; repeatable",
    )
    where.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help=f"each service listens on base + its well-known port (default {DEFAULT_PORT_BASE}; "
        "0 gives the real, privileged ports)",
    )
    where.add_argument(
        "--tcp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve TCP (default: TCP and UDP unless one is chosen)",
    )
    where.add_argument(
        "--udp", action=argparse.BooleanOptionalAction, default=None, help="serve UDP"
    )
    where.add_argument(
        "--unix",
        metavar="PATH",
        help="also serve on a Unix stream socket at PATH (for several services: an existing "
        "directory, one NAME.sock each)",
    )
    limits = p.add_argument_group("limits (all on by default)")
    limits.add_argument(
        "--chunk",
        type=positive_int,
        default=_DEFAULTS.read_chunk,
        help=f"bytes per recv() (default {_DEFAULTS.read_chunk}; the lab used 16)",
    )
    limits.add_argument(
        "--max-connections",
        type=positive_int,
        default=_DEFAULTS.max_connections,
        help=f"open connections in total, all services together (default {_DEFAULTS.max_connections})",
    )
    limits.add_argument(
        "--max-per-source",
        type=positive_int,
        default=_DEFAULTS.max_connections_per_source,
        help="open connections from one address, all services together "
        f"(default {_DEFAULTS.max_connections_per_source})",
    )
    limits.add_argument(
        "--idle-timeout",
        type=seconds_or_zero,
        default=_DEFAULTS.idle_timeout,
        metavar="SECONDS",
        help=f"close a connection silent this long (default {_DEFAULTS.idle_timeout:g}; 0: never)",
    )
    limits.add_argument(
        "--write-buffer",
        type=positive_int,
        default=_DEFAULTS.write_buffer_high,
        metavar="BYTES",
        help="stop reading from a client while this much output waits for it "
        f"(default {_DEFAULTS.write_buffer_high})",
    )
    limits.add_argument(
        "--grace",
        type=positive_float,
        default=_DEFAULTS.shutdown_grace,
        metavar="SECONDS",
        help=f"time open connections get to finish at shutdown (default {_DEFAULTS.shutdown_grace:g})",
    )
    limits.add_argument(
        "--max-line",
        type=positive_int,
        default=MAX_LINE,
        metavar="BYTES",
        help=f"sum: longest request line; a longer one gets 'ERR line too long' and the "
        f"connection closes (default {MAX_LINE})",
    )
    udp = p.add_argument_group("UDP guards (against loops, reflection and amplification)")
    udp.add_argument(
        "--udp-rate",
        type=_number_or_off,
        default=_DEFAULTS.udp_rate,
        metavar="N|off",
        help=f"replies per second to one source address (default {_DEFAULTS.udp_rate:g})",
    )
    udp.add_argument(
        "--udp-burst",
        type=positive_int,
        default=_DEFAULTS.udp_burst,
        metavar="N",
        help=f"replies one source may draw at once before the rate applies "
        f"(default {_DEFAULTS.udp_burst})",
    )
    udp.add_argument(
        "--udp-amplification",
        type=_multiple_or_off,
        default=_DEFAULTS.udp_amplification,
        metavar="X|off",
        help="a reply to a non-loopback source carries at most X times the request's bytes "
        f"(default {_DEFAULTS.udp_amplification:g}; off: no budget)",
    )
    udp.add_argument(
        "--udp-allow-low-ports",
        action="store_true",
        help="answer sources on ports 1-1023 (the small services' own ports stay refused)",
    )
    udp.add_argument(
        "--udp-guard-loopback",
        action="store_true",
        help="apply the rate limit and the budget to loopback sources too (default: exempt)",
    )
    p.add_argument(
        "--quotes",
        metavar="FILE",
        help=f"qotd: quotes from FILE, one per paragraph, each under {MAX_QUOTE} bytes "
        "(checked at start-up; default: the embedded collection)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help=f"processes sharing each TCP and UDP port through SO_REUSEPORT (default 1, "
        f"at most {MAX_WORKERS}; for more than one core's worth of clients)",
    )
    add_verbose_option(p, "each connection and chunk")
    add_loop_option(p)
    p.set_defaults(handler=_run)


def _number_or_off(text: str) -> float | None:
    if text.strip().lower() in ("off", "none"):
        return None
    return positive_float(text)


def _multiple_or_off(text: str) -> float | None:
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a multiple >= 0 or 'off', got {text}")
    return value


def _limits(args: argparse.Namespace) -> Limits:
    idle = None if args.idle_timeout is not None and args.idle_timeout <= 0 else args.idle_timeout
    return Limits(
        max_connections=args.max_connections,
        max_connections_per_source=args.max_per_source,
        idle_timeout=idle,
        read_chunk=args.chunk,
        write_buffer_high=args.write_buffer,
        write_buffer_low=args.write_buffer // 4,
        shutdown_grace=args.grace,
        udp_rate=args.udp_rate,
        udp_burst=args.udp_burst,
        udp_amplification=args.udp_amplification,
        udp_loopback_exempt=not args.udp_guard_loopback,
        udp_allow_low_ports=args.udp_allow_low_ports,
    )


def _configured(names: list[str], args: argparse.Namespace) -> list[ServiceInfo]:
    """The services with the options given on the command line (quotes, line limit)."""
    options = ServiceOptions(
        quotes=load_quotes_file(args.quotes) if args.quotes else None,
        max_line=args.max_line,
    )
    return [get_service(name).configured(options) for name in names]


def _ports(values: list[str], services: list[str]) -> tuple[int | None, dict[str, int]]:
    single: int | None = None
    per: dict[str, int] = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        if sep:
            get_service(name)
            per[name] = parse_port(number)
        else:
            single = parse_port(value)
    if single is not None and len(services) != 1:
        raise UsageError(
            "--port N serves one service; for several give NAME=PORT or use --port-base"
        )
    return single, per


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run(args: argparse.Namespace) -> int:
    configure_logging(
        args.verbose, prefix="[worker 0] " if args.workers > 1 else "", terms=LIMIT_FLAGS
    )
    services = args.services or service_names()
    if not 0 <= args.port_base <= 65535:
        raise UsageError(f"bad --port-base {args.port_base}: choose 0-65535")
    single, per = _ports(args.port, services)
    tcp, udp = args.tcp, args.udp
    if tcp is None and udp is None:
        tcp = udp = True
    elif tcp is None:
        tcp = not udp
    elif udp is None:
        udp = not tcp
    try:
        limits = _limits(args)
    except UsageError as exc:
        raise UsageError(TermsFilter(LIMIT_FLAGS).rewrite(str(exc))) from None
    if args.workers > MAX_WORKERS:
        raise UsageError(f"--workers {args.workers}: choose 1-{MAX_WORKERS}")
    if args.workers > 1 and not (tcp or udp):
        raise UsageError(UNIX_ONLY)
    bindings = plan_bindings(
        _configured(services, args),
        host=args.host,
        port=single,
        port_base=args.port_base,
        ports=per,
        tcp=bool(tcp),
        udp=bool(udp),
        unix=args.unix,
    )
    server = Server(
        bindings,
        limits=limits,
        narrate=args.verbose > 0,
        udp_policy=UdpGuard(limits),
        port_sharing="lead" if args.workers > 1 else "none",
    )
    return run(_serve(server, args), loop=args.loop)


async def _serve(server: Server, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    endpoints = await server.start()
    failure: list[SocketkitError] = []

    def on_failure(exc: SocketkitError) -> None:
        failure.append(exc)
        server.request_shutdown()

    try:
        pool = WorkerPool(
            server,
            args.workers,
            loop=args.loop,
            verbosity=args.verbose,
            terms=LIMIT_FLAGS,
            on_failure=on_failure,
        )
    except BaseException:
        await server.shutdown(0)
        raise

    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            # Act first, then say so: with stderr gone (`2>&1 | head`) the
            # line fails, and the stop must not fail with it.
            server.request_shutdown()
            pool.stop()
            _say("socketkit: shutting down (Ctrl-C again to stop at once)")
        else:
            server.request_shutdown(0)
            pool.stop(now=True)

    # Handlers before the workers start and before the table: whoever reads
    # it, or a service manager, may signal us at once.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        try:
            await pool.start()
        except BaseException:
            await server.shutdown(0)
            raise
        if not signals:
            _announce(endpoints, args.host, loop_name(loop), pool)
        await server.wait_closed()
        pool.stop(now=signals > 1)
        await pool.wait_stopped(server.limits.shutdown_grace)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if failure:
        raise failure[0]
    stats: ServerStatistics = combine_statistics([server.statistics(), *pool.statistics()])
    workers = f" ({pool.count} workers)" if pool.count > 1 else ""
    print(f"socketkit: stopped{workers}: {stats.summary()}", flush=True)
    return 0


def _say(line: str) -> None:
    """A status line on stderr that may go unread (stderr closed) without stopping us."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _announce(endpoints: list[BoundEndpoint], host: str, loop: str, pool: WorkerPool) -> None:
    workers = f", {pool.count} processes sharing each TCP/UDP port" if pool.count > 1 else ""
    print_table(
        ["service", "transport", "address", "family"],
        [(e.service, e.transport, e.address, e.family) for e in endpoints],
        title=f"socketkit serving on {loop}{workers} (Ctrl-C to stop)",
    )
    sys.stdout.flush()
    if pool.count > 1:
        pids = ", ".join(f"{i} pid {pid}" for i, pid in enumerate([os.getpid(), *pool.pids]))
        print(f"socketkit: workers: {pids}", file=sys.stderr)
    if not _is_loopback(host) and any(e.transport != "unix" for e in endpoints):
        exposed = ", ".join(sorted({e.service for e in endpoints if e.transport != "unix"}))
        print(
            f"socketkit: warning: listening on {host}, reachable from other machines: {exposed}",
            file=sys.stderr,
        )
    first = endpoints[0]
    info = get_service(first.service)
    command = f"{info.name} {info.try_args}".rstrip()
    if first.transport == "unix" and first.service == "echo":
        print(f"try: socketkit echo hello --unix {first.address.path}", file=sys.stderr)
    else:
        udp = " --udp" if first.transport == "udp" else ""
        print(f"try: socketkit {command} --to {_reachable(first.address)}{udp}", file=sys.stderr)


_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _reachable(address: Endpoint) -> Endpoint:
    """Where a client on this machine connects: a wildcard bind means loopback will do."""
    loopback = _WILDCARD_TO_LOOPBACK.get(address.host or "")
    return dataclasses.replace(address, host=loopback) if loopback else address
