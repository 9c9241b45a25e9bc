"""socketkit's echo on each fast path and relay experiment, for benchmarks/echo.py.

    python benchmarks/fastpaths.py udp-drain        runtime/udp.py UdpEndpoint (drain per wake-up)
    python benchmarks/fastpaths.py udp-drain-guard  the same behind serve's UdpGuard policy
    python benchmarks/fastpaths.py tcp-splice       benchmarks/relays.py SpliceRelay (zero-copy echo relay)
    python benchmarks/fastpaths.py tcp-copy         benchmarks/relays.py CopyRelay (shared-buffer echo relay)
    python benchmarks/fastpaths.py tcp-mirror       runtime/mirror.py MirrorConnection (transport relay)

Each serves echo (protocols/echo.py's EchoDatagram for UDP) with the
runtime's counters on uvloop (when installed), bound to 127.0.0.1 port 0,
and prints ``PORT n``. ``serve`` itself runs the draining endpoint behind
UdpGuard and, for echo, the mirror; the relays stay here so a benchmark can
compare the paths (splice and the copy relay are experiments that did not
beat the mirror). The old ``udp-endpoint`` mode (an asyncio
DatagramProtocol, runtime/datagram.py) went with that module in the runtime
refactor.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from socketkit.protocols.echo import EchoDatagram
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.limits import Limits
from socketkit.runtime.loop import loop_factory
from socketkit.runtime.mirror import MirrorConnection
from socketkit.runtime.stats import Counters
from socketkit.runtime.timers import LoopTimers, Timers
from socketkit.runtime.udp import ReplyPolicy, UdpEndpoint, allow_all

# relays.py sits beside this file: importable when run as a script (sys.path[0]
# is benchmarks/), and made importable when this module is loaded otherwise.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from relays import CopyRelay, SpliceRelay  # noqa: E402

MODES = ["udp-drain", "udp-drain-guard", "tcp-splice", "tcp-copy", "tcp-mirror"]


class Host:
    """The listener side a connection reports to (runtime/listener.py's Listener in production).

    It satisfies ``ConnectionHost`` (runtime/connection.py) for the mirror and
    ``RelayHost`` (benchmarks/relays.py) for the relays.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.limits = Limits(idle_timeout=None)
        self.counters = Counters()
        self.label = "echo/tcp"
        self.timers: Timers = LoopTimers(loop)
        self.narrate = False
        self.read_view = memoryview(bytearray(self.limits.read_chunk))
        self.open: set[object] = set()

    def connection_closed(self, conn: object) -> None:
        self.open.discard(conn)


async def start_mirror(
    loop: asyncio.AbstractEventLoop, mirror: MirrorConnection, conn: socket.socket
) -> None:
    """Put the loop's own transport under ``mirror``, as runtime/listener.py does."""
    await loop.connect_accepted_socket(lambda: mirror, conn)


def serve_relay(
    loop: asyncio.AbstractEventLoop, cls: type[SpliceRelay | CopyRelay] | None
) -> socket.socket:
    """Accept and hand each connection to ``cls`` (None: MirrorConnection)."""
    tasks: set[asyncio.Task[Any]] = set()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.setblocking(False)
    host = Host(loop)

    def on_accept() -> None:
        for _ in range(64):
            try:
                conn, addr = listener.accept()
            except BlockingIOError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if cls is None:
                conn.setblocking(False)
                mirror = MirrorConnection(host, f"{addr[0]}:{addr[1]}", addr[0])
                host.open.add(mirror)
                task = loop.create_task(start_mirror(loop, mirror, conn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                continue
            relay = cls(host, conn, f"{addr[0]}:{addr[1]}", addr[0])
            host.open.add(relay)
            relay.start()

    loop.add_reader(listener.fileno(), on_accept)
    return listener


async def serve(kind: str) -> None:
    loop = asyncio.get_running_loop()
    if kind in ("tcp-splice", "tcp-copy", "tcp-mirror"):
        relays = {"tcp-splice": SpliceRelay, "tcp-copy": CopyRelay, "tcp-mirror": None}
        listener = serve_relay(loop, relays[kind])
        print(f"PORT {listener.getsockname()[1]}", flush=True)
        stopped = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    policy: ReplyPolicy = UdpGuard(Limits()) if kind == "udp-drain-guard" else allow_all
    endpoint = UdpEndpoint(
        "echo/udp", sock, EchoDatagram(), time.time, counters=Counters(), policy=policy
    )
    endpoint.start()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    endpoint.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=MODES)
    parser.add_argument("--loop", default="auto")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(serve(args.kind))


if __name__ == "__main__":
    main()
