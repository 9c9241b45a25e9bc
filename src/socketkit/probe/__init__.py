"""``socketkit probe``: a conformance and security audit of small-services servers.

Checks are data (``checks.CHECKS``); the runner returns ``CheckResult`` rows
and prints nothing; the CLI renders them.
"""

from __future__ import annotations

from socketkit.probe.checks import CHECKS, SERVICES
from socketkit.probe.model import Check, CheckResult, Outcome, ProbeOptions, Target, Verdict
from socketkit.probe.runner import (
    EXIT_FAIL,
    default_ports,
    exit_status,
    probe_host,
    probe_target,
    scan_targets,
    select_checks,
)

__all__ = [
    "CHECKS",
    "EXIT_FAIL",
    "SERVICES",
    "Check",
    "CheckResult",
    "Outcome",
    "ProbeOptions",
    "Target",
    "Verdict",
    "default_ports",
    "exit_status",
    "probe_host",
    "probe_target",
    "scan_targets",
    "select_checks",
]
