"""socketkit: the lecture's sockets made real: services, clients, explorers.

The public API is re-exported here; everything else is an implementation
detail that may move.
"""

from __future__ import annotations

from socketkit.client import (
    EchoResult,
    RelayOptions,
    RelayResult,
    connect_datagram,
    connect_stream,
    echo,
    relay,
)
from socketkit.endpoints import Endpoint, format_sockaddr, parse_endpoint
from socketkit.errors import (
    AddressInUse,
    AddressNotAvailable,
    ConnectionLost,
    ConnectionRefused,
    DataError,
    EchoMismatch,
    LocalProtocolError,
    NetworkError,
    PermissionDenied,
    ProtocolError,
    RemoteProtocolError,
    ResolveError,
    SocketkitError,
    TimedOut,
    Unreachable,
    UsageError,
)
from socketkit.explore import (
    address_info,
    classify_address,
    get_constants,
    host_info,
    list_ports,
    lookup_port,
)
from socketkit.protocols import (
    DatagramService,
    ServiceInfo,
    StreamProtocol,
    get_service,
    service_names,
)
from socketkit.runtime import (
    Binding,
    BoundEndpoint,
    Limits,
    Server,
    ServerStatistics,
    ServerThread,
    UdpGuard,
    loop_factory,
    plan_bindings,
    run,
    serve_in_thread,
)


def _version() -> str:
    """The installed distribution's version: one source of truth, pyproject.toml.

    Why metadata and not a literal: a literal drifts from the packaged
    version; "0+unknown" only when run from a tree that was never installed.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("socketkit")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()

__all__ = [
    "AddressInUse",
    "AddressNotAvailable",
    "Binding",
    "BoundEndpoint",
    "ConnectionLost",
    "ConnectionRefused",
    "DataError",
    "DatagramService",
    "EchoMismatch",
    "EchoResult",
    "Endpoint",
    "Limits",
    "LocalProtocolError",
    "NetworkError",
    "PermissionDenied",
    "ProtocolError",
    "RelayOptions",
    "RelayResult",
    "RemoteProtocolError",
    "ResolveError",
    "Server",
    "ServerStatistics",
    "ServerThread",
    "ServiceInfo",
    "SocketkitError",
    "StreamProtocol",
    "TimedOut",
    "UdpGuard",
    "Unreachable",
    "UsageError",
    "__version__",
    "address_info",
    "classify_address",
    "connect_datagram",
    "connect_stream",
    "echo",
    "format_sockaddr",
    "get_constants",
    "get_service",
    "host_info",
    "list_ports",
    "lookup_port",
    "loop_factory",
    "parse_endpoint",
    "plan_bindings",
    "relay",
    "run",
    "serve_in_thread",
    "service_names",
]
