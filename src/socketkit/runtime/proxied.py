"""Reading a PROXY protocol header before a connection reaches its service.

Behind a load balancer (HAProxy ``send-proxy-v2``, any L4 balancer speaking
PROXY v1 or v2) every client arrives from the balancer's address; the
header it sends first names the real client. ``serve --proxy-protocol``
reads that header here, on the accepted socket, before any connection
object exists, so the per-source cap, the logs, the ``-v`` narration and the
access log all see the real client, and the service never sees the header.

Why before the connection object and not inside it: the per-source cap
must count the real client (checked once the header names it), and the
connection classes (``stream.py``, ``mirror.py``) stay unaware of proxies.
Bytes that arrived after the header in the same read are handed to the new
connection with ``Connection.receive()``, through the same callbacks the event loop
uses.

A connection is closed and counted, never raised about, when its peer is
not in ``proxy_from`` (``proxy_untrusted``: the listener closes it at accept,
so no reader is made for it), its header is malformed,
truncated, oversized or of a version not accepted (``proxy_invalid``), or no
complete header arrived within ``proxy_timeout`` seconds or before the peer
closed (``proxy_missing``). Each reader holds at most the parser's bound
(107 bytes for v1, 16 + 4096 for v2) and one timer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from socketkit.protocols.proxy import (
    Pending,
    ProxyAccepted,
    ProxyHeaderParser,
    ProxyRejected,
)
from socketkit.runtime.timers import Cancellable, Timers

__all__ = ["DEFAULT_PROXY_FROM", "HeaderReader", "ProxyTrust", "drain_and_close"]

log = logging.getLogger("socketkit.server")

DEFAULT_PROXY_FROM = ("127.0.0.0/8", "::1/128")
"""Safe by default: only a balancer on this machine may name other clients."""

_READ = 4096
"""Bytes read per wake-up while waiting for the header (the parser bounds what it keeps)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyTrust:
    """Which peers may send a PROXY header (``--proxy-from``)."""

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, cidrs: Sequence[str]) -> ProxyTrust:
        """From ``CIDR`` texts (a bare address is one host); ValueError names a bad one."""
        found: list[Network] = []
        for text in cidrs:
            try:
                found.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"bad limit proxy_from {text!r}: expected an address or CIDR such as 10.0.0.0/8"
                ) from None
        return cls(tuple(found))

    def allows(self, addr: Any) -> bool:
        """True when ``addr`` (what ``accept()`` returned) lies in a trusted network."""
        if not isinstance(addr, tuple) or not addr:
            return False
        try:
            ip = ipaddress.ip_address(str(addr[0]).split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)


Outcome = Callable[["HeaderReader", ProxyAccepted | None, str], None]
"""``done(reader, header, reason)``: a header (reason "") or None and the counter to bump."""


class HeaderReader:
    """Reads one accepted socket until its PROXY header is complete, refused or late."""

    def __init__(
        self,
        sock: socket.socket,
        addr: Any,
        *,
        timeout: float,
        timers: Timers,
        done: Outcome,
    ) -> None:
        self.sock = sock
        self.addr = addr
        self.started = timers.now()
        self._parser = ProxyHeaderParser()
        self._done = done
        self._loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        self._finished = False
        self._loop.add_reader(self._fd, self._on_readable)
        self._timer: Cancellable | None = timers.call_later(timeout, self._expire)

    def cancel(self) -> None:
        """Stop waiting and close the socket (listener closing); reports nothing."""
        if not self._finished:
            self._stop()
            self.sock.close()

    def _stop(self) -> None:
        self._finished = True
        self._loop.remove_reader(self._fd)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self, header: ProxyAccepted | None, reason: str) -> None:
        if not self._finished:
            self._stop()
            self._done(self, header, reason)

    def _expire(self) -> None:
        self._timer = None
        self._finish(None, "proxy_missing")

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._finish(None, "proxy_missing")
            return
        if not data:
            self._finish(None, "proxy_missing")
            return
        result = self._parser.feed(data)
        if isinstance(result, Pending):
            return
        if isinstance(result, ProxyRejected):
            log.debug("PROXY header refused: %s", result.reason)
            self._finish(None, "proxy_invalid")
            return
        self._finish(result, "")


def drain_and_close(sock: socket.socket) -> None:
    """Close a refused socket after reading what is queued (bounded), so it ends with FIN.

    Why: closing a socket with unread input makes the kernel send RST, and
    the client would read "connection reset" instead of a clean close.
    """
    try:
        sock.setblocking(False)
        for _ in range(16):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    sock.close()
