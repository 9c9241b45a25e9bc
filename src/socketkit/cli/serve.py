"""``socketkit serve``: run services on TCP, UDP and Unix sockets."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from socketkit.cli.common import (
    add_loop_option,
    add_verbose_option,
    configure_logging,
    positive_float,
    positive_int,
    seconds_or_zero,
    silence_broken_output,
)
from socketkit.cli.render import print_table
from socketkit.endpoints import Endpoint, parse_endpoint, parse_port
from socketkit.errors import SocketkitError, UsageError, translate_os_error
from socketkit.logs import TermsFilter, configure_access_log, export_settings
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
from socketkit.runtime.activation import (
    InetdSocket,
    Notifier,
    adopt_sockets,
    inetd_socket,
    inherited_sockets,
)
from socketkit.runtime.loop import remove_signal_handlers
from socketkit.runtime.metrics import (
    PUBLISH_DIR_ENV,
    PUBLISH_LEAD_ENV,
    ServiceStatistics,
    StatisticsCollector,
    merge,
    published,
    start_metrics_server,
)
from socketkit.runtime.mmsg import ENV, IO_CHOICES, available, chosen_io
from socketkit.runtime.proxied import ProxyTrust
from socketkit.runtime.stats import ServerStatistics
from socketkit.runtime.workers import MAX_WORKERS, UNIX_ONLY, WorkerPool, combine_statistics

__all__ = ["register"]

_DEFAULTS = Limits()

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Each stops serve gracefully; a second one of any stops it at once.

SIGHUP too (its terminal closed): stopping with a summary and the Unix
socket file removed, where Python's default would kill it on the spot."""
_AGAIN = {
    signal.SIGINT: "Ctrl-C again to stop at once",
    signal.SIGTERM: "SIGTERM again to stop at once",
    signal.SIGHUP: "SIGHUP: the terminal closed; a second signal stops at once",
}

