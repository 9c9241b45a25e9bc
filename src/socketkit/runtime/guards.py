"""The UDP guards: who gets a reply, how often, and how large.

UDP has no handshake, so the source address of a datagram is whatever the
sender wrote there. The small services then become weapons:

- **loops** (CERT CA-1996-01): a datagram "from" one host's chargen port to
  another's echo port makes the two services answer each other forever. We
  ignore datagrams from the small services' ports (0, 7, 9, 13, 17, 19, 37),
  from every port this server answers UDP on, and by default from every port
  below 1024 (as xinetd and OpenBSD inetd do), and from broadcast, multicast
  and unspecified addresses (NetBSD and OpenBSD inetd);
- **reflection** floods: a per-source token bucket caps the replies one
  address can draw, and the table of sources is bounded, so spoofing many
  addresses cannot grow our memory;
- **amplification** (US-CERT TA14-017A measured chargen at 358.8x and qotd at
  140.3x): a reply to a source that could be spoofed never carries more than
  ``udp_amplification`` times the request's bytes (default 1x). Services that
  can answer shorter (chargen, qotd) send what fits; the others (daytime,
  time, sum) answer in full or not at all.

Loopback sources cannot arrive from the wire (the kernel drops them as
martians), so by default they skip the rate limit and the budget and get
full RFC replies; ``udp_loopback_exempt=False`` turns that off, which is how
the tests prove the limits without sending from another machine.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from socketkit.runtime.limits import Limits

__all__ = ["REFUSED_PORTS", "Admission", "UdpGuard", "source_address"]

REFUSED_PORTS: Final = frozenset({0, 7, 9, 13, 17, 19, 37})
"""Port 0 and the well-known ports of the services that answer anything (RFC 862-868)."""

_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Admission:
    """The guard's answer for one datagram."""

    counter: str | None = None
    """None when admitted; else the statistics counter to bump."""
    reason: str = ""
    """Why it was refused, for the log."""
    budget: int | None = None
    """Reply bytes allowed (None: no budget)."""

    @property
    def admitted(self) -> bool:
        return self.counter is None


_ADMIT_FREELY = Admission()


