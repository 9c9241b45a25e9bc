from __future__ import annotations

import socket

import pytest

from socketkit.endpoints import (
    Endpoint,
    format_sockaddr,
    numeric_sockaddrs,
    parse_endpoint,
    parse_port,
)
from socketkit.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7", Endpoint("127.0.0.1", 7)),
        ("localhost:10007", Endpoint("localhost", 10007)),
        ("[::1]:7", Endpoint("::1", 7)),
        (":7", Endpoint("127.0.0.1", 7)),
        ("7", Endpoint("127.0.0.1", 7)),
        ("unix:/tmp/e.sock", Endpoint(path="/tmp/e.sock")),
    ],
)
def test_parse_endpoint(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost", "expected HOST:PORT"),
        ("::1:7", "brackets"),
        ("[::1]7", r"\[ADDRESS\]:PORT"),
        ("host:70000", "0 to 65535"),
        ("host:http", "expected a number"),
        ("unix:", "socket path"),
    ],
)
def test_parse_endpoint_errors_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_endpoint(text)


def test_parse_port_bounds() -> None:
    assert parse_port("0") == 0
    assert parse_port("65535") == 65535
    with pytest.raises(UsageError):
        parse_port("-1")


def test_endpoint_str_round_trips() -> None:
    for text in ("127.0.0.1:7", "[::1]:7", "unix:/tmp/x"):
        assert str(parse_endpoint(text)) == text


def test_format_sockaddr_unmaps_ipv4_mapped_peers() -> None:
    assert format_sockaddr(("::ffff:127.0.0.1", 5000, 0, 0)) == "127.0.0.1:5000"
    assert format_sockaddr(("::1", 5000, 0, 0)) == "[::1]:5000"
    assert format_sockaddr(("10.0.0.1", 80)) == "10.0.0.1:80"
    assert format_sockaddr("/tmp/s") == "unix:/tmp/s"
    assert format_sockaddr("") == "unix:(unnamed)"


# -- numeric_sockaddrs: literals without a resolver, zones kept ---------------------


def test_numeric_sockaddrs_ipv4_and_ipv6() -> None:

    v4 = numeric_sockaddrs("127.0.0.1", 7, socket.SOCK_STREAM)
    assert v4 is not None
    assert [(i[0], i[1], i[4]) for i in v4] == [
        (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 7))
    ]
    v6 = numeric_sockaddrs("::1", 9, socket.SOCK_DGRAM)
    assert v6 is not None
    assert v6[0][4] == ("::1", 9, 0, 0)


def test_numeric_sockaddrs_keeps_a_named_zone() -> None:

    index = socket.if_nametoindex("lo")
    infos = numeric_sockaddrs("fe80::1%lo", 7, socket.SOCK_STREAM)
    assert infos is not None
    assert infos[0][4] == ("fe80::1", 7, 0, index)


def test_numeric_sockaddrs_leaves_names_and_filters_families() -> None:

    assert numeric_sockaddrs("localhost", 7, socket.SOCK_STREAM) is None
    assert numeric_sockaddrs("127.0.0.1", 7, socket.SOCK_STREAM, socket.AF_INET6) == []
    assert numeric_sockaddrs("::1", 7, socket.SOCK_STREAM, socket.AF_INET) == []
    with pytest.raises(socket.gaierror):
        numeric_sockaddrs("fe80::1%nosuchif0", 7, socket.SOCK_STREAM)


def test_format_sockaddr_shows_the_zone() -> None:
    index = socket.if_nametoindex("lo")
    assert format_sockaddr(("fe80::1", 7, 0, index)) == "[fe80::1%lo]:7"
    assert format_sockaddr(("fe80::1", 7, 0, 0)) == "[fe80::1]:7"
    assert format_sockaddr(("fe80::1%lo", 7, 0, index)) == "[fe80::1%lo]:7"


def test_parse_endpoint_keeps_the_zone() -> None:
    assert parse_endpoint("[fe80::1%eth0]:7") == Endpoint("fe80::1%eth0", 7)
