"""runtime/mmsg.py and its native helper: batched UDP receive/send (Linux).

Real sockets on loopback. Datagrams sent over loopback are queued on the
receiving socket before ``sendto`` returns, so a receive right after the
sends finds them all (no sleeps); every blocking read has a TIMEOUT.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from socketkit.errors import UsageError
from socketkit.runtime import mmsg, native_mirror
from tests.support import TIMEOUT

FAMILIES = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]


@pytest.fixture
def made() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def bound(made: list[socket.socket], family: int, host: str, *, blocking: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    made.append(sock)
    sock.bind((host, 0))
    if blocking:
        sock.settimeout(TIMEOUT)
    else:
        sock.setblocking(False)
    return sock


HOW_TO_BUILD = (
    "socketkit's native helpers were not built: install gcc and python3-dev, "
    "then rm .venv/.installed-test and run make test again"
)


def test_the_helpers_are_built_on_linux() -> None:
    # CI proves the default fast paths: an install that silently lost a helper fails here.
    if sys.platform.startswith("linux"):
        assert mmsg.available(), HOW_TO_BUILD
        assert native_mirror.available(), HOW_TO_BUILD


needs_helper = pytest.mark.skipif(
    not mmsg.available(), reason="batched UDP needs the native helper (Linux, built at install)"
)


@needs_helper
@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_one_call_reads_every_ready_datagram_with_recvfroms_addresses(
    made: list[socket.socket], family: int, host: str
) -> None:
    server = bound(made, family, host, blocking=False)
    clients = [bound(made, family, host, blocking=True) for _ in range(3)]
    batch = mmsg.batcher(server, slots=64)
    assert batch.recv() == []  # nothing ready: no error, no wait
    sent = []
    for i in range(30):
        client = clients[i % 3]
        payload = bytes([i]) * (i + 1)
        client.sendto(payload, server.getsockname())
        sent.append((payload, client.getsockname()))
    got = batch.recv()
    assert got == sent  # in order, and each address is the tuple recvfrom gives
    assert batch.recv() == []


@needs_helper
def test_a_batch_never_holds_more_than_its_slots(made: list[socket.socket]) -> None:
    server = bound(made, socket.AF_INET, "127.0.0.1", blocking=False)
    client = bound(made, socket.AF_INET, "127.0.0.1", blocking=True)
    batch = mmsg.batcher(server, slots=4)
    assert batch.slots == 4
    for i in range(10):
        client.sendto(b"%d" % i, server.getsockname())
    sizes = [len(batch.recv()) for _ in range(4)]
    assert sizes == [4, 4, 2, 0]


@needs_helper
@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_send_delivers_in_order_and_reports_each_refused_reply(
    made: list[socket.socket], family: int, host: str
) -> None:
    server = bound(made, family, host, blocking=False)
    client = bound(made, family, host, blocking=True)
    batch = mmsg.batcher(server, slots=4)
    client.sendto(b"hello", server.getsockname())
    [(_, source)] = batch.recv()
    replies = [(b"%d" % i, source) for i in range(9)]
    replies.insert(2, (b"x" * 70_000, source))  # too large for UDP: EMSGSIZE
    replies.insert(5, ("text", source))  # not bytes: refused alone
    replies.insert(7, (b"to nowhere", ("not an address", 1)))
    # A tuple the helper never saw is parsed (IPv6: flowinfo and scope id too).
    replies.append((b"parsed", client.getsockname()))
    count, size, failures = batch.send(replies)  # type: ignore[arg-type]
    assert count == 10
    assert size == sum(len(b"%d" % i) for i in range(9)) + len(b"parsed")
    assert failures == [(2, errno.EMSGSIZE), (5, errno.EINVAL), (7, errno.EINVAL)]
    got = [client.recvfrom(100)[0] for _ in range(10)]
    assert got == [b"%d" % i for i in range(9)] + [b"parsed"]


@needs_helper
def test_a_receive_error_is_raised_then_the_queue_is_read(made: list[socket.socket]) -> None:
    server = bound(made, socket.AF_INET, "127.0.0.1", blocking=False)
    gone = bound(made, socket.AF_INET, "127.0.0.1", blocking=True)
    target = gone.getsockname()
    gone.close()
    server.connect(target)  # a connected socket gets the ICMP "port unreachable" back
    server.send(b"to nobody")
    batch = mmsg.batcher(server)
    with pytest.raises(ConnectionRefusedError):
        batch.recv()
    assert batch.recv() == []


def test_only_ip_datagram_sockets_are_batched(made: list[socket.socket]) -> None:
    stream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    made.append(stream)
    assert not mmsg.available(stream)
    with pytest.raises(OSError, match="native helper"):
        mmsg.batcher(stream)


def test_the_path_is_chosen_by_argument_then_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(mmsg.ENV, raising=False)
    assert mmsg.chosen_io(None) == "auto"
    assert mmsg.chosen_io("plain") == "plain"
    monkeypatch.setenv(mmsg.ENV, " Batched ")
    assert mmsg.chosen_io(None) == "batched"
    monkeypatch.setenv(mmsg.ENV, "fast")
    with pytest.raises(UsageError, match="SOCKETKIT_UDP_IO='fast'"):
        mmsg.chosen_io(None)


@needs_helper
def test_recv_takes_at_most_its_limit_and_an_unset_batch_refuses(
    made: list[socket.socket],
) -> None:
    from socketkit.runtime._mmsg import Batch

    server = bound(made, socket.AF_INET, "127.0.0.1", blocking=False)
    client = bound(made, socket.AF_INET, "127.0.0.1", blocking=True)
    for i in range(5):
        client.sendto(b"%d" % i, server.getsockname())
    batch = mmsg.batcher(server, slots=8)
    assert [d for d, _ in batch.recv(3)] == [b"0", b"1", b"2"]
    assert [d for d, _ in batch.recv()] == [b"3", b"4"]
    unset = Batch.__new__(Batch)
    with pytest.raises(RuntimeError, match="not initialised"):
        unset.send([(b"x", ("127.0.0.1", 9))])
    with pytest.raises(RuntimeError, match="not initialised"):
        unset.recv()


@needs_helper
def test_as_the_loops_reader_it_echoes_marked_sources_in_c_and_hands_over_the_rest(
    made: list[socket.socket],
) -> None:
    server = bound(made, socket.AF_INET, "127.0.0.1", blocking=False)
    one = bound(made, socket.AF_INET, "127.0.0.1", blocking=True)
    two = bound(made, socket.AF_INET, "127.0.0.1", blocking=True)
    batch = mmsg.batcher(server, slots=8)
    handed: list[list[bytes]] = []
    mark = False

    def on_batch(got: list[tuple[bytes, Any]]) -> None:
        """What the UDP adapter does: serve in Python, mark sources the guard frees."""
        handed.append([data for data, _ in got])
        if mark:
            for _, addr in got:
                assert batch.mark_free(addr)

    batch.serve(on_batch, 100)
    target = server.getsockname()
    one.sendto(b"first", target)
    batch()  # nobody is marked: Python sees it
    assert handed == [[b"first"]]
    assert not batch.mark_free(("127.0.0.1", 1))  # not a tuple the helper gave out
    mark = True
    one.sendto(b"again", target)
    batch()  # handed over once more, and marked this time
    one.sendto(b"again", target)
    one.sendto(b"and again", target)
    batch()  # echoed in C: nothing handed over
    assert handed == [[b"first"], [b"again"]]
    assert batch.take_counts() == (2, 14, 2, 14, 0)  # received, bytes, sent, bytes, dropped
    assert batch.take_counts() == (0, 0, 0, 0, 0)
    assert [one.recvfrom(100)[0] for _ in range(2)] == [b"again", b"and again"]
    mark = False
    one.sendto(b"mixed", target)
    two.sendto(b"stranger", target)  # one unmarked source: the whole batch goes to Python
    batch()
    assert handed[-1] == [b"mixed", b"stranger"]
    batch.forget()
    one.sendto(b"forgotten", target)
    batch()
    assert handed[-1] == [b"forgotten"]
    with pytest.raises(ValueError, match="budget"):
        batch.serve(on_batch, 0)


@needs_helper
def test_a_closed_batch_refuses_to_read_and_keeps_its_counts(made: list[socket.socket]) -> None:
    server = bound(made, socket.AF_INET, "127.0.0.1", blocking=False)
    batch = mmsg.batcher(server)
    batch.serve(lambda got: None, 10)
    batch.close()
    with pytest.raises(RuntimeError, match="not initialised"):
        batch()
    with pytest.raises(RuntimeError, match="not initialised"):
        batch.recv()
    assert batch.take_counts() == (0, 0, 0, 0, 0)
