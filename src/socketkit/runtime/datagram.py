"""The one datagram adapter (UDP): one datagram in, the service's replies out.

The service decides what to answer; this adapter decides whether an answer
may be sent at all (``policy``) and adds the peer's address. A send error
(an ICMP "port unreachable" left over from an earlier reply) is logged and
never stops the endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from socketkit.display import escape_payload
from socketkit.endpoints import format_sockaddr
from socketkit.protocols.base import DatagramService
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
        self._narrate = narrate and log.isEnabledFor(logging.INFO)
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

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
            replies = self._service.handle(data, self._clock())
            allowed = self._policy(addr, data, replies)
        except Exception:
            log.exception("%s: service failed on a datagram from %s", self._label, addr)
            counters.datagrams_dropped += 1
            return
        if replies and not allowed:
            counters.datagrams_dropped += 1
        transport = self._transport
        if transport is None:
            return
        for reply in allowed:
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

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: send/receive error ignored: %s", self._label, exc)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
