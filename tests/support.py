"""Test support: the timeout unit and small socket helpers (all loopback, all with timeouts)."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

from socketkit.protocols import OutputBuffer, StreamProtocol

TIMEOUT = 10.0 * float(os.environ.get("SOCKETKIT_TEST_TIMEOUT_FACTOR", "1"))
"""Seconds any single network wait in a test may take (scale it on slow machines)."""

PY = [sys.executable, "-m", "socketkit"]
"""The command line that runs socketkit from this environment."""


def wait_until(condition: Callable[[], object], what: str, *, every: float = 0.01) -> None:
    """Poll ``condition`` until it is true, at most ``TIMEOUT`` seconds; else fail naming ``what``.

    For state we cannot be signalled about (another process, another
    thread, the kernel's tables): a bounded poll, never a fixed sleep.
    """
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Blocking read of exactly n bytes (the socket must have a timeout)."""
    assert sock.gettimeout() is not None, "a timeout is required"
    out = bytearray()
    while len(out) < n:
        data = sock.recv(min(65536, n - len(out)))
        if not data:
            break
        out += data
    return bytes(out)


def recv_until_eof(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> bytes:
    assert sock.gettimeout() is not None, "a timeout is required"
    out = bytearray()
    while len(out) <= limit:
        data = sock.recv(65536)
        if not data:
            return bytes(out)
        out += data
    raise AssertionError("peer sent more than the limit")


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback TCP port where nobody listens, kept reserved while in use."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


@contextlib.contextmanager
def stalled_listener() -> Iterator[tuple[str, int]]:
    """A listener whose accept queue is full: a new connect() hangs (SYNs are dropped).

    This gives a slow address on loopback, to race against, without sending
    anything anywhere else.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        addr = listener.getsockname()
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(addr)
            fillers.append(s)
        yield addr
    finally:
        for s in fillers:
            s.close()
        listener.close()


def client(addr: tuple[str, int] | str, family: int = socket.AF_INET) -> socket.socket:
    if isinstance(addr, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(addr)
    return sock


class ReplyThenClose(StreamProtocol):
    """A test service that answers at once and is done, whatever the client sends.

    Like daytime; subclass and set ``REPLY`` for another answer.
    """

    REPLY = b"the answer\r\n"

    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._out = OutputBuffer()
        self._out.append(self.REPLY)

    def _on_data(self, data: bytes) -> None:
        pass

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        return not self._out


class LineReader:
    """Reads a child's output line by line, waiting (with a deadline) for a line."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.lines: list[str] = []
        self._fd = proc.stdout.fileno()
        self._buffer = b""
        self._next = 0
        """Lines before this one were looked at by an earlier ``until``."""

    def until(self, wanted: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """Read until a new line for which ``wanted`` is true; return it.

        Each call starts after the line the previous call returned, so
        waiting twice for the same kind of line waits for a second one.
        """
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self._fd, selectors.EVENT_READ)
            while True:
                for index in range(self._next, len(self.lines)):
                    if wanted(self.lines[index]):
                        self._next = index + 1
                        return self.lines[index]
                self._next = len(self.lines)
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no such line in time; got {self.lines}"
                if not sel.select(remaining):
                    continue
                chunk = os.read(self._fd, 65536)
                assert chunk, f"the process exited ({self.proc.wait(TIMEOUT)}): {self.lines}"
                self._buffer += chunk
                *complete, rest = self._buffer.split(b"\n")
                self._buffer = rest
                self.lines += [line.decode() for line in complete]


@contextlib.contextmanager
def serve_process(
    *argv: str, last: str, merge_stderr: bool = False, new_session: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], LineReader]]:
    """Start ``socketkit serve``; yield it once it printed a line starting with ``last``.

    Endpoint lines are tab-separated when piped. ``merge_stderr`` sends
    stderr (the "try:" hint, the workers' pids, -v narration) to the same
    reader, in order. ``new_session`` gives it a process group of its own
    (its pid is the group id), to signal as a service manager would.
    """
    stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
    proc = subprocess.Popen(
        [*PY, "serve", *argv],
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=new_session,
    )
    try:
        reader = LineReader(proc)
        reader.until(lambda line: line.startswith(last))
        yield proc, reader
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@contextlib.contextmanager
def one_shot_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback TCP server for one connection, scripted by ``answer(conn)``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes accept() if nobody came
        thread.join(TIMEOUT)
        listener.close()
    assert not thread.is_alive()
