"""What to run: one validated description of a benchmark, shared by every worker."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Literal

from socketkit.endpoints import Endpoint
from socketkit.errors import UsageError

__all__ = ["MAX_UDP_PAYLOAD", "MODES", "BenchConfig", "default_workers"]

Mode = Literal["rr", "stream", "udp"]
MODES: tuple[Mode, ...] = ("rr", "stream", "udp")
MAX_UDP_PAYLOAD = 65507


def default_workers() -> int:
    """One worker per core this process may run on (taskset/cgroups respected)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BenchConfig:
    target: Endpoint
    mode: Mode = "rr"
    connections: int = 16
    size: int = 64
    duration: float | None = 5.0
    """Seconds to measure; None when ``requests`` sets the length instead."""
    requests: int | None = None
    warmup: float = 1.0
    rate: float | None = None
    """Total requests per second, open loop; None: closed loop."""
    workers: int = 1
    timeout: float = 2.0
    """UDP: a reply later than this is a loss. TCP: how long to wait at the end."""
    window: int = 256 * 1024
    """stream mode: bytes in flight per connection (rounded to whole messages)."""
    loop: str = "auto"
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}: choose rr, stream or udp")
        if self.connections < 1:
            raise UsageError("--conns must be at least 1")
        if self.size < 1:
            raise UsageError("--size must be at least 1 byte")
        if self.mode == "udp":
            if self.target.is_unix:
                raise UsageError("--mode udp needs HOST:PORT; --unix is for stream sockets")
            if self.size > MAX_UDP_PAYLOAD:
                raise UsageError(
                    f"--size {self.size} is larger than a UDP datagram can carry "
                    f"({MAX_UDP_PAYLOAD} bytes)"
                )
        if (self.duration is None) == (self.requests is None):
            raise UsageError("give either --duration or --requests")
        if self.duration is not None and not self.duration > 0:
            raise UsageError("--duration must be > 0 seconds")
        if self.requests is not None and self.requests < 1:
            raise UsageError("--requests must be at least 1")
        if self.warmup < 0:
            raise UsageError("--warmup must be >= 0 seconds")
        if self.rate is not None and not self.rate > 0:
            raise UsageError("--rate must be > 0 requests per second")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if not self.timeout > 0:
            raise UsageError("--timeout must be > 0 seconds")
        if self.window < 1:
            raise UsageError("--window must be at least 1 byte")

    @property
    def effective_workers(self) -> int:
        """No more workers than connections: an idle worker only adds noise."""
        n = min(self.workers, self.connections)
        return n if self.requests is None else min(n, self.requests)

    @property
    def depth(self) -> int:
        """Requests in flight per connection in closed loop: 1 for rr and udp."""
        if self.mode != "stream":
            return 1
        return max(1, self.window // self.size)

    def share(self, index: int) -> BenchConfig:
        """The part of the load worker ``index`` runs: connections, requests, rate."""
        n = self.effective_workers

        def split(total: int) -> int:
            return total // n + (1 if index < total % n else 0)

        return replace(
            self,
            connections=split(self.connections),
            requests=None if self.requests is None else split(self.requests),
            rate=None if self.rate is None else self.rate / n,
            workers=1,
        )
