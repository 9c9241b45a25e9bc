"""The checks, as data: name, clause, services, transports, kind and function.

Adding a check is adding one ``Check`` here; the runner, the CLI, the
documentation table and the tests read this tuple.
"""

from __future__ import annotations

from socketkit.probe import conformance as c
from socketkit.probe import robustness as r
from socketkit.probe import security as s
from socketkit.probe.model import Check, CheckFunction, Kind

__all__ = ["CHECKS", "SERVICES", "STREAM", "UDP"]

SERVICES = ("echo", "discard", "daytime", "qotd", "chargen", "time", "sum")
STREAM = frozenset({"tcp", "unix"})
UDP = frozenset({"udp"})
_ALL = frozenset(SERVICES)
_ANSWERING = _ALL - {"discard"}


def _check(
    name: str,
    clause: str,
    services: set[str] | frozenset[str],
    transports: frozenset[str],
    kind: Kind,
    function: CheckFunction,
) -> Check:
    return Check(name, clause, frozenset(services), transports, kind, function)


CHECKS: tuple[Check, ...] = (
    # -- conformance --
    _check("echo-order", "RFC 862", {"echo"}, STREAM, "conformance", c.echo_order),
    _check("echo-open", "RFC 862", {"echo"}, STREAM, "conformance", c.echo_stays_open),
    _check("echo-half-close", "RFC 862", {"echo"}, STREAM, "conformance", c.echo_half_close),
    _check("echo-datagram", "RFC 862", {"echo"}, UDP, "conformance", c.echo_udp),
    _check("discard-silent", "RFC 863", {"discard"}, STREAM, "conformance", c.discard_stream),
    _check("discard-datagram", "RFC 863", {"discard"}, UDP, "conformance", c.discard_udp),
    _check("daytime-line", "RFC 867", {"daytime"}, STREAM, "conformance", c.daytime_stream),
    _check("daytime-datagram", "RFC 867", {"daytime"}, UDP, "conformance", c.daytime_udp),
    _check("qotd-size", "RFC 865", {"qotd"}, STREAM, "conformance", c.qotd_stream),
    _check("qotd-datagram", "RFC 865", {"qotd"}, UDP, "conformance", c.qotd_udp),
    _check("chargen-lines", "RFC 864", {"chargen"}, STREAM, "conformance", c.chargen_stream),
    _check("chargen-ring", "RFC 864", {"chargen"}, STREAM, "conformance", c.chargen_ring),
    _check("chargen-datagram", "RFC 864", {"chargen"}, UDP, "conformance", c.chargen_udp),
    _check("time-value", "RFC 868", {"time"}, STREAM, "conformance", c.time_stream),
    _check("time-datagram", "RFC 868", {"time"}, UDP, "conformance", c.time_udp),
    _check(
        "one-shot-close",
        "RFC 865/867/868",
        {"daytime", "qotd", "time"},
        STREAM,
        "conformance",
        c.one_shot_closes,
    ),
    _check(
        "empty-datagram",
        "RFC 864/865/867/868",
        {"daytime", "qotd", "chargen", "time"},
        UDP,
        "conformance",
        c.empty_datagram,
    ),
    _check("sum-rules", "sum spec 4", {"sum"}, STREAM, "conformance", c.sum_rules),
    _check("sum-errors", "sum spec 4", {"sum"}, STREAM, "conformance", c.sum_errors),
    _check("sum-datagram", "sum spec 4", {"sum"}, UDP, "conformance", c.sum_udp),
    # -- robustness (left out by --gentle) --
    _check(
        "tiny-writes", "RFC 793 (a stream)", {"echo", "sum"}, STREAM, "robustness", r.tiny_writes
    ),
    _check(
        "long-line",
        "sum spec 4 / RFC 862",
        {"echo", "discard", "sum"},
        STREAM,
        "robustness",
        r.long_line,
    ),
    _check("garbage", "robustness", _ALL, STREAM, "robustness", r.garbage),
    _check("never-reads", "robustness", {"echo", "chargen"}, STREAM, "robustness", r.never_reads),
    _check("idle-connections", "robustness", _ALL, STREAM, "robustness", r.idle_connections),
    _check("reset-storm", "robustness", _ALL, STREAM, "robustness", r.reset_storm),
    # -- UDP security audit --
    _check("amplification", "TA14-017A", _ALL, UDP, "security", s.amplification),
    _check("loop-ports", "CA-1996-01", _ANSWERING, UDP, "security", s.loop_ports),
    _check("rate-limit", "TA14-017A", _ANSWERING, UDP, "security", s.rate_limit),
)
