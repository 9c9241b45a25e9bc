"""socketkit's UDP echo on each datagram path, for benchmarks/echo.py.

    python benchmarks/fastpaths.py udp-endpoint   runtime/datagram.py (asyncio DatagramProtocol)
    python benchmarks/fastpaths.py udp-drain      runtime/udp_drain.py (drain per wake-up)
    python benchmarks/fastpaths.py udp-drain-guard  the same behind serve's UdpGuard policy
    python benchmarks/fastpaths.py tcp-splice     runtime/splice.py SpliceRelay (zero-copy echo relay)
    python benchmarks/fastpaths.py tcp-copy       runtime/splice.py CopyRelay (shared-buffer echo relay)
    python benchmarks/fastpaths.py tcp-mirror     runtime/splice.py MirrorConnection (transport relay)

Both serve protocols/echo.py's EchoDatagram with the runtime's counters on
uvloop (when installed), bound to 127.0.0.1 port 0, and print ``PORT n``.
``serve`` itself now runs the draining endpoint behind UdpGuard and, for
echo, the mirror; the others stay here so a benchmark can compare the paths
(splice and the copy relay are experiments that did not beat the mirror).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import time
from typing import Any

from socketkit.protocols.echo import EchoDatagram
from socketkit.runtime.datagram import DatagramEndpoint, allow_all
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.limits import Limits
from socketkit.runtime.loop import loop_factory
from socketkit.runtime.splice import CopyRelay, MirrorConnection, SpliceRelay
from socketkit.runtime.stats import Counters
from socketkit.runtime.udp_drain import DrainingDatagramEndpoint


class Host:
    """The listener side the relay reports to (the server's _Listener in production)."""

    def __init__(self) -> None:
        self.limits = Limits(idle_timeout=None)
        self.counters = Counters()
        self.label = "echo/tcp"
        self.open: set[SpliceRelay | CopyRelay | MirrorConnection] = set()

    def connection_closed(self, conn: SpliceRelay | CopyRelay | MirrorConnection) -> None:
        self.open.discard(conn)


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
    host = Host()

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
                task = loop.create_task(loop.connect_accepted_socket(lambda m=mirror: m, conn))
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
    counters = Counters()
    close: object
    if kind in ("udp-drain", "udp-drain-guard"):
        policy = UdpGuard(Limits()) if kind == "udp-drain-guard" else allow_all
        endpoint = DrainingDatagramEndpoint(
            "echo/udp", sock, EchoDatagram(), counters, time.time, policy=policy
        )
        endpoint.start()
        close = endpoint.close
    else:
        proto = DatagramEndpoint("echo/udp", EchoDatagram(), counters, time.time)
        transport, _ = await loop.create_datagram_endpoint(lambda: proto, sock=sock)
        close = transport.close
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    close()  # type: ignore[operator]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "kind",
        choices=[
            "udp-endpoint",
            "udp-drain",
            "udp-drain-guard",
            "tcp-splice",
            "tcp-copy",
            "tcp-mirror",
        ],
    )
    parser.add_argument("--loop", default="auto")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(serve(args.kind))


if __name__ == "__main__":
    main()
