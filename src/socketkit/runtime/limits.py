"""Server limits: every one on by default, every one settable from the CLI.

The small services are classic amplifiers and easy to exhaust, so the
defaults are chosen to keep one misbehaving client from hurting the others
or the machine, while leaving room for a lab full of students.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from socketkit.errors import UsageError

__all__ = ["MAX_READ_CHUNK", "Limits"]

MAX_READ_CHUNK = 16 * 1024 * 1024
"""Each connection owns a buffer this large at most; larger is a typo, not a wish."""


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1024
    """Open stream connections in total; the next one is accepted and closed at once."""
    max_connections_per_source: int = 256
    """Open stream connections from one source address (Unix clients count as one)."""
    idle_timeout: float | None = 300.0
    """Seconds without a byte either way before a connection is closed; None: never."""
    read_chunk: int = 256 * 1024
    """Bytes asked of each recv(); the lab used 16 to show chunking."""
    write_buffer_high: int = 256 * 1024
    """Stop reading from a client while this much waits to be written to it, so a
    client that sends and never reads cannot grow our memory."""
    write_buffer_low: int = 64 * 1024
    """Resume reading once the pending output falls to this."""
    shutdown_grace: float = 5.0
    """Seconds open connections get to finish after Ctrl-C or SIGTERM."""
    backlog: int = 1024
    """Listen queue length handed to the kernel."""
    accept_batch: int = 64
    """Connections accepted per wake-up before other clients get their turn."""
    write_batch: int = 16
    """Output chunks pulled from one protocol per turn; then other clients run."""
    turn_bytes: int = 32 * 1024
    """Bytes one connection may write per loop turn; then other clients run.

    Why bytes and not only chunks: while the kernel's send buffers are still
    growing, a writer that never blocks (chargen to clients that never read)
    would otherwise write megabytes per turn, and with hundreds of them a
    new client waited seconds to be accepted and answered."""

    # -- UDP guards (runtime/guards.py); the small services are classic amplifiers --
    udp_rate: float | None = 50.0
    """Replies per second to one source address (token bucket); None: no limit."""
    udp_burst: int = 100
    """Replies one source may get at once before the rate applies."""
    udp_amplification: float | None = 1.0
    """A reply to a source that could be spoofed carries at most this many times the
    request's bytes (chargen and qotd send what fits); None: no budget."""
    udp_loopback_exempt: bool = True
    """Loopback sources (which cannot be spoofed from the wire) skip the rate limit
    and the reply budget; tests switch this off."""
    udp_allow_low_ports: bool = False
    """Answer sources on ports 1-1023 other than the small services' own ports."""
    udp_max_sources: int = 65536
    """Source addresses the rate limiter remembers; the least recently seen go first."""

    # -- behind a load balancer (runtime/proxied.py) --
    proxy_protocol: bool = False
    """TCP clients start with a PROXY v1/v2 header naming the real client; one
    without it is closed. In ``Limits`` so ``serve --workers`` passes it on."""
    proxy_from: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Networks allowed to send the header (CIDR texts); other peers are closed."""
    proxy_timeout: float = 5.0
    """Seconds a connection has to deliver its whole header."""

    def __post_init__(self) -> None:
        positive = {
            "max_connections": self.max_connections,
            "max_connections_per_source": self.max_connections_per_source,
            "read_chunk": self.read_chunk,
            "write_buffer_high": self.write_buffer_high,
            "backlog": self.backlog,
            "accept_batch": self.accept_batch,
            "write_batch": self.write_batch,
            "turn_bytes": self.turn_bytes,
            "udp_burst": self.udp_burst,
            "udp_max_sources": self.udp_max_sources,
        }
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"bad limit {name}={value}: it must be at least 1")
        if self.read_chunk > MAX_READ_CHUNK:
            raise UsageError(
                f"bad limit read_chunk={self.read_chunk}: at most {MAX_READ_CHUNK} bytes per recv()"
            )
        for name in ("idle_timeout", "shutdown_grace", "udp_rate", "udp_amplification"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise UsageError(f"bad limit {name}={value}: give a finite number")
        if not 0 <= self.write_buffer_low <= self.write_buffer_high:
            raise UsageError("bad limits: write_buffer_low must be between 0 and write_buffer_high")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise UsageError("bad limit idle_timeout: give seconds > 0, or None for no timeout")
        for cidr in self.proxy_from:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise UsageError(
                    f"bad limit proxy_from: {cidr!r} is not an address or CIDR such as 10.0.0.0/8"
                ) from None
        if not (math.isfinite(self.proxy_timeout) and self.proxy_timeout > 0):
            raise UsageError("bad limit proxy_timeout: give seconds > 0")
        if self.shutdown_grace < 0:
            raise UsageError("bad limit shutdown_grace: give seconds >= 0")
        if self.udp_rate is not None and not self.udp_rate > 0:
            raise UsageError(
                "bad limit udp_rate: give replies per second > 0, or None for no limit"
            )
        if self.udp_amplification is not None and not self.udp_amplification >= 0:
            raise UsageError(
                "bad limit udp_amplification: give a multiple >= 0, or None for no budget"
            )