LIMIT_FLAGS = {
    "limit max_connections_per_source": "--max-per-source",
    "limit max_connections": "--max-connections",
    "limit backlog": "--backlog",
    "limit idle_timeout": "--idle-timeout",
    "limit read_chunk": "--chunk",
    "limit write_buffer_high": "--write-buffer",
    "limit shutdown_grace": "--grace",
    "limit udp_rate": "--udp-rate",
    "limit udp_burst": "--udp-burst",
    "limit udp_amplification": "--udp-amplification",
    "limit udp_allow_low_ports": "--udp-allow-low-ports",
    "limit proxy_from": "--proxy-from",
    "limit proxy_timeout": "--proxy-timeout",
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
  socketkit serve echo --proxy-protocol --access-log -   behind HAProxy send-proxy-v2
  socketkit serve --metrics 9100 --log-format json       Prometheus on 127.0.0.1:9100
  socketkit serve echo --inetd          from inetd/xinetd: standard input is the client

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

Started by systemd with sockets (LISTEN_FDS), serve adopts them and binds
nothing; it tells NOTIFY_SOCKET READY=1, STOPPING=1 and feeds WatchdogSec=.
More in docs/operations.md.

Ctrl-C, SIGTERM or SIGHUP stops accepting, gives open connections --grace
seconds to finish, then exits 0 with a one-line summary (connections still
open when the grace ran out are counted as cut) and removes its Unix socket
files; a second signal stops at once.
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
        "--backlog",
        type=positive_int,
        default=_DEFAULTS.backlog,
        help="connections the kernel completes and queues for accept() (listen's backlog; "
        f"default {_DEFAULTS.backlog}, capped by net.core.somaxconn)",
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
        type=seconds_or_zero,
        default=_DEFAULTS.shutdown_grace,
        metavar="SECONDS",
        help="time open connections get to finish at shutdown; 0 closes them at once "
        f"(default {_DEFAULTS.shutdown_grace:g})",
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
    udp.add_argument(
        "--udp-io",
        choices=IO_CHOICES,
        default=None,
        help="UDP system calls: batched (recvmmsg/sendmmsg, up to 64 datagrams per call), "
        "plain (recvfrom/sendto per datagram) or auto: batched where socketkit's native "
        f"helper is built; -v always uses plain (default: ${ENV} or auto)",
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
    ops = p.add_argument_group("running as infrastructure (docs/operations.md)")
    ops.add_argument(
        "--inetd",
        action="store_true",
        help="serve standard input as inetd passes it: one connection (stream, nowait) or "
        "the datagram socket (UDP, wait: until --idle-timeout without a datagram)",
    )
    ops.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="TCP clients come through a load balancer that sends a PROXY v1/v2 header "
        "(HAProxy send-proxy-v2): caps, logs and the access log use the real client; "
        "a connection without a valid header, or from outside --proxy-from, is closed",
    )
    ops.add_argument(
        "--proxy-from",
        nargs="+",
        default=list(_DEFAULTS.proxy_from),
        metavar="CIDR",
        help="balancers allowed to send the header (default: loopback, "
        f"{' '.join(_DEFAULTS.proxy_from)})",
    )
    ops.add_argument(
        "--proxy-timeout",
        type=positive_float,
        default=_DEFAULTS.proxy_timeout,
        metavar="SECONDS",
        help=f"time a connection has to send its whole header (default {_DEFAULTS.proxy_timeout:g})",
    )
    ops.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics over HTTP at HOST:PORT (a bare PORT means 127.0.0.1; "
        "port 0: any free port, printed at start-up)",
    )
    ops.add_argument(
        "--access-log",
        metavar="FILE|-",
        help="one line per connection (peer, service, transport, bytes each way, duration, "
        "how it ended) appended to FILE, or - for stderr; without -v",
    )
    ops.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="server and access logs as text lines (default; timestamps with -v or --timestamps) or one JSON "
        "object per line",
    )
    ops.add_argument(
        "--timestamps",
        action="store_true",
        help="start each server log line with the time, and name levels other than info "
        "(on with -v; json lines always carry both)",
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
        backlog=args.backlog,
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
        proxy_protocol=args.proxy_protocol,
        proxy_from=tuple(args.proxy_from),
        proxy_timeout=args.proxy_timeout,
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
    # -v narration is a transcript of socket calls: each line says when (issue 14).
    timestamps = args.timestamps or args.verbose > 0
    configure_logging(
        args.verbose,
        prefix="[worker 0] " if args.workers > 1 else "",
        fmt=args.log_format,
        timestamps=timestamps,
        terms=LIMIT_FLAGS,
    )
    _configure_access_log(args)
    try:
        ProxyTrust.parse(args.proxy_from)
    except ValueError as exc:
        raise UsageError(TermsFilter(LIMIT_FLAGS).rewrite(str(exc))) from None
    if args.workers > 1:
        export_settings(args.log_format, timestamps, _access_target(args))
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
    if args.udp_io is not None:
        # The environment carries the choice to --workers processes too.
        os.environ[ENV] = args.udp_io
    if chosen_io(None) == "batched" and not available():
        raise UsageError(
            "--udp-io batched needs socketkit's native helper, which this install lacks "
            "(Linux, and a C compiler at install time): use --udp-io plain or auto"
        )
    try:
        limits = _limits(args)
    except UsageError as exc:
        raise UsageError(TermsFilter(LIMIT_FLAGS).rewrite(str(exc))) from None
    if args.workers > MAX_WORKERS:
        raise UsageError(f"--workers {args.workers}: choose 1-{MAX_WORKERS}")
    if args.workers > 1 and args.loop == "rloop":
        # Measured with rloop 0.5: the lead's SIGTERM handler is lost once the
        # workers start (SIGTERM then kills it at once) and orphaned workers do
        # not notice their lead is gone. Refuse rather than leave processes behind.
        raise UsageError(
            "--loop rloop cannot run --workers (rloop 0.5 loses the lead's signal "
            "handlers): use --loop uvloop (the default) with --workers"
        )
    if args.workers > 1 and not (tcp or udp):
        raise UsageError(UNIX_ONLY)
    configured = _configured(services, args)
    if args.inetd:
        if args.proxy_protocol:
            # inetd hands us a connection it accepted itself; a balancer's PROXY
            # header belongs in front of a listener, not of inetd.
            raise UsageError(
                "--inetd and --proxy-protocol do not go together: put the balancer in "
                "front of serve's own listener (drop --inetd)"
            )
        return _run_inetd(args, configured, limits)
    # systemd (or systemd-socket-activate) bound our sockets: serve those, bind nothing.
    inherited = inherited_sockets()
    if inherited:
        if args.workers > 1:
            for found in inherited:
                found.sock.close()
            raise UsageError(
                "--workers with socket activation is not supported: systemd passes one socket "
                "per port, run one serve per socket unit (or bind with serve itself)"
            )
        server = Server(
            [],
            adopted=adopt_sockets(inherited, configured),
            limits=limits,
            narrate=args.verbose > 0,
        )
        return run(_serve(server, args), loop=args.loop)
    bindings = plan_bindings(
        configured,
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
        port_sharing="lead" if args.workers > 1 else "none",
    )
    if args.metrics is None or args.workers == 1:
        return run(_serve(server, args), loop=args.loop)
    # The workers publish their figures here; /metrics adds them up (runtime/metrics.py).
    with tempfile.TemporaryDirectory(prefix="socketkit-metrics-") as directory:
        os.environ[PUBLISH_DIR_ENV] = directory
        os.environ[PUBLISH_LEAD_ENV] = str(os.getpid())
        try:
            return run(_serve(server, args), loop=args.loop)
        finally:
            os.environ.pop(PUBLISH_DIR_ENV, None)
            os.environ.pop(PUBLISH_LEAD_ENV, None)


async def _serve(server: Server, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    endpoints = await server.start()
    failure: list[SocketkitError] = []
    notifier = Notifier()
    workers_dir = os.environ.get(PUBLISH_DIR_ENV) if args.workers > 1 else None
    try:
        stop_metrics = (
            _start_metrics(args.metrics, server, loop, workers_dir) if args.metrics else None
        )
    except BaseException:
        await server.shutdown(0)
        raise

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

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            # Act first, then say so: with stderr gone (`2>&1 | head`) the
            # line fails, and the stop must not fail with it.
            notifier.stopping("stopping: letting open connections finish")
            server.request_shutdown()
            pool.stop()
            _say(f"socketkit: shutting down ({_AGAIN[sig]})")
        else:
            server.request_shutdown(0)
            pool.stop(now=True)

    # Handlers before the workers start and before the table: whoever reads
    # it, or a service manager, may signal us at once.
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        try:
            await pool.start()
        except BaseException:
            await server.shutdown(0)
            raise
        if not signals:
            try:
                _announce(endpoints, loop_name(loop), pool)
            except (OSError, ValueError):
                # Nobody reads our output (`serve | head -1` already left): serve on.
                silence_broken_output()
            notifier.ready(_status(endpoints, pool.count))
        stop_watchdog = _keep_watchdog_fed(loop, notifier)
        try:
            await server.wait_closed()
        finally:
            stop_watchdog()
            if stop_metrics is not None:
                await loop.run_in_executor(None, stop_metrics)
            if not signals:
                notifier.stopping()
        pool.stop(now=signals > 1)
        await pool.wait_stopped(server.limits.shutdown_grace)
    finally:
        remove_signal_handlers(loop, STOP_SIGNALS)
    if failure:
        raise failure[0]
    stats: ServerStatistics = combine_statistics([server.statistics(), *pool.statistics()])
    workers = f" ({pool.count} workers)" if pool.count > 1 else ""
    print(f"socketkit: stopped{workers}: {stats.summary()}", flush=True)
    return 0


def _access_target(args: argparse.Namespace) -> str | None:
    target: str | None = args.access_log
    if target is None or target == "-":
        return target
    return os.path.abspath(target)


def _configure_access_log(args: argparse.Namespace) -> None:
    """Open the access log (or turn it off) before anything is served; a bad path is one line."""
    try:
        configure_access_log(_access_target(args), fmt=args.log_format)
    except OSError as exc:
        raise UsageError(
            f"--access-log {args.access_log}: cannot open it: {exc.strerror or exc}"
        ) from None


def _metrics_address(text: str) -> Endpoint:
    """``HOST:PORT``, ``[v6]:PORT`` or a bare ``PORT`` (loopback: safe by default)."""
    address = parse_endpoint(text, default_host="127.0.0.1")
    if address.is_unix or address.port is None:
        raise UsageError(f"bad --metrics {text!r}: expected HOST:PORT or PORT")
    return address


def _start_metrics(
    text: str, server: Server, loop: asyncio.AbstractEventLoop, workers: str | None
) -> Callable[[], None]:
    """Serve /metrics from prometheus-client's HTTP server thread; returns its stop().

    ``workers`` is the directory the ``--workers`` processes publish their
    figures to (``runtime/metrics.py``): each scrape adds them to this
    process's own, so the figures cover every process.
    """
    address = _metrics_address(text)

    async def gather() -> list[ServiceStatistics]:
        return [
            ServiceStatistics(e.service, e.transport, s) for e, s in server.endpoint_statistics()
        ]

    def snapshot() -> list[ServiceStatistics]:
        # Read on the loop's own thread: the counters are not shared across threads.
        own = asyncio.run_coroutine_threadsafe(gather(), loop).result(timeout=5.0)
        return merge([*own, *(published(workers) if workers else [])])

    try:
        bound, stop = start_metrics_server(
            address.host or "127.0.0.1", address.port or 0, StatisticsCollector(snapshot)
        )
    except OSError as exc:
        raise translate_os_error(exc, action="bind", where=f"{address} (--metrics)") from exc
    where = Endpoint(host=str(bound[0]), port=int(bound[1]))
    _say(f"socketkit: metrics at http://{where}/metrics")
    if not _is_loopback(str(bound[0])):
        _say(f"socketkit: warning: metrics reachable from other machines at {where}")
    return stop


def _run_inetd(args: argparse.Namespace, configured: list[ServiceInfo], limits: Limits) -> int:
    """``serve SERVICE --inetd``: standard input is the client (nowait) or the UDP socket (wait).

    Standard output and error are inetd's socket too: nothing may be
    written to them, or the client would read our logs. They are pointed at
    /dev/null once the socket is taken, so the socket closes when the
    service is done (and the access log needs ``--access-log FILE``).
    """
    if len(configured) != 1:
        raise UsageError("--inetd serves one service: name it (socketkit serve echo --inetd)")
    found = inetd_socket(0)
    if found is None:
        raise UsageError(
            "--inetd: standard input is not a connected stream socket or a datagram socket "
            "(run it from inetd or xinetd)"
        )
    info = configured[0]
    if (found.mode == "wait" and info.datagram is None) or (
        found.mode == "nowait" and info.stream is None
    ):
        found.sock.close()
        kind = "a datagram" if found.mode == "wait" else "a stream"
        raise UsageError(f"--inetd: {info.name} has no form for {kind} socket")
    _detach_stdio()
    server = Server([], limits=limits, narrate=args.verbose > 0)
    return run(_serve_inetd(server, info, found), loop=args.loop)


def _detach_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            if fd == 2 and not _is_socket(2):
                continue
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


async def _serve_inetd(server: Server, info: ServiceInfo, found: InetdSocket) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_shutdown)
    try:
        await server.serve_inetd(info, found)
        if found.mode == "nowait":
            while server.open_connections and not await server.wait_connections_closed(60.0):
                pass  # the connection's own idle timeout bounds this
        else:
            # inetd waits for us to exit before it listens again: leave once
            # a whole --idle-timeout passed without a datagram (0: never).
            idle = server.limits.idle_timeout
            seen = -1
            while (now := server.statistics().datagrams_received) != seen:
                seen = now
                try:
                    await asyncio.wait_for(asyncio.shield(server.wait_closed()), idle)
                    break  # a signal asked for the shutdown
                except TimeoutError:
                    continue
        await server.shutdown()
    finally:
        remove_signal_handlers(loop, (signal.SIGINT, signal.SIGTERM))
    return 0


def _status(endpoints: list[BoundEndpoint], processes: int) -> str:
    """The STATUS= line ``systemctl status`` shows: what is served, by how many processes."""
    served = ", ".join(f"{e.service}/{e.transport} {e.address}" for e in endpoints[:8])
    more = f" and {len(endpoints) - 8} more" if len(endpoints) > 8 else ""
    workers = f" ({processes} processes)" if processes > 1 else ""
    return f"serving{workers} {served}{more}"


def _keep_watchdog_fed(loop: asyncio.AbstractEventLoop, notifier: Notifier) -> Callable[[], None]:
    """Send WATCHDOG=1 every half WatchdogSec= from the event loop itself.

    Why the loop and not a thread: a loop that is stuck must stop the pings,
    so the service manager restarts a server that no longer serves.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return lambda: None
    handle: asyncio.TimerHandle | None = None

    def ping() -> None:
        nonlocal handle
        notifier.watchdog()
        handle = loop.call_later(interval, ping)

    ping()

    def stop() -> None:
        if handle is not None:
            handle.cancel()

    return stop


def _say(line: str) -> None:
    """A status line on stderr that may go unread (stderr closed) without stopping us."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _announce(endpoints: list[BoundEndpoint], loop: str, pool: WorkerPool) -> None:
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
    # From the bound addresses, not --host: sockets systemd passed us count too.
    public = [
        e for e in endpoints if e.transport != "unix" and not _is_loopback(e.address.host or "")
    ]
    if public:
        where = ", ".join(sorted({str(e.address.host) for e in public}))
        exposed = ", ".join(sorted({e.service for e in public}))
        print(
            f"socketkit: warning: listening on {where}, reachable from other machines: {exposed}",
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
