"""``socketkit serve``: run services on TCP, UDP and Unix sockets."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from typing import Any

from socketkit.cli.common import (
    add_loop_option,
    add_verbose_option,
    configure_logging,
    positive_float,
    positive_int,
)
from socketkit.cli.render import print_table
from socketkit.endpoints import parse_port
from socketkit.errors import UsageError
from socketkit.protocols import DEFAULT_PORT_BASE, get_service, service_names
from socketkit.runtime import Limits, Server, loop_name, plan_bindings, run

__all__ = ["register"]

_DEFAULTS = Limits()

EXAMPLES = """\
examples:
  socketkit serve                       every service on 127.0.0.1, ports 10000 + well-known
  socketkit serve echo -v --chunk 16    the lab's echo server, narrating each 16-byte chunk
  socketkit serve echo --port 0         any free port (printed at start-up)
  socketkit serve echo --host ::        dual stack: IPv6 and IPv4 on every interface
  socketkit serve echo --unix /tmp/echo.sock --no-tcp --no-udp

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
        help="also serve on a Unix stream socket at PATH (a directory for several services)",
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
        help=f"open connections in total (default {_DEFAULTS.max_connections})",
    )
    limits.add_argument(
        "--max-per-source",
        type=positive_int,
        default=_DEFAULTS.max_connections_per_source,
        help=f"open connections from one address (default {_DEFAULTS.max_connections_per_source})",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
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
    add_verbose_option(p, "each connection and chunk")
    add_loop_option(p)
    p.set_defaults(handler=_run)


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
    )


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
    configure_logging(args.verbose)
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
    bindings = plan_bindings(
        services,
        host=args.host,
        port=single,
        port_base=args.port_base,
        ports=per,
        tcp=bool(tcp),
        udp=bool(udp),
        unix=args.unix,
    )
    server = Server(bindings, limits=_limits(args), narrate=args.verbose > 0)
    return run(_serve(server, args.host), loop=args.loop)


async def _serve(server: Server, host: str) -> int:
    loop = asyncio.get_running_loop()
    endpoints = await server.start()

    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            print(
                "socketkit: shutting down (Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            server.request_shutdown()
        else:
            server.request_shutdown(0)

    # Handlers first: whoever reads the table may signal us at once.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        print_table(
            ["service", "transport", "address", "family"],
            [(e.service, e.transport, e.address, e.family) for e in endpoints],
            title=f"socketkit serving on {loop_name(loop)} (Ctrl-C to stop)",
        )
        if not _is_loopback(host) and any(e.transport != "unix" for e in endpoints):
            exposed = ", ".join(sorted({e.service for e in endpoints if e.transport != "unix"}))
            print(
                f"socketkit: warning: listening on {host}, reachable from other machines: {exposed}",
                file=sys.stderr,
            )
        first = endpoints[0]
        if first.transport == "unix":
            print(f"try: socketkit echo hello --unix {first.address.path}", file=sys.stderr)
        elif first.service == "echo":
            print(f"try: socketkit echo hello --to {first.address}", file=sys.stderr)
        sys.stdout.flush()
        await server.wait_closed()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print(f"socketkit: stopped: {server.statistics().summary()}", flush=True)
    return 0
