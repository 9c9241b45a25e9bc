"""``socketkit probe``: a conformance and security audit of a small-services server.

The checks live in ``socketkit.probe`` as data and return result rows; this
module parses the arguments, runs them on the chosen event loop and renders
the rows: a table on a terminal, tab-separated lines when piped, ``--json``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from socketkit.cli.common import (
    add_loop_option,
    add_verbose_option,
    configure_logging,
    positive_float,
    positive_int,
)
from socketkit.cli.render import is_terminal, print_json, print_table
from socketkit.endpoints import Endpoint, parse_endpoint, parse_port
from socketkit.errors import UsageError
from socketkit.probe import (
    EXIT_FAIL,
    SERVICES,
    CheckResult,
    ProbeOptions,
    Target,
    Verdict,
    default_ports,
    exit_status,
    probe_host,
    probe_target,
    scan_targets,
)
from socketkit.probe.model import MAX_BURST, MAX_CONNECTIONS, MAX_RATE
from socketkit.protocols import get_service
from socketkit.runtime import run

__all__ = ["register"]

EXAMPLES = f"""\
examples:
  socketkit probe 127.0.0.1:10007 --service echo          TCP checks of one echo server
  socketkit probe 127.0.0.1:10019 --service chargen --udp  UDP: conformance + security audit
  socketkit probe [::1]:10100 --service sum --gentle       no robustness checks
  socketkit probe --unix /tmp/echo.sock --service echo
  socketkit probe --host-scan 127.0.0.1 --port-base 10000  every service, TCP and UDP
  socketkit probe --host-scan 127.0.0.1 --port echo=7007 --port sum=7100 --service echo \\
      --service sum                                       chosen services at chosen ports
  socketkit probe --host-scan 127.0.0.1 --json | jq '.results[] | select(.verdict=="FAIL")'

verdicts:
  PASS  the server does what the RFC (or our sum specification) says
  FAIL  it does not (or it stopped serving under the robustness checks)
  WARN  a deviation from an RFC's "should", or a risk: the line says what an attacker
        could do (amplification, loops, no rate limit)
  SKIP  the check could not run here (say, binding source port 7 needs root)

exit status:
    0  no check failed (WARN lines allowed; --strict makes them count as failures)
  {EXIT_FAIL:>3}  at least one FAIL (or WARN with --strict)
   69  connection refused / no UDP service (for --host-scan: nothing answered at all)
   68  the name does not resolve; 72 unreachable; 75 timed out; 64 usage

