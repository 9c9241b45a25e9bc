"""``serve --proxy-protocol`` in the runtime: the real client everywhere, bad headers closed and counted.

Each bad input of issue 12 has its test: a header from an untrusted source,
a malformed one, a truncated one (the client closes), an oversized one, a v2
header announcing a length it never sends (the timeout), and a header split
across many small writes (accepted). Each bad client is closed without
touching a good client served at the same time.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
from collections.abc import Iterator

import pytest

from socketkit import Limits, serve_in_thread
from socketkit.logs import configure_access_log
from socketkit.protocols.proxy import V2_SIGNATURE, encode_v1, encode_v2
from socketkit.runtime import ServerThread
from socketkit.runtime.timers import ManualTimers
from tests.support import TIMEOUT, recv_exactly, wait_until

PROXY = Limits(proxy_protocol=True, proxy_timeout=0.5)


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_access_log(stream)
    try:
        yield stream
    finally:
        configure_access_log(None)


@contextlib.contextmanager
def proxied(service: str = "echo", limits: Limits = PROXY) -> Iterator[tuple[ServerThread, int]]:
    with serve_in_thread(service, udp=False, limits=limits) as server:
        port = server.address(service).port
        assert port is not None
        yield server, port


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def _closed(sock: socket.socket) -> bool:
    """True once the server closed the connection (FIN, or RST for unread bytes)."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def _wait_for(stream: io.StringIO, text: str) -> str:
    wait_until(lambda: text in stream.getvalue(), f"{text!r} in the access log")
    return stream.getvalue()


def _echo(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    assert recv_exactly(sock, len(data)) == data


def test_v2_header_split_in_single_bytes_names_the_client(access_log: io.StringIO) -> None:
    with proxied() as (_, port), _connect(port) as client:
        for byte in encode_v2(("203.0.113.7", 4242), ("127.0.0.1", port)):
            client.sendall(bytes([byte]))
        _echo(client, b"hello")
        client.shutdown(socket.SHUT_WR)
        assert client.recv(10) == b""
    assert "echo/tcp 203.0.113.7:4242 in=5 out=5 " in _wait_for(access_log, "203.0.113.7")


@pytest.mark.parametrize("service", ["echo", "sum"])
def test_v1_header_with_the_first_request_in_the_same_write(service: str) -> None:
    """Bytes after the header in one read reach the service (mirror and stream adapters)."""
    request, reply = (b"ping", b"ping") if service == "echo" else (b"2 3\n", b"5\n")
    with proxied(service) as (_, port), _connect(port) as client:
        client.sendall(encode_v1(("198.51.100.1", 1000), ("127.0.0.1", port)) + request)
        assert recv_exactly(client, len(reply)) == reply


def test_v2_local_health_check_is_served_as_the_balancer(access_log: io.StringIO) -> None:
    with proxied() as (_, port), _connect(port) as client:
        client.sendall(encode_v2(command="LOCAL") + b"check")
        assert recv_exactly(client, 5) == b"check"
        own = client.getsockname()[1]
    assert f"echo/tcp 127.0.0.1:{own} in=5 out=5 " in _wait_for(access_log, f":{own} ")


BAD = {
    "malformed": (b"GET / HTTP/1.1\r\n\r\n", "proxy_invalid"),
    "oversized": (V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", 65535), "proxy_invalid"),
    "v1-too-long": (b"PROXY TCP4 " + b"1" * 200 + b"\r\n", "proxy_invalid"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_header_is_closed_counted_and_others_unaffected(name: str) -> None:
    data, counter = BAD[name]
    with proxied() as (server, port), _connect(port) as good:
        good.sendall(encode_v2(("192.0.2.1", 1), ("127.0.0.1", port)))
        with _connect(port) as bad:
            bad.sendall(data)
            assert _closed(bad)
        _echo(good, b"still here")
        stats = server.statistics()
    assert getattr(stats, counter) == 1
    assert stats.connections_served == 1


def test_truncated_header_then_close_is_counted_missing(access_log: io.StringIO) -> None:
    with proxied() as (server, port):
        with _connect(port) as client:
            client.sendall(encode_v2(("192.0.2.1", 1), ("127.0.0.1", port))[:20])
            client.shutdown(socket.SHUT_WR)
            assert _closed(client)
        assert server.statistics().proxy_missing == 1
    assert "ended=proxy_rejected" in access_log.getvalue()


def test_v2_length_announced_but_not_sent_times_out() -> None:
    # On virtual time: the header's deadline is proxy_timeout exactly, no real wait.
    clock = ManualTimers()
    limits = Limits(proxy_protocol=True, proxy_timeout=5.0)
    with serve_in_thread("echo", udp=False, limits=limits, timers=clock) as server:
        port = server.address("echo").port
        assert port is not None
        with _connect(port) as client:
            header = encode_v2(("192.0.2.1", 1), ("127.0.0.1", port))
            client.sendall(header[:-4])  # the address block is 4 bytes short, the client waits
            wait_until(lambda: server.call(lambda: clock.pending), "the header's deadline")
            server.call(lambda: clock.advance(4.99))
            assert server.statistics().proxy_missing == 0
            server.call(lambda: clock.advance(0.01))
            assert server.statistics().proxy_missing == 1  # at exactly proxy_timeout
            assert _closed(client)


def test_a_header_from_an_untrusted_source_is_refused() -> None:
    limits = Limits(proxy_protocol=True, proxy_from=("192.0.2.0/24",))
    with proxied(limits=limits) as (server, port), _connect(port) as client:
        client.sendall(encode_v2(("198.51.100.1", 1234), ("127.0.0.1", port)) + b"hi")
        assert _closed(client)
        assert server.statistics().proxy_untrusted == 1


def test_per_source_cap_counts_the_real_client() -> None:
    limits = Limits(proxy_protocol=True, max_connections_per_source=1)
    with proxied(limits=limits) as (server, port):
        header = encode_v1(("198.51.100.1", 1), ("127.0.0.1", port))
        with _connect(port) as first, _connect(port) as second, _connect(port) as other:
            first.sendall(header)
            _echo(first, b"a")
            second.sendall(header)  # same real client: over the cap
            assert _closed(second)
            other.sendall(encode_v1(("198.51.100.2", 1), ("127.0.0.1", port)))
            _echo(other, b"b")  # another client behind the same balancer is served
        assert server.statistics().connections_refused == 1


def test_silent_connections_from_outside_proxy_from_cannot_fill_the_table() -> None:
    # They used to wait for their first byte (or proxy_timeout) holding a slot each:
    # four silent loopback sockets shut out the balancer. Now they close at accept.
    limits = Limits(proxy_protocol=True, proxy_from=("10.0.0.5/32",), max_connections=4)
    with proxied(limits=limits) as (server, port):
        silent = [_connect(port) for _ in range(6)]
        try:
            assert all(_closed(sock) for sock in silent)
        finally:
            for sock in silent:
                sock.close()
        stats = server.statistics()
        assert (stats.proxy_untrusted, stats.connections_refused) == (6, 0)
