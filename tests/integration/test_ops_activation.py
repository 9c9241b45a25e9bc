"""Which service an inherited socket serves, and the sockets ``serve`` refuses to adopt."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from socketkit.errors import UsageError
from socketkit.protocols import get_service
from socketkit.runtime.activation import InheritedSocket, adopt_sockets


def _inherited(sock: socket.socket, name: str) -> InheritedSocket:
    listening = bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    return InheritedSocket(
        sock.fileno(), name, sock, sock.family, sock.type, listening, sock.getsockname()
    )


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    yield tcp, udp
    tcp.close()
    udp.close()


def test_names_choose_the_service_and_unit_names_work_too(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    tcp, udp = sockets
    services = [get_service("echo"), get_service("daytime")]
    adopted = adopt_sockets(
        [_inherited(tcp, "daytime"), _inherited(udp, "socketkit-echo.socket")], services
    )
    assert [(b.endpoint.service, b.endpoint.transport) for b in adopted] == [
        ("daytime", "tcp"),
        ("echo", "udp"),
    ]
    assert adopted[0].endpoint.address.port == tcp.getsockname()[1]


def test_unnamed_sockets_take_the_service_list_in_order(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    tcp, udp = sockets
    adopted = adopt_sockets(
        [_inherited(tcp, "unknown"), _inherited(udp, "unknown")],
        [get_service("qotd"), get_service("time")],
    )
    assert [b.endpoint.service for b in adopted] == ["qotd", "time"]


def test_a_service_not_asked_for_is_refused(sockets: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(UsageError, match="named 'daytime', a service this serve was not asked"):
        adopt_sockets([_inherited(sockets[0], "daytime")], [get_service("echo")])


def test_a_connected_socket_is_refused() -> None:
    left, right = socket.socketpair()
    with left, right, pytest.raises(UsageError, match="use Accept=no"):
        adopt_sockets([_inherited(left, "echo")], [get_service("echo")])
