"""Service registry: name -> protocol classes, RFC, ports and transports.

Later services join by adding one ``ServiceInfo`` to ``_SERVICES``; the
server, the CLI and the docs read everything else from here, including
which operator options a service takes (``ServiceOptions``) and what
``serve`` suggests trying once it listens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from socketkit.errors import UsageError
from socketkit.protocols.base import DatagramService, OutputBuffer, StreamProtocol
from socketkit.protocols.chargen import ChargenDatagram, ChargenStream
from socketkit.protocols.daytime import DaytimeDatagram, DaytimeStream
from socketkit.protocols.discard import DiscardDatagram, DiscardStream
from socketkit.protocols.echo import EchoDatagram, EchoStream
from socketkit.protocols.qotd import QotdDatagram, QotdStream
from socketkit.protocols.sum import MAX_LINE, SumDatagram, SumStream
from socketkit.protocols.timeproto import TimeDatagram, TimeStream

__all__ = [
    "DEFAULT_PORT_BASE",
    "DatagramService",
    "OutputBuffer",
    "ServiceInfo",
    "ServiceOptions",
    "StreamProtocol",
    "get_service",
    "service_names",
]

DEFAULT_PORT_BASE = 10000
"""``serve`` listens on port base + well-known port, so no root is needed."""

StreamFactory = Callable[..., StreamProtocol]
DatagramFactory = Callable[[], DatagramService]


@dataclass(frozen=True)
class ServiceOptions:
    """Operator settings that some services take (``serve --quotes``, ``--max-line``).

    Why one object: the CLI fills it once, and each ``ServiceInfo`` picks
    what applies to it, so no caller special-cases a service by name.
    """

    quotes: Sequence[bytes] | None = None
    """qotd: the quotes to serve (None: the embedded collection)."""
    max_line: int = MAX_LINE
    """sum: the longest request line."""


def _qotd_options(options: ServiceOptions) -> Mapping[str, Any]:
    return {} if options.quotes is None else {"quotes": options.quotes}


def _sum_options(options: ServiceOptions) -> Mapping[str, Any]:
    return {} if options.max_line == MAX_LINE else {"max_line": options.max_line}


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
    try_args: str = ""
    """Arguments for its client command in the hint ``serve`` prints (echo: ``hello``)."""
    takes: Callable[[ServiceOptions], Mapping[str, Any]] | None = None
    """The keyword arguments both factories take from ``ServiceOptions`` (None: none)."""

    def configured(self, options: ServiceOptions) -> ServiceInfo:
        """This service with the operator's options bound into its factories."""
        kwargs = self.takes(options) if self.takes is not None else {}
        if not kwargs:
            return self
        return replace(
            self,
            stream=functools.partial(self.stream, **kwargs) if self.stream else None,
            datagram=functools.partial(self.datagram, **kwargs) if self.datagram else None,
        )

    def default_port(self, port_base: int = DEFAULT_PORT_BASE) -> int:
        """Port base plus the well-known port; ``port_base=0`` gives the real one.

        A service with no well-known port (sum) moves with the base like the
        others, except at base 0, where it keeps its own default (10100)
        rather than landing on an unrelated privileged port.
        """
        if self.well_known_port is not None:
            return port_base + self.well_known_port
        assert self.fixed_default_port is not None
        if port_base == 0:
            return self.fixed_default_port
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
            try_args="hello",
        ),
        ServiceInfo(
            name="discard",
            summary="reads and throws away everything, answers nothing",
            rfc=863,
            well_known_port=9,
            stream=DiscardStream,
            datagram=DiscardDatagram,
        ),
        ServiceInfo(
            name="daytime",
            summary="one human-readable date-time line (UTC), then close",
            rfc=867,
            well_known_port=13,
            stream=DaytimeStream,
            datagram=DaytimeDatagram,
        ),
        ServiceInfo(
            name="qotd",
            summary="one quote under 512 characters, then close",
            rfc=865,
            well_known_port=17,
            stream=QotdStream,
            datagram=QotdDatagram,
            takes=_qotd_options,
        ),
        ServiceInfo(
            name="chargen",
            summary="72-character rotating lines until the client closes (UDP: 0-512 characters)",
            rfc=864,
            well_known_port=19,
            stream=ChargenStream,
            datagram=ChargenDatagram,
        ),
        ServiceInfo(
            name="time",
            summary="4 bytes: seconds since 1900-01-01 UTC, big-endian, then close",
            rfc=868,
            well_known_port=37,
            stream=TimeStream,
            datagram=TimeDatagram,
        ),
        ServiceInfo(
            name="sum",
            summary="adds two numbers per line, exactly (the lecture's homework)",
            rfc=None,
            well_known_port=None,
            stream=SumStream,
            datagram=SumDatagram,
            fixed_default_port=10100,
            try_args="2 3",
            takes=_sum_options,
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
