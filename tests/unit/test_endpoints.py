from __future__ import annotations

import pytest

from socketkit.endpoints import Endpoint, format_sockaddr, parse_endpoint, parse_port
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
