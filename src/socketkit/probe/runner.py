"""Running the checks: one target, or every service on one host.

Reaching the target comes first: when a single target cannot be reached the
clients' own error (refused 69, no host 68, timeout 75...) is raised, so the
CLI exits with the code scripts already know; in a host scan an unreachable
service is a SKIP row and only a host where nothing answers is an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence

from socketkit.endpoints import Endpoint
from socketkit.errors import ConnectionRefused, SocketkitError, translate_os_error
from socketkit.probe.checks import CHECKS, SERVICES
from socketkit.probe.model import Check, CheckResult, Outcome, ProbeOptions, Target, Verdict
from socketkit.probe.wire import ask, datagram, stream
from socketkit.protocols import get_service

__all__ = ["exit_status", "probe_host", "probe_target", "scan_targets", "select_checks"]

log = logging.getLogger("socketkit.probe")

EXIT_FAIL = 1
"""At least one check failed (or warned, with ``strict``)."""


def select_checks(target: Target, options: ProbeOptions) -> list[Check]:
    """The checks that apply to ``target``; ``gentle`` leaves out robustness and the burst."""
    chosen = [check for check in CHECKS if check.applies(target)]
    if options.gentle:
        chosen = [c for c in chosen if c.kind != "robustness" and c.name != "rate-limit"]
    return chosen


async def reach(target: Target, options: ProbeOptions) -> None:
    """Raise the clients' error when the target cannot be reached at all."""
    if target.transport == "udp":
        # One datagram: "port unreachable" comes back as refused; silence is fine (discard).
        with await datagram(target, options) as sock:
            await ask(sock, b"\n", options, max_replies=64, expect_reply=False)
        return
    async with stream(target, options):
        pass


def _row(target: Target, check: Check | None, outcome: Outcome) -> CheckResult:
    return CheckResult(
        check=check.name if check else "reach",
        service=target.service,
        transport=target.transport,
        target=str(target.endpoint),
        kind=check.kind if check else "conformance",
        clause=check.clause if check else "",
        verdict=outcome.verdict,
        sent=outcome.sent,
        received=outcome.received,
        detail=outcome.detail,
        measure=outcome.measure,
    )


async def _run_check(check: Check, target: Target, options: ProbeOptions) -> Outcome:
    # Every check is bounded as a whole, beyond its own waits.
    limit = options.timeout * 6 + options.burst / options.rate + options.quiet_wait * 10
    try:
        async with asyncio.timeout(limit):
            return await check.function(target, options)
    except TimeoutError:
        return Outcome(Verdict.FAIL, "", "", f"the check did not finish in {limit:g} s")
    except SocketkitError as exc:
        return Outcome(Verdict.FAIL, "", "", str(exc))
    except OSError as exc:  # a reset or refusal in the middle of a check
        where = str(target.endpoint)
        return Outcome(
            Verdict.FAIL, "", "", str(translate_os_error(exc, action=check.name, where=where))
        )


async def probe_target(target: Target, options: ProbeOptions) -> list[CheckResult]:
    """Every applicable check against one target; raises when it cannot be reached."""
    get_service(target.service)
    await reach(target, options)
    results = []
    for check in select_checks(target, options):
        log.info("%s: %s", target, check.name)
        outcome = await _run_check(check, target, options)
        results.append(_row(target, check, outcome))
    return results


def scan_targets(
    host: str, ports: Mapping[str, int], *, services: Iterable[str] = SERVICES
) -> list[Target]:
    """TCP and UDP targets for each service on ``host`` at ``ports[service]``."""
    targets = []
    for name in services:
        endpoint = Endpoint(host=host, port=ports[name])
        targets.append(Target(name, endpoint, "tcp"))
        targets.append(Target(name, endpoint, "udp"))
    return targets


def default_ports(port_base: int) -> dict[str, int]:
    """Each service's port at ``port_base`` (0: the well-known ports; sum: 10100)."""
    return {name: get_service(name).default_port(port_base) for name in SERVICES}


async def probe_host(targets: Sequence[Target], options: ProbeOptions) -> list[CheckResult]:
    """Probe each target; unreachable ones become SKIP rows. Raises only if none answered."""
    results: list[CheckResult] = []
    errors: list[SocketkitError] = []
    for target in targets:
        try:
            results += await probe_target(target, options)
        except SocketkitError as exc:
            errors.append(exc)
            results.append(_row(target, None, Outcome(Verdict.SKIP, "", "", str(exc))))
    if errors and len(errors) == len(targets):
        refused = [e for e in errors if isinstance(e, ConnectionRefused)]
        raise (refused or errors)[0]
    return results


def exit_status(results: Sequence[CheckResult], *, strict: bool = False) -> int:
    """0 when nothing failed (WARN allowed unless ``strict``), else EXIT_FAIL."""
    bad = {Verdict.FAIL, Verdict.WARN} if strict else {Verdict.FAIL}
    return EXIT_FAIL if any(r.verdict in bad for r in results) else 0
