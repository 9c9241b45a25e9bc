"""The one datagram adapter (UDP): one datagram in, the service's replies out.

The service decides what to answer; this adapter decides whether an answer
may be sent at all (``policy``) and adds the peer's address. A send error
(an ICMP "port unreachable" left over from an earlier reply) is logged and
never stops the endpoint.

With a ``UdpGuard`` as the policy, the guard is asked *before* the service
runs (a refused or rate-limited source costs no service work), a service
that can shape its reply (``BudgetedDatagramService``: chargen, qotd) is
given the byte budget, and every other reply is sent whole or not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from socketkit.display import escape_payload
from socketkit.endpoints import format_sockaddr
from socketkit.protocols.base import DatagramService
from socketkit.protocols.budget import BudgetedDatagramService
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.stats import Counters

__all__ = ["DatagramEndpoint", "ReplyPolicy"]

log = logging.getLogger("socketkit.server")

ReplyPolicy = Callable[[Any, bytes, list[bytes]], list[bytes]]
"""``policy(addr, request, replies) -> replies to send``: guards and budgets."""


def allow_all(addr: Any, request: bytes, replies: list[bytes]) -> list[bytes]:
    return replies


class DatagramEndpoint(asyncio.DatagramProtocol):
    def __init__(
        self,
        label: str,
        service: DatagramService,
        counters: Counters,
        clock: Callable[[], float],
        *,
        policy: ReplyPolicy = allow_all,
        narrate: bool = False,
    ) -> None:
        self._label = label
        self._service = service
        self._counters = counters
        self._clock = clock
        self._policy = policy
        self._guard = policy if isinstance(policy, UdpGuard) else None
        self._narrate = narrate and log.isEnabledFor(logging.INFO)
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        if self._guard is not None:
            sockname = transport.get_extra_info("sockname")
            if isinstance(sockname, tuple) and len(sockname) >= 2:
                self._guard.protect_port(int(sockname[1]))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        counters = self._counters
        counters.datagrams_received += 1
        counters.bytes_received += len(data)
        if self._narrate:
            log.info(
                "%s: datagram of %d bytes from %s: %s",
                self._label,
                len(data),
                format_sockaddr(addr),
                escape_payload(data),
            )
        try:
            if self._guard is not None:
                if self._guard.free_pass(addr):
                    allowed = self._service.handle(data, self._clock())
                else:
                    allowed = self._guarded(self._guard, data, addr)
            else:
                replies = self._service.handle(data, self._clock())
                allowed = self._policy(addr, data, replies)
                if replies and not allowed:
                    counters.datagrams_dropped += 1
        except Exception:
            log.exception("%s: service failed on a datagram from %s", self._label, addr)
            counters.datagrams_dropped += 1
            return
        transport = self._transport
        if transport is None:
            return
        for reply in allowed:
            if not reply:
                continue  # asyncio and uvloop do not send empty datagrams: never count one
            transport.sendto(reply, addr)
            counters.datagrams_sent += 1
            counters.bytes_sent += len(reply)
            if self._narrate:
                log.info(
                    "%s: sent datagram of %d bytes to %s: %s",
                    self._label,
                    len(reply),
                    format_sockaddr(addr),
                    escape_payload(reply),
                )

    def _guarded(self, guard: UdpGuard, data: bytes, addr: Any) -> list[bytes]:
        counters = self._counters
        admission = guard.admit(addr, len(data))
        if admission.counter is not None:
            setattr(counters, admission.counter, getattr(counters, admission.counter) + 1)
            log.log(
                logging.INFO if self._narrate else logging.DEBUG,
                "%s: ignored a datagram from %s: %s",
                self._label,
                format_sockaddr(addr),
                admission.reason,
            )
            return []
        service = self._service
        budget = admission.budget
        if budget is not None and isinstance(service, BudgetedDatagramService):
            replies, trimmed = service.handle_within(data, self._clock(), budget)
            if trimmed:
                counters.replies_trimmed += 1
        else:
            replies = service.handle(data, self._clock())
        allowed, over = guard.settle(addr, admission, replies)
        if over:
            counters.replies_over_budget += over
            log.log(
                logging.INFO if self._narrate else logging.DEBUG,
                "%s: %d reply(ies) to %s did not fit the %d-byte budget (--udp-amplification)",
                self._label,
                over,
                format_sockaddr(addr),
                budget,
            )
        return allowed

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: send/receive error ignored: %s", self._label, exc)
