"""Real engines for tests: HAProxy, xinetd and systemd-socket-activate on loopback.

Each context manager writes a generated config into a temporary directory,
starts the engine in the foreground, waits (bounded by ``TIMEOUT``) until it is
ready, yields an ``Engine`` and stops it by PID. When the binary is missing
the test is skipped with one stated reason (``make tools`` installs them).

Readiness never opens a connection (which would count as a client in the
server under test): HAProxy and xinetd are ready when every port their config
binds shows in /proc/net as listening (TCP) or bound (UDP);
systemd-socket-activate when it has printed one "Listening on" line per
``-l``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import TIMEOUT

__all__ = [
    "Engine",
    "free_port",
    "haproxy",
    "require",
    "socket_activate",
    "wait_bound",
    "xinetd",
]

_INSTALL_HINT = "(Debian package {package}; `make tools` installs it as root)"


def require(binary: str, package: str) -> str:
    """The binary's path, or skip the test with one stated reason."""
    path = shutil.which(binary) or next(
        (p for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(p := f"{d}/{binary}", os.X_OK)),
        None,
    )
    if path is None:
        pytest.skip(f"{binary} is not installed " + _INSTALL_HINT.format(package=package))
    return path


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the kernel just called free (bind port 0, read it, release it).

    Engines here cannot bind port 0 themselves and tell us; the small race
    this leaves is reported as "address in use" by the engine, not hidden.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Engine:
    """A running engine: its process, its directory, and what it printed."""

    process: subprocess.Popen[bytes]
    directory: Path
    output: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_line(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """The next output line matching ``pattern`` (regex), within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r}; output: {self.output}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"engine exited ({self.process.poll()}) before {pattern!r}; output: {self.output}"
                )
            match = re.search(pattern, line)
            if match:
                return match


def _start(argv: Sequence[str], directory: Path, env: dict[str, str] | None = None) -> Engine:
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=directory,
        env=env,
    )
    engine = Engine(process, directory)

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            engine.output.append(text)
            engine._lines.put(text)
        engine._lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return engine


def _stop(engine: Engine) -> None:
    """Stop by PID: SIGTERM, then SIGKILL after TIMEOUT."""
    process = engine.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TIMEOUT)
    if process.stdout is not None:
        process.stdout.close()


def _proc_ports(kind: socket.SocketKind) -> set[int]:
    """Local ports in LISTEN (TCP) or bound (UDP) state, from /proc/net."""
    names = ("tcp", "tcp6") if kind == socket.SOCK_STREAM else ("udp", "udp6")
    state = "0A" if kind == socket.SOCK_STREAM else "07"
    ports: set[int] = set()
    for name in names:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 3 and parts[3] == state:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def wait_bound(
    engine: Engine,
    tcp: Sequence[int] = (),
    udp: Sequence[int] = (),
    timeout: float = TIMEOUT,
) -> None:
    """Until every port is listening (TCP) / bound (UDP), polled every 20 ms, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        missing_tcp = set(tcp) - _proc_ports(socket.SOCK_STREAM)
        missing_udp = set(udp) - _proc_ports(socket.SOCK_DGRAM)
        if not missing_tcp and not missing_udp:
            return
        if engine.process.poll() is not None:
            raise AssertionError(
                f"engine exited with {engine.process.returncode}; output: {engine.output}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not bound within {timeout}s: tcp {sorted(missing_tcp)}, udp {sorted(missing_udp)}; "
                f"output: {engine.output}"
            )
        time.sleep(0.02)  # polling the kernel's table, not synchronising with a peer


_BIND = re.compile(r"^\s*bind\s+\S*:(\d+)", re.MULTILINE)


@contextlib.contextmanager
def haproxy(config_text: str) -> Iterator[Engine]:
    """HAProxy in the foreground (-db) with ``config_text``; ready when every
    ``bind ...:PORT`` of the config listens."""
    binary = require("haproxy", "haproxy")
    with tempfile.TemporaryDirectory(prefix="socketkit-haproxy-") as tmp:
        directory = Path(tmp)
        cfg = directory / "haproxy.cfg"
        cfg.write_text(config_text)
        check = subprocess.run(
            [binary, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert check.returncode == 0, f"haproxy -c refused the config: {check.stdout}{check.stderr}"
        engine = _start([binary, "-f", str(cfg), "-db"], directory)
        try:
            wait_bound(engine, tcp=[int(p) for p in _BIND.findall(config_text)])
            yield engine
        finally:
            _stop(engine)


_XINETD_SERVICE = re.compile(r"service\s+\S+\s*\{(.*?)\}", re.DOTALL)


@contextlib.contextmanager
def xinetd(config_text: str) -> Iterator[Engine]:
    """xinetd in the foreground (-dontfork) with ``config_text``; ready when
    every service's ``port`` is bound (``socket_type = dgram`` means UDP)."""
    binary = require("xinetd", "xinetd")
    with tempfile.TemporaryDirectory(prefix="socketkit-xinetd-") as tmp:
        directory = Path(tmp)
        cfg = directory / "xinetd.conf"
        cfg.write_text(config_text)
        tcp: list[int] = []
        udp: list[int] = []
        for body in _XINETD_SERVICE.findall(config_text):
            port = re.search(r"^\s*port\s*=\s*(\d+)", body, re.MULTILINE)
            if port:
                (udp if re.search(r"socket_type\s*=\s*dgram", body) else tcp).append(
                    int(port.group(1))
                )
        engine = _start(
            [binary, "-dontfork", "-f", str(cfg), "-pidfile", str(directory / "xinetd.pid")],
            directory,
        )
        try:
            wait_bound(engine, tcp=tcp, udp=udp)
            yield engine
        finally:
            _stop(engine)


@contextlib.contextmanager
def socket_activate(
    args: Sequence[str], command: Sequence[str], env: dict[str, str] | None = None
) -> Iterator[Engine]:
    """``systemd-socket-activate ARGS COMMAND``; ready when it listens on every ``-l``.

    Like systemd with ``Accept=no`` it starts ``command`` at the first
    connection or datagram, passing the sockets as LISTEN_FDS (use ``-E VAR``
    to pass variables such as NOTIFY_SOCKET to the command). ``env`` is the
    engine's own environment. The command's output is merged into
    ``Engine.output``.
    """
    binary = require("systemd-socket-activate", "systemd")
    listens = sum(1 for a in args if a == "-l" or a.startswith(("-l", "--listen")))
    with tempfile.TemporaryDirectory(prefix="socketkit-activate-") as tmp:
        engine = _start([binary, *args, *command], Path(tmp), env=env)
        try:
            for _ in range(listens):
                engine.wait_line(r"^Listening on ")
            yield engine
        finally:
            _stop(engine)
