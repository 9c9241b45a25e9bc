"""Server limits: every one on by default, every one settable from the CLI.

The small services are classic amplifiers and easy to exhaust, so the
defaults are chosen to keep one misbehaving client from hurting the others
or the machine, while leaving room for a lab full of students.
"""

from __future__ import annotations

from dataclasses import dataclass

from socketkit.errors import UsageError

__all__ = ["Limits"]


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

    def __post_init__(self) -> None:
        positive = {
            "max_connections": self.max_connections,
            "max_connections_per_source": self.max_connections_per_source,
            "read_chunk": self.read_chunk,
            "write_buffer_high": self.write_buffer_high,
            "backlog": self.backlog,
            "accept_batch": self.accept_batch,
            "write_batch": self.write_batch,
        }
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"bad limit {name}={value}: it must be at least 1")
        if not 0 <= self.write_buffer_low <= self.write_buffer_high:
            raise UsageError("bad limits: write_buffer_low must be between 0 and write_buffer_high")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise UsageError("bad limit idle_timeout: give seconds > 0, or None for no timeout")
        if self.shutdown_grace < 0:
            raise UsageError("bad limit shutdown_grace: give seconds >= 0")
