"""The one server runtime: asyncio (uvloop when installed) under every service."""

from __future__ import annotations

from socketkit.runtime.bind import Binding, BoundEndpoint, plan_bindings
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.limits import Limits
from socketkit.runtime.loop import LOOP_NAMES, loop_factory, loop_name, run
from socketkit.runtime.server import Server
from socketkit.runtime.stats import ServerStatistics
from socketkit.runtime.thread import ServerThread, serve_in_thread
from socketkit.runtime.timers import LoopTimers, ManualTimers, Timers

__all__ = [
    "LOOP_NAMES",
    "Binding",
    "BoundEndpoint",
    "Limits",
    "LoopTimers",
    "ManualTimers",
    "Server",
    "ServerStatistics",
    "ServerThread",
    "Timers",
    "UdpGuard",
    "loop_factory",
    "loop_name",
    "plan_bindings",
    "run",
    "serve_in_thread",
]
