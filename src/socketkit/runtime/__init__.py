"""The one server runtime: asyncio (uvloop when installed) under every service."""

from __future__ import annotations

from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.limits import Limits
from socketkit.runtime.loop import LOOP_NAMES, loop_factory, loop_name, run
from socketkit.runtime.server import Binding, BoundEndpoint, Server, plan_bindings
from socketkit.runtime.stats import ServerStatistics
from socketkit.runtime.thread import ServerThread, serve_in_thread

__all__ = [
    "LOOP_NAMES",
    "Binding",
    "BoundEndpoint",
    "Limits",
    "Server",
    "ServerStatistics",
    "ServerThread",
    "UdpGuard",
    "loop_factory",
    "loop_name",
    "plan_bindings",
    "run",
    "serve_in_thread",
]
