"""``serve -v`` narrates the server's socket calls the way the lecture lists them."""

from __future__ import annotations

import re
import signal
import socket

from tests.support import TIMEOUT, serve_process


def test_serve_v_shows_socket_setsockopt_bind_listen_accept_recv_send_close() -> None:
    with serve_process("echo", "--port", "0", "--no-udp", "-v", last="try:", merge_stderr=True) as (
        proc,
        reader,
    ):
        startup = "\n".join(reader.lines)
        calls = [
            re.search(pattern, startup)
            for pattern in (
                r"echo/tcp: socket\(AF_INET, SOCK_STREAM\) -> fd \d+",
                r"echo/tcp: setsockopt\(SOL_SOCKET, SO_REUSEADDR, 1\)",
                r"echo/tcp: bind\(\('127\.0\.0\.1', 0\)\): .*the kernel chose (\d+)",
                r"echo/tcp: listen\(backlog=\d+\)",
            )
        ]
        assert all(calls), startup
        # each narrated call says when it happened
        assert all(
            re.match(r"\d\d:\d\d:\d\d\.\d{3} echo/tcp", line)
            for line in reader.lines
            if "echo/tcp" in line and "(" in line
        ), startup
        # in the order the lecture gives them
        starts = [match.start() for match in calls if match]
        assert starts == sorted(starts)
        port = int(calls[2].group(1)) if calls[2] else 0
        endpoint = next(line for line in reader.lines if line.startswith("echo\ttcp\t"))
        assert endpoint.endswith(f":{port}\tIPv4")

        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"hello")
            assert client.recv(16) == b"hello"
            reader.until(lambda line: "accept() -> new socket fd" in line)
            reader.until(lambda line: "recv(): received 5 bytes" in line)
            reader.until(lambda line: "send(): sent 5 bytes" in line)
        reader.until(lambda line: "close(): client 127.0.0.1:" in line)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0


def test_serve_without_v_says_no_socket_calls() -> None:
    with serve_process("echo", "--port", "0", "--no-udp", last="try:", merge_stderr=True) as (
        proc,
        reader,
    ):
        assert not any("socket(" in line or "listen(" in line for line in reader.lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0


def test_serve_v_on_udp_shows_socket_bind_recvfrom_sendto() -> None:
    with serve_process("echo", "--port", "0", "--no-tcp", "-v", last="try:", merge_stderr=True) as (
        proc,
        reader,
    ):
        startup = "\n".join(reader.lines)
        assert re.search(r"echo/udp: socket\(AF_INET, SOCK_DGRAM\) -> fd \d+", startup), startup
        bound = re.search(
            r"echo/udp: bind\(\('127\.0\.0\.1', 0\)\): .*the kernel chose (\d+)", startup
        )
        assert bound, startup
        assert "listen(" not in startup  # UDP has no listen() and no accept()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT)
            client.sendto(b"hello", ("127.0.0.1", int(bound.group(1))))
            assert client.recv(16) == b"hello"
        reader.until(lambda line: "recvfrom(): a datagram of 5 bytes from 127.0.0.1:" in line)
        reader.until(lambda line: "sendto(): sent a datagram of 5 bytes to 127.0.0.1:" in line)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0


def test_serve_backlog_flag_reaches_listen() -> None:
    argv = ("echo", "--port", "0", "--no-udp", "-v", "--backlog", "7")
    with serve_process(*argv, last="try:", merge_stderr=True) as (proc, reader):
        assert any("listen(backlog=7)" in line for line in reader.lines), reader.lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
