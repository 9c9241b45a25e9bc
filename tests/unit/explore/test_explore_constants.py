"""get_constants keeps every alias; the lecture's dict comprehension loses some."""

from __future__ import annotations

import socket
import sys

import pytest

from socketkit.errors import UsageError
from socketkit.explore import constant_groups, get_constants
from tests.unit.explore.explore_fakes import FAKE_SOCKET


def test_every_alias_is_kept() -> None:
    table = get_constants("AF_", FAKE_SOCKET)
    assert table[1] == ("AF_LOCAL", "AF_UNIX")
    assert table[16] == ("AF_NETLINK", "AF_ROUTE")
    assert list(table) == sorted(table)
    assert "AF_NOT_A_NUMBER" not in str(table)  # only integer constants


def test_the_lecture_comprehension_loses_aliases() -> None:
    names = [n for n in dir(FAKE_SOCKET) if n.startswith("IPPROTO_")]
    lecture = {getattr(FAKE_SOCKET, n): n for n in names}
    ours = get_constants("IPPROTO_", FAKE_SOCKET)
    assert len(lecture) < len(names)  # one of IPPROTO_IP / IPPROTO_HOPOPTS vanished
    assert sum(len(v) for v in ours.values()) == len(names)
    assert ours[0] == ("IPPROTO_HOPOPTS", "IPPROTO_IP")


def test_groups_default_prefixes_and_case() -> None:
    groups = constant_groups(module=FAKE_SOCKET)
    # SOL_ and SO_ are defaults too; a module without them just has no such group
    assert [g.prefix for g in groups] == ["AF_", "SOCK_", "IPPROTO_"]
    assert [g.prefix for g in constant_groups()] == ["AF_", "SOCK_", "IPPROTO_", "SOL_", "SO_"]
    (lower,) = constant_groups(["sock_"], FAKE_SOCKET)
    assert lower.prefix == "SOCK_"
    assert [(c.value, c.names) for c in lower.constants] == [
        (1, ("SOCK_STREAM",)),
        (2, ("SOCK_DGRAM",)),
    ]


@pytest.mark.parametrize("prefix", ["NOPE_", "AF-", ""])
def test_bad_prefix_is_usage_error(prefix: str) -> None:
    with pytest.raises(UsageError) as caught:
        constant_groups([prefix], FAKE_SOCKET)
    assert caught.value.exit_code == 64


def test_real_socket_module() -> None:
    table = get_constants("SOCK_", socket)
    assert table[socket.SOCK_STREAM] == ("SOCK_STREAM",)
    if sys.platform == "linux":
        assert get_constants("AF_")[16] == ("AF_NETLINK", "AF_ROUTE")
