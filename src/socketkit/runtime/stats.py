"""Counters the runtime keeps, and the frozen snapshot it hands out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

__all__ = ["Counters", "ServerStatistics", "combine_statistics"]


@dataclass(frozen=True)
class ServerStatistics:
    """What a server did so far; printed as the shutdown summary."""

    connections_served: int = 0
    connections_active: int = 0
    connections_refused: int = 0
    """Accepted and closed at once: the total or per-source cap was reached."""
    connections_timed_out: int = 0
    """Closed by the idle timeout."""
    connections_aborted: int = 0
    """Closed with pending output: a client that stopped reading, or the grace ran out."""
    connections_cut: int = 0
    """Still open when the shutdown grace ran out: closed by us, not finished by the client."""
    bytes_received: int = 0
    bytes_sent: int = 0
    datagrams_received: int = 0
    datagrams_sent: int = 0
    datagrams_dropped: int = 0
    """Datagrams not answered for another reason: a service error, or a reply policy said no."""
    datagrams_refused: int = 0
    """Datagrams ignored for their source: a small service's port, a port below 1024,
    a broadcast, multicast or unspecified address (the UDP loop and reflection guards)."""
    datagrams_rate_limited: int = 0
    """Datagrams ignored because their source used up its replies (--udp-rate)."""
    replies_trimmed: int = 0
    """UDP replies cut to the amplification budget (chargen, qotd send what fits)."""
    replies_over_budget: int = 0
    """UDP replies not sent because they did not fit the amplification budget."""
    accept_errors: int = 0
    """accept() failures such as EMFILE, each followed by a short back-off."""
    proxy_untrusted: int = 0
    """--proxy-protocol: connections closed because their peer is not in --proxy-from."""
    proxy_invalid: int = 0
    """--proxy-protocol: connections closed for a malformed, oversized or truncated header."""
    proxy_missing: int = 0
    """--proxy-protocol: connections closed with no complete header in time (or before EOF)."""

    def summary(self) -> str:
        """One line for people."""
        parts = [
            f"{self.connections_served} connections served",
            f"{self.bytes_received} bytes received",
            f"{self.bytes_sent} bytes sent",
            f"{self.datagrams_received} datagrams received",
            f"{self.datagrams_sent} datagrams sent",
        ]
        for name in (
            "connections_refused",
            "connections_timed_out",
            "connections_aborted",
            "connections_cut",
            "datagrams_dropped",
            "datagrams_refused",
            "datagrams_rate_limited",
            "replies_trimmed",
            "replies_over_budget",
            "accept_errors",
            "proxy_untrusted",
            "proxy_invalid",
            "proxy_missing",
        ):
            value = getattr(self, name)
            if value:
                parts.append(f"{value} {name.replace('_', ' ')}")
        return ", ".join(parts)


class Counters:
    """The mutable side: plain attributes, cheap to bump on the hot path.

    Echo connections on the fast path add their bytes lazily (at close, or
    when ``Server.statistics()`` asks them), so read a running server's
    figures through ``statistics()``, not from these attributes.
    """

    def __init__(self) -> None:
        for f in fields(ServerStatistics):
            setattr(self, f.name, 0)

    def snapshot(self) -> ServerStatistics:
        return ServerStatistics(**{f.name: getattr(self, f.name) for f in fields(ServerStatistics)})

    # Declared for the type checker; set in __init__.
    connections_served: int
    connections_active: int
    connections_refused: int
    connections_timed_out: int
    connections_aborted: int
    connections_cut: int
    bytes_received: int
    bytes_sent: int
    datagrams_received: int
    datagrams_sent: int
    datagrams_dropped: int
    datagrams_refused: int
    datagrams_rate_limited: int
    replies_trimmed: int
    replies_over_budget: int
    accept_errors: int
    proxy_untrusted: int
    proxy_invalid: int
    proxy_missing: int


def combine_statistics(parts: Iterable[ServerStatistics]) -> ServerStatistics:
    """The field-by-field sum: several endpoints, or several workers, together."""
    names = [f.name for f in fields(ServerStatistics)]
    totals = dict.fromkeys(names, 0)
    for part in parts:
        for name in names:
            totals[name] += getattr(part, name)
    return ServerStatistics(**totals)