bounds: every wait is --timeout; the storm and idle checks open --connections
(at most {MAX_CONNECTIONS}); the rate-limit check sends --burst datagrams (at most {MAX_BURST})
at --rate per second (at most {MAX_RATE:g}); --gentle leaves out the robustness checks
and the burst. Nothing is sent to an address you did not name.
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "probe",
        help="audit a small-services server: RFC conformance, robustness, UDP security",
        description="Run conformance, robustness and UDP security checks against a server of "
        "echo, discard, daytime, qotd, chargen, time or sum (RFC 862-868, our sum protocol).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target", nargs="?", metavar="HOST:PORT", help="the server: HOST:PORT or [v6]:PORT"
    )
    p.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        metavar="NAME",
        help=f"the service there ({', '.join(SERVICES)}); with --host-scan: repeat to "
        "choose which to scan (default: all)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--udp", action="store_true", help="probe the UDP service at HOST:PORT")
    how.add_argument("--unix", metavar="PATH", help="probe a Unix stream socket at PATH")
    scan = p.add_argument_group("host scan")
    scan.add_argument(
        "--host-scan",
        metavar="HOST",
        help="probe every service on HOST, TCP and UDP, and print a summary",
    )
    scan.add_argument(
        "--port-base",
        type=lambda t: parse_port(t, what="port base"),
        default=0,
        metavar="B",
        help="services at B + well-known port, as serve --port-base (default 0: the "
        "well-known ports; sum at 10100)",
    )
    scan.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="SERVICE=PORT",
        help="one service's port, overriding --port-base (repeatable)",
    )
    bounds = p.add_argument_group("bounds")
    bounds.add_argument(
        "--gentle",
        action="store_true",
        help="leave out the robustness checks and the rate-limit burst",
    )
    bounds.add_argument(
        "--timeout",
        type=positive_float,
        default=3.0,
        metavar="SECONDS",
        help="the longest any one wait may take (default 3)",
    )
    bounds.add_argument(
        "--connections",
        type=positive_int,
        default=16,
        metavar="N",
        help=f"connections opened by the storm and idle checks (default 16, at most "
        f"{MAX_CONNECTIONS})",
    )
    bounds.add_argument(
        "--burst",
        type=positive_int,
        default=200,
        metavar="N",
        help=f"datagrams the rate-limit check sends (default 200, at most {MAX_BURST})",
    )
    bounds.add_argument(
        "--rate",
        type=positive_float,
        default=2000.0,
        metavar="PER_SECOND",
        help=f"the burst's datagrams per second at most (default 2000, at most {MAX_RATE:g})",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on WARN too, not only on FAIL")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_verbose_option(p, "each check as it starts")
    add_loop_option(p)
    p.set_defaults(handler=_run)


def _options(args: argparse.Namespace) -> ProbeOptions:
    try:
        return ProbeOptions(
            timeout=min(args.timeout, 60.0),
            gentle=args.gentle,
            connections=args.connections,
            burst=args.burst,
            rate=args.rate,
        )
    except ValueError as exc:
        raise UsageError(f"probe: {exc}") from None


def _ports(args: argparse.Namespace) -> dict[str, int]:
    ports = default_ports(args.port_base)
    for item in args.port:
        name, sep, text = item.partition("=")
        if not sep or name not in SERVICES:
            raise UsageError(
                f"bad --port {item!r}: write SERVICE=PORT, SERVICE one of {', '.join(SERVICES)}"
            )
        ports[name] = parse_port(text)
    return ports


def _single_target(args: argparse.Namespace) -> Target:
    if not args.service:
        raise UsageError(
            "probe needs --service NAME (which service listens there?), "
            "e.g. socketkit probe 127.0.0.1:10007 --service echo"
        )
    if len(args.service) > 1:
        raise UsageError("give one --service for one target (or use --host-scan)")
    service = args.service[0]
    get_service(service)
    if args.unix:
        if args.target is not None:
            raise UsageError("with --unix PATH give no HOST:PORT")
        return Target(service, Endpoint(path=args.unix), "unix")
    if args.target is None:
        raise UsageError("probe needs HOST:PORT, --unix PATH or --host-scan HOST")
    endpoint = parse_endpoint(args.target)
    if endpoint.is_unix:
        return Target(service, endpoint, "unix")
    return Target(service, endpoint, "udp" if args.udp else "tcp")


def _targets(args: argparse.Namespace) -> tuple[list[Target], bool]:
    if args.host_scan is None:
        if args.port:
            raise UsageError("--port SERVICE=PORT goes with --host-scan")
        return [_single_target(args)], False
    if args.target is not None or args.unix or args.udp:
        raise UsageError("--host-scan HOST takes no HOST:PORT, --udp or --unix")
    services = args.service or SERVICES
    return scan_targets(args.host_scan, _ports(args), services=services), True


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    options = _options(args)
    targets, scanning = _targets(args)

    async def main() -> list[CheckResult]:
        if scanning:
            return await probe_host(targets, options)
        return await probe_target(targets[0], options)

    results = run(main(), loop=args.loop)
    status = exit_status(results, strict=args.strict)
    if args.json:
        print_json({"results": results, "summary": summarise(results), "exit_status": status})
        return status
    _print_results(results)
    if scanning:
        _print_summary(results)
    return status


HEADERS = ("verdict", "service", "transport", "check", "clause", "sent", "received", "detail")


def _print_results(results: Sequence[CheckResult]) -> None:
    rows = [
        (r.verdict, r.service, r.transport, r.check, r.clause, r.sent, r.received, r.detail)
        for r in results
    ]
    print_table(HEADERS, rows)


def summarise(results: Sequence[CheckResult]) -> list[dict[str, object]]:
    """One line per service and transport: verdict counts and the amplification factor."""
    out: list[dict[str, object]] = []
    keys = dict.fromkeys((r.service, r.transport) for r in results)
    for service, transport in keys:
        mine = [r for r in results if r.service == service and r.transport == transport]
        counts = Counter(r.verdict for r in mine)
        factor = next((r.measure for r in mine if r.check == "amplification"), None)
        reach = next((r.detail for r in mine if r.check == "reach"), "")
        out.append(
            {
                "service": service,
                "transport": transport,
                "pass": counts[Verdict.PASS],
                "warn": counts[Verdict.WARN],
                "fail": counts[Verdict.FAIL],
                "skip": counts[Verdict.SKIP],
                "amplification": factor,
                "note": reach,
            }
        )
    return out


def _print_summary(results: Sequence[CheckResult]) -> None:
    rows = [
        (
            s["service"],
            s["transport"],
            s["pass"],
            s["warn"],
            s["fail"],
            s["skip"],
            "" if s["amplification"] is None else f"{s['amplification']:g}x",
            s["note"],
        )
        for s in summarise(results)
    ]
    headers = ("service", "transport", "pass", "warn", "fail", "skip", "amplification", "note")
    if is_terminal():
        print()
        print_table(headers, rows, title="summary")
    else:  # piped stdout stays pure result rows; the summary goes where people look
        print_table(headers, rows, stream=sys.stderr)
