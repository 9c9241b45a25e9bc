"""runtime/mmsg.py: batched UDP receive/send through recvmmsg/sendmmsg (Linux).

Real sockets on loopback; no waiting on the network except reading replies a
test sent itself, each with a TIMEOUT. Datagrams sent over loopback are
queued on the receiving socket before ``sendto`` returns, so a receive right
after the sends finds them all (no sleeps).
"""

from __future__ import annotations

import ctypes
import errno
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from socketkit.runtime import mmsg
from socketkit.runtime.mmsg import MmsgSocket, decode_sockaddr, encode_sockaddr
from tests.support import TIMEOUT

pytestmark = pytest.mark.skipif(
    not mmsg.available(), reason="recvmmsg/sendmmsg exist on Linux only"
)


def bound(family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def make(made: list[socket.socket], family: int, host: str) -> socket.socket:
    sock = bound(family, host)
    made.append(sock)
    return sock


def client_for(made: list[socket.socket], family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(TIMEOUT)
    made.append(sock)
    return sock


FAMILIES = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]


def test_available_only_for_inet_datagram_sockets(sockets: list[socket.socket]) -> None:
    assert mmsg.available() is sys.platform.startswith("linux")
    udp = make(sockets, socket.AF_INET, "127.0.0.1")
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sockets.extend([tcp, unix])
    assert mmsg.available(udp)
    assert not mmsg.available(tcp)
    assert not mmsg.available(unix)
    with pytest.raises(ValueError, match="datagram socket"):
        MmsgSocket(tcp)
    with pytest.raises(ValueError, match="slots"):
        MmsgSocket(udp, slots=1)


@pytest.mark.parametrize(("family", "host"), FAMILIES)
@pytest.mark.parametrize("adaptive", [True, False])
def test_addresses_equal_what_recvfrom_gives(
    sockets: list[socket.socket], family: int, host: str, adaptive: bool
) -> None:
    plain = make(sockets, family, host)
    batched = make(sockets, family, host)
    clients = [client_for(sockets, family, host) for _ in range(5)]
    for i, client in enumerate(clients):
        client.sendto(b"p%d" % i, plain.getsockname())
        client.sendto(b"b%d" % i, batched.getsockname())
    expected = [plain.recvfrom(100) for _ in clients]
    got = MmsgSocket(batched, adaptive=adaptive).receive()
    assert got.payloads == [b"b%d" % i for i in range(5)]
    assert got.addresses == [addr for _, addr in expected]
    assert [type(a) for a in got.addresses] == [tuple] * 5
    assert len(got.addresses[0]) == (2 if family == socket.AF_INET else 4)


def test_v4_mapped_sources_on_an_ipv6_socket(sockets: list[socket.socket]) -> None:
    plain = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    batched = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sockets.extend([plain, batched])
    for sock in (plain, batched):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::ffff:127.0.0.1", 0))
        sock.setblocking(False)
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    client.sendto(b"x", ("127.0.0.1", plain.getsockname()[1]))
    client.sendto(b"y", ("127.0.0.1", batched.getsockname()[1]))
    client.sendto(b"z", ("127.0.0.1", batched.getsockname()[1]))
    _, expected = plain.recvfrom(10)
    got = MmsgSocket(batched, adaptive=False).receive()
    assert got.payloads == [b"y", b"z"]
    assert got.addresses == [expected, expected]
    assert expected[0] == "::ffff:127.0.0.1"


@pytest.mark.parametrize("adaptive", [True, False])
def test_empty_and_largest_datagrams(sockets: list[socket.socket], adaptive: bool) -> None:
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    largest = bytes(range(256)) * 255 + bytes(range(227))  # 65,507 bytes, the IPv4 maximum
    assert len(largest) == 65507
    for payload in (b"", largest, b"", b"after"):
        client.sendto(payload, server.getsockname())
    batcher = MmsgSocket(server, adaptive=adaptive)
    got = batcher.receive()
    assert got.payloads == [b"", largest, b"", b"after"]
    assert got.truncated == 0
    for payload, addr in zip(got.payloads, got.addresses, strict=True):
        batcher.queue(payload, addr)
    flushed = batcher.flush()
    assert (flushed.sent, flushed.bytes_sent, flushed.dropped) == (4, 65507 + 5, [])
    assert [client.recv(65536) for _ in range(4)] == [b"", largest, b"", b"after"]


@pytest.mark.parametrize("adaptive", [True, False])
def test_datagrams_longer_than_a_slot_are_counted_and_left_out(
    sockets: list[socket.socket], adaptive: bool
) -> None:
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    batcher = MmsgSocket(server, slot_size=100, adaptive=adaptive)
    # first alone (the plain start when adaptive), then inside a batch
    client.sendto(b"L" * 101, server.getsockname())
    got = batcher.receive()
    assert (got.payloads, got.truncated) == ([], 1)
    for payload in (b"a" * 100, b"L" * 150, b"b"):
        client.sendto(payload, server.getsockname())
    got = batcher.receive()
    if not got.payloads:  # the adaptive plain start refuses a lone long first one
        got = batcher.receive()
    assert got.payloads == [b"a" * 100, b"b"]
    assert got.truncated == 1
    assert len(got.addresses) == 2


def test_adaptive_switches_with_the_load(sockets: list[socket.socket]) -> None:
    """A wake-up (calls up to ``drained``) that read more than one makes the next start batched."""
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    to = server.getsockname()
    batcher = MmsgSocket(server)
    assert not batcher.hot
    got = batcher.receive()
    assert (got.payloads, got.drained) == ([], True)
    client.sendto(b"1", to)
    got = batcher.receive()  # recvfrom_into, then a recvmmsg probe that finds nothing
    assert (got.payloads, got.drained) == ([b"1"], True)
    assert not batcher.hot and batcher.batched_calls == 0
    for i in range(5):
        client.sendto(b"%d" % i, to)
    got = batcher.receive()  # recvfrom_into gets one, the probe the other four
    assert (got.payloads, got.drained) == ([b"0", b"1", b"2", b"3", b"4"], False)
    assert batcher.batched_calls == 1
    assert batcher.receive().drained
    assert batcher.hot  # five in that wake-up: the next starts with recvmmsg
    for i in range(3):
        client.sendto(b"%d" % i, to)
    got = batcher.receive()
    assert (got.payloads, got.drained) == ([b"0", b"1", b"2"], False)
    assert batcher.batched_calls == 2
    assert batcher.receive().drained and batcher.hot
    client.sendto(b"x", to)
    assert batcher.receive().payloads == [b"x"]
    assert batcher.receive().drained
    assert not batcher.hot  # a wake-up that found one goes back to the plain start
    client.sendto(b"y", to)
    assert batcher.receive() == ([b"y"], [client.getsockname()], 0, 0, True)
    assert batcher.batched_calls == 3


def test_always_batched_when_not_adaptive(sockets: list[socket.socket]) -> None:
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    batcher = MmsgSocket(server, adaptive=False)
    for _ in range(3):
        client.sendto(b"one", server.getsockname())
        assert batcher.receive().payloads == [b"one"]
        assert batcher.receive().drained and batcher.hot
    assert batcher.batched_calls == 3


def test_more_than_slots_are_read_over_several_calls(sockets: list[socket.socket]) -> None:
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    batcher = MmsgSocket(server, slots=4, adaptive=False)
    for i in range(10):
        client.sendto(b"%d" % i, server.getsockname())
    seen: list[bytes] = []
    for _ in range(5):
        seen += batcher.receive().payloads
    assert seen == [b"%d" % i for i in range(10)]


def test_the_address_cache_is_bounded_and_stays_right(
    sockets: list[socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mmsg, "MAX_CACHED_ADDRESSES", 2)
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    clients = [client_for(sockets, socket.AF_INET, "127.0.0.1") for _ in range(5)]
    batcher = MmsgSocket(server, adaptive=False)
    for _ in range(2):
        for client in clients:
            client.sendto(b"hi", server.getsockname())
        got = batcher.receive()
        assert got.addresses == [c.getsockname() for c in clients]
        assert len(batcher._to_tuple) <= 2


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_replies_reach_each_source(sockets: list[socket.socket], family: int, host: str) -> None:
    server = make(sockets, family, host)
    clients = [client_for(sockets, family, host) for _ in range(6)]
    batcher = MmsgSocket(server, slots=4, adaptive=False)
    for i, client in enumerate(clients):
        client.sendto(b"q%d" % i, server.getsockname())
    received: list[tuple[bytes, Any]] = []
    for _ in range(3):
        got = batcher.receive()
        received += zip(got.payloads, got.addresses, strict=True)
    for payload, addr in received:  # 12 replies through 4 slots: three sendmmsg chunks
        batcher.queue(b"r" + payload, addr)
        batcher.queue(b"s" + payload, addr)
    assert batcher.queued == 12
    flushed = batcher.flush()
    assert (flushed.sent, flushed.dropped) == (12, [])
    assert batcher.queued == 0
    for i, client in enumerate(clients):
        assert [client.recv(100) for _ in range(2)] == [b"rq%d" % i, b"sq%d" % i]


def test_replies_to_addresses_never_received_from(sockets: list[socket.socket]) -> None:
    server = make(sockets, socket.AF_INET6, "::1")
    a = client_for(sockets, socket.AF_INET6, "::1")
    b = client_for(sockets, socket.AF_INET6, "::1")
    batcher = MmsgSocket(server)
    batcher.queue(b"to a", a.getsockname()[:2])  # a 2-tuple is fine for IPv6, as for sendto
    batcher.queue(b"to b", ("::1", b.getsockname()[1], 0, 0))
    assert batcher.flush().sent == 2
    assert a.recvfrom(100) == (b"to a", server.getsockname())
    assert b.recv(100) == b"to b"


def test_send_errors_skip_one_datagram_and_go_on(sockets: list[socket.socket]) -> None:
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    batcher = MmsgSocket(server, slot_size=70000)
    to = client.getsockname()
    too_long_for_ipv4 = bytes(65508)  # fits the slot; the kernel refuses it (EMSGSIZE)
    too_long_for_slot = bytes(70001)
    batcher.queue(b"one", to)
    batcher.queue(too_long_for_ipv4, to)
    batcher.queue(b"two", ("no such host", 9))
    batcher.queue(too_long_for_slot, to)
    batcher.queue(b"three", to)
    flushed = batcher.flush()
    assert (flushed.sent, flushed.bytes_sent) == (2, 8)
    assert sorted((len(d.payload), d.errno) for d in flushed.dropped) == sorted(
        [(65508, errno.EMSGSIZE), (3, errno.EAFNOSUPPORT), (70001, errno.EMSGSIZE)]
    )
    assert [client.recv(100) for _ in range(2)] == [b"one", b"three"]


def test_a_full_send_buffer_drops_the_rest(sockets: list[socket.socket]) -> None:
    """EAGAIN from sendmmsg after part went: the rest is dropped, not queued (UDP)."""
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    batcher = MmsgSocket(server)
    real = batcher._sendmmsg
    calls: list[int] = []

    def one_then_full(fd: int, headers: Any, count: int, flags: int) -> int:
        calls.append(count)
        if len(calls) == 1:
            return int(real(fd, headers, 1, flags))  # the first really goes
        ctypes.set_errno(errno.EAGAIN)
        return -1

    batcher._sendmmsg = one_then_full
    for i in range(4):
        batcher.queue(b"%d" % i, client.getsockname())
    flushed = batcher.flush()
    assert flushed.sent == 1
    assert [(d.payload, d.errno) for d in flushed.dropped] == [
        (b"1", errno.EAGAIN),
        (b"2", errno.EAGAIN),
        (b"3", errno.EAGAIN),
    ]
    assert calls == [4, 3]
    assert client.recv(100) == b"0"


def test_flush_of_nothing_and_of_one(sockets: list[socket.socket]) -> None:
    server = make(sockets, socket.AF_INET, "127.0.0.1")
    client = client_for(sockets, socket.AF_INET, "127.0.0.1")
    batcher = MmsgSocket(server)
    assert batcher.flush() == (0, 0, [])
    batcher.queue(b"solo", client.getsockname())
    assert batcher.flush() == (1, 4, [])
    assert client.recv(100) == b"solo"
    batcher.queue(b"bad", ("no such host", 9))
    flushed = batcher.flush()
    assert flushed.sent == 0 and len(flushed.dropped) == 1


@pytest.mark.parametrize(
    "address",
    [("127.0.0.1", 1), ("10.1.2.3", 65535), ("0.0.0.0", 0)],
)
def test_ipv4_sockaddr_round_trip(address: tuple[str, int]) -> None:
    raw = encode_sockaddr(address, socket.AF_INET)
    assert raw is not None and len(raw) == 16
    assert decode_sockaddr(raw, socket.AF_INET) == address


@pytest.mark.parametrize(
    ("address", "decoded"),
    [
        (("::1", 7, 0, 0), ("::1", 7, 0, 0)),
        (("fe80::1", 10007, 0x12345, 3), ("fe80::1", 10007, 0x12345, 3)),
        (("fe80::1%3", 5), ("fe80::1", 5, 0, 3)),
        (("::ffff:127.0.0.1", 9), ("::ffff:127.0.0.1", 9, 0, 0)),
    ],
)
def test_ipv6_sockaddr_round_trip(address: tuple[Any, ...], decoded: tuple[Any, ...]) -> None:
    raw = encode_sockaddr(address, socket.AF_INET6)
    assert raw is not None and len(raw) == 28
    assert decode_sockaddr(raw, socket.AF_INET6) == decoded


def test_unencodable_addresses() -> None:
    assert encode_sockaddr(("::1", 5), socket.AF_INET) is None
    assert encode_sockaddr(("localhost", 5), socket.AF_INET) is None
    assert encode_sockaddr(("127.0.0.1", 70000), socket.AF_INET) is None
    assert encode_sockaddr("127.0.0.1", socket.AF_INET) is None
