"""Service registry: name -> protocol classes, RFC, ports and transports.

Later services join by adding one ``ServiceInfo`` to ``_SERVICES``; the
server, the CLI and the docs read everything else from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from socketkit.errors import UsageError
from socketkit.protocols.base import DatagramService, OutputBuffer, StreamProtocol
from socketkit.protocols.echo import EchoDatagram, EchoStream

__all__ = [
    "DEFAULT_PORT_BASE",
    "DatagramService",
    "OutputBuffer",
    "ServiceInfo",
    "StreamProtocol",
    "get_service",
    "service_names",
]

DEFAULT_PORT_BASE = 10000
"""``serve`` listens on port base + well-known port, so no root is needed."""

StreamFactory = Callable[..., StreamProtocol]
DatagramFactory = Callable[[], DatagramService]


@dataclass(frozen=True)
class ServiceInfo:
    """What the runtime and CLI need to know about one service."""

    name: str
    summary: str
    rfc: int | None
    well_known_port: int | None
    stream: StreamFactory | None
    """Called as ``stream(now=...)`` for each new connection; None if no TCP form."""
    datagram: DatagramFactory | None
    """Called once per bound UDP socket; None if no UDP form."""
    fixed_default_port: int | None = None
    """For services without a well-known port (sum): the port at base 10000."""

    def default_port(self, port_base: int = DEFAULT_PORT_BASE) -> int:
        """Port base plus the well-known port; ``port_base=0`` gives the real one."""
        if self.well_known_port is not None:
            return port_base + self.well_known_port
        assert self.fixed_default_port is not None
        return self.fixed_default_port - DEFAULT_PORT_BASE + port_base

    @property
    def transports(self) -> tuple[str, ...]:
        found = []
        if self.stream is not None:
            found += ["tcp", "unix"]
        if self.datagram is not None:
            found.append("udp")
        return tuple(found)


_SERVICES: dict[str, ServiceInfo] = {
    info.name: info
    for info in (
        ServiceInfo(
            name="echo",
            summary="sends back every byte it receives",
            rfc=862,
            well_known_port=7,
            stream=EchoStream,
            datagram=EchoDatagram,
        ),
    )
}


def service_names() -> list[str]:
    """Registered services, in well-known port order."""
    return [s.name for s in sorted(_SERVICES.values(), key=lambda s: s.default_port())]


def get_service(name: str) -> ServiceInfo:
    try:
        return _SERVICES[name]
    except KeyError:
        known = ", ".join(service_names())
        raise UsageError(f"unknown service {name!r}: choose from {known}") from None
