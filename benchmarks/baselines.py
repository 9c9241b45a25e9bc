"""Baseline echo servers for benchmarks/echo.py: the Python peers socketkit must beat.

Each binds TCP on 127.0.0.1 port 0 (and UDP on the same port where it has a
UDP form), prints ``PORT <n>`` on stdout, and serves until SIGTERM/SIGINT.

    python benchmarks/baselines.py streams  --loop uvloop   asyncio streams
    python benchmarks/baselines.py protocol --loop uvloop   asyncio Protocol + DatagramProtocol
    python benchmarks/baselines.py protocol --loop rloop    the same on rloop (the Rust loop)
    python benchmarks/baselines.py protocol --loop asyncio  the same on the stock loop
    python benchmarks/baselines.py selectors                a minimal selectors loop (TCP + UDP)
    python benchmarks/baselines.py copyloop                 a plain recv_into/send copy loop,
                                                            one thread per connection (TCP)

They are written the way a competent person would write a fast echo server
in each style, no slower: large reads, no per-message logging, TCP_NODELAY.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import selectors
import signal
import socket
import sys
import threading
from typing import Any

CHUNK = 256 * 1024


def bind_pair(udp: bool) -> tuple[socket.socket, socket.socket | None]:
    """A TCP listener on port 0 and, when asked, a UDP socket on the same port."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4096)
        if not udp:
            return tcp, None
        dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            dgram.bind(("127.0.0.1", tcp.getsockname()[1]))
        except OSError as exc:
            dgram.close()
            tcp.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        return tcp, dgram
    raise SystemExit("no port free for both TCP and UDP")


def announce(sock: socket.socket) -> None:
    print(f"PORT {sock.getsockname()[1]}", flush=True)


# -- asyncio ------------------------------------------------------------------------


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class EchoDatagram(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


async def handle_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve_asyncio(kind: str) -> None:
    loop = asyncio.get_running_loop()
    tcp, dgram = bind_pair(udp=kind == "protocol")
    port = tcp.getsockname()[1]  # read now: rloop takes the socket over
    if kind == "streams":
        server = await asyncio.start_server(handle_stream, sock=tcp)
    else:
        server = await loop.create_server(EchoProtocol, sock=tcp)
    if dgram is not None:
        await loop.create_datagram_endpoint(EchoDatagram, sock=dgram)
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


# -- selectors ----------------------------------------------------------------------


def serve_selectors() -> None:
    tcp, dgram = bind_pair(udp=True)
    assert dgram is not None
    tcp.setblocking(False)
    dgram.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(tcp, selectors.EVENT_READ, "accept")
    sel.register(dgram, selectors.EVENT_READ, "udp")
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    pending: dict[socket.socket, bytes] = {}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    announce(tcp)
    try:
        while not stopping:
            for key, mask in sel.select(0.5):
                what = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if what == "accept":
                    for _ in range(64):
                        try:
                            conn, _ = tcp.accept()
                        except BlockingIOError:
                            break
                        conn.setblocking(False)
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        sel.register(conn, selectors.EVENT_READ, "conn")
                elif what == "udp":
                    for _ in range(64):  # drain what is ready, bounded
                        try:
                            n, addr = dgram.recvfrom_into(buf)
                        except BlockingIOError:
                            break
                        try:
                            dgram.sendto(view[:n], addr)
                        except BlockingIOError:
                            pass
                elif mask & selectors.EVENT_WRITE:
                    data = pending.pop(sock)
                    try:
                        sent = sock.send(data)
                    except OSError:
                        sel.unregister(sock)
                        sock.close()
                        continue
                    if sent < len(data):
                        pending[sock] = data[sent:]
                    else:
                        sel.modify(sock, selectors.EVENT_READ, "conn")
                else:
                    try:
                        n = sock.recv_into(buf)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        n = 0
                    if n == 0:
                        sel.unregister(sock)
                        sock.close()
                        continue
                    try:
                        sent = sock.send(view[:n])
                    except BlockingIOError:
                        sent = 0
                    except OSError:
                        sel.unregister(sock)
                        sock.close()
                        continue
                    if sent < n:
                        # Back-pressure: stop reading until the rest is written.
                        pending[sock] = bytes(view[sent:n])
                        sel.modify(sock, selectors.EVENT_WRITE, "conn")
    except KeyboardInterrupt:
        pass


# -- plain copy loop ----------------------------------------------------------------


def serve_copyloop() -> None:
    tcp, _ = bind_pair(udp=False)
    announce(tcp)

    def copy(conn: socket.socket) -> None:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with conn:
            try:
                while n := conn.recv_into(buf):
                    conn.sendall(view[:n])
            except OSError:
                pass

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            conn, _ = tcp.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=copy, args=(conn,), daemon=True).start()
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["streams", "protocol", "selectors", "copyloop"])
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "rloop"], default="uvloop")
    args = parser.parse_args()
    if args.kind == "selectors":
        serve_selectors()
    elif args.kind == "copyloop":
        serve_copyloop()
    else:
        factory = asyncio.new_event_loop
        if args.loop == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        elif args.loop == "rloop":  # the Rust event loop (pip install 'socketkit[rloop]')
            import rloop

            factory = rloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve_asyncio(args.kind))


if __name__ == "__main__":
    main()