def source_address(addr: Any) -> tuple[Address | None, int]:
    """The source IP (v4-mapped IPv6 seen as the IPv4 it is) and port of ``recvfrom``'s address."""
    try:
        host = str(addr[0]).split("%", 1)[0]
        port = int(addr[1])
        ip = ipaddress.ip_address(host)
    except (TypeError, ValueError, IndexError):
        return None, 0
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, port
    return ip, port


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class UdpGuard:
    """A reply policy for ``Server(udp_policy=...)``: one per server (it keeps state).

    The datagram adapters ask ``free_pass`` first (a source with no limit to
    apply skips the rest), then ``admit`` before the service runs, and hand
    the replies to ``settle``; used as a plain ``policy(addr, request,
    replies)`` callable it does both at once. A subclass that changes what
    ``admit`` or ``settle`` decide for loopback must override ``free_pass``
    too.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        service_ports: Iterable[int] = (),
    ) -> None:
        self._limits = limits or Limits()
        self._clock = clock
        self._service_ports: set[int] = set(service_ports)
        self._buckets: OrderedDict[Address, _Bucket] = OrderedDict()
        self._verdicts: dict[Any, tuple[Address | None, str, bool]] = {}
        self.generation = 0
        """Bumped whenever a verdict may change: who caches ``free_pass`` answers re-asks."""

    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        """New limits may change verdicts (``udp_loopback_exempt``): cached ones go."""
        self._limits = limits
        self._verdicts.clear()
        self.generation += 1

    def protect_port(self, port: int) -> None:
        """Also refuse datagrams from ``port``: one of our own UDP services (no loops)."""
        if port:
            self._service_ports.add(port)
            self._verdicts.clear()
            self.generation += 1

    @property
    def tracked_sources(self) -> int:
        return len(self._buckets)

    def free_pass(self, addr: Any) -> bool:
        """True for a source with no limit to apply (loopback, by default).

        The answer may be cached by the caller (the batched UDP echo keeps it
        in C) until ``generation`` changes, so it must depend only on the
        address and on what bumps ``generation`` (``protect_port``, ``limits``).

        Why: ``admit`` and ``settle`` would let every reply through for it
        anyway; the datagram adapters skip both for such sources (a quarter
        of the CPU per datagram on a busy loopback port).
        """
        return self._verdict(addr)[2]

    def is_exempt(self, ip: Address | None) -> bool:
        return ip is not None and ip.is_loopback and self.limits.udp_loopback_exempt

    def refusal(self, ip: Address | None, port: int) -> str:
        """Why datagrams from this source must never be answered ("" if they may)."""
        if ip is None:
            return "not an IP source"
        if port in REFUSED_PORTS:
            return f"source port {port} is a small service's port (loop guard)"
        if port in self._service_ports:
            return f"source port {port} is one of our UDP services (loop guard)"
        if port < 1024 and not self.limits.udp_allow_low_ports:
            return f"source port {port} is below 1024 (limit udp_allow_low_ports)"
        if ip.is_multicast:
            return f"source {ip} is a multicast address"
        if ip.is_unspecified:
            return f"source {ip} is unspecified"
        if isinstance(ip, ipaddress.IPv4Address) and (
            ip == _LIMITED_BROADCAST or ip in _THIS_NETWORK
        ):
            return f"source {ip} is a broadcast or 'this network' address"
        return ""

    def _verdict(self, addr: Any) -> tuple[Address | None, str, bool]:
        """(source IP, refusal reason, exempt?) for an address, cached.

        Parsing the address and asking ``is_loopback``, ``is_multicast``...
        costs more than answering an echo; a busy UDP port sees the same few
        sources again and again, so the verdicts are kept (bounded).
        """
        try:
            hit = self._verdicts.get(addr)
        except TypeError:  # an unhashable address: work it out each time
            hit = None
        if hit is None:
            ip, port = source_address(addr)
            why = self.refusal(ip, port)
            hit = (ip, why, not why and self.is_exempt(ip))
            if len(self._verdicts) >= self.limits.udp_max_sources:
                self._verdicts.clear()
            try:
                self._verdicts[addr] = hit
            except TypeError:
                pass
        return hit

    def admit(self, addr: Any, request_size: int, now: float | None = None) -> Admission:
        """May a datagram from ``addr`` be answered, and with how many bytes at most?"""
        ip, why, exempt = self._verdict(addr)
        if why:
            return Admission("datagrams_refused", why)
        assert ip is not None
        if exempt:
            return _ADMIT_FREELY
        if not self._has_token(ip, self._clock() if now is None else now):
            return Admission(
                "datagrams_rate_limited", f"{ip} is over {self.limits.udp_rate:g} replies/s"
            )
        multiple = self.limits.udp_amplification
        budget = None if multiple is None else math.floor(request_size * multiple)
        return Admission(budget=budget)

    def settle(
        self, addr: Any, admission: Admission, replies: list[bytes]
    ) -> tuple[list[bytes], int]:
        """Replies that fit the budget, in order, and how many did not; charges the bucket."""
        kept = replies
        dropped = 0
        if admission.budget is not None:
            room = admission.budget
            kept = []
            for reply in replies:
                if len(reply) > room:
                    dropped += 1
                    continue
                kept.append(reply)
                room -= len(reply)
        if kept and self.limits.udp_rate is not None:
            ip, _, exempt = self._verdict(addr)
            if ip is not None and not exempt:
                self._spend(ip, len(kept))
        return kept, dropped

    def __call__(self, addr: Any, request: bytes, replies: list[bytes]) -> list[bytes]:
        """The plain ``ReplyPolicy`` form: admit and settle in one step."""
        admission = self.admit(addr, len(request))
        if not admission.admitted:
            return []
        kept, _ = self.settle(addr, admission, replies)
        return kept

    # -- the token buckets ----------------------------------------------------

    def _has_token(self, ip: Address, now: float) -> bool:
        rate = self.limits.udp_rate
        if rate is None:
            return True
        burst = float(self.limits.udp_burst)
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= self.limits.udp_max_sources:
                self._buckets.popitem(last=False)
            bucket = self._buckets[ip] = _Bucket(burst, now)
        else:
            self._buckets.move_to_end(ip)
            # A clock that went backwards refills nothing.
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
            bucket.stamp = now
        return bucket.tokens >= 1.0

    def _spend(self, ip: Address, count: int) -> None:
        bucket = self._buckets.get(ip)
        if bucket is not None:
            bucket.tokens -= count
