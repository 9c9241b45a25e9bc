"""runtime/_mirror.c on its own: the relay's calls, flags and counters on a socket pair.

No event loop: the test calls the relay as the loop would (``mirror()`` on
readability, ``flush()`` on writability) and records the flags it reports.
Unix socket pairs deliver within ``send``, so no waiting is needed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from socketkit.runtime import native_mirror

pytestmark = pytest.mark.skipif(
    not native_mirror.available(), reason="the native relay was not built"
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    theirs.settimeout(5)
    yield ours, theirs
    ours.close()
    theirs.close()


def relay(sock: socket.socket, events: list[int], **kwargs: int) -> object:
    from socketkit.runtime._mirror import Mirror

    return Mirror(sock.fileno(), events.append, **kwargs)


def test_what_is_read_goes_straight_back_and_is_counted(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    from socketkit.runtime import _mirror

    ours, theirs = pair
    events: list[int] = []
    mirror = relay(ours, events)
    mirror()  # type: ignore[operator]  # nothing to read: no event
    theirs.sendall(b"hello")
    mirror()  # type: ignore[operator]
    assert theirs.recv(10) == b"hello"
    assert (mirror.bytes_in, mirror.bytes_out, mirror.pending) == (5, 5, 0)  # type: ignore[attr-defined]
    assert events == []  # the hot path never calls back into Python
    mirror.feed(b"early")  # type: ignore[attr-defined]
    assert theirs.recv(10) == b"early"
    theirs.shutdown(socket.SHUT_WR)
    mirror()  # type: ignore[operator]
    assert events == [_mirror.END_OF_INPUT]


def test_output_the_client_does_not_take_is_kept_then_reading_pauses_and_resumes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    from socketkit.runtime import _mirror

    ours, theirs = pair
    events: list[int] = []
    mirror = relay(ours, events, high=64 * 1024, low=16 * 1024, chunk=16 * 1024)
    block = bytes(range(256)) * 64  # 16 KiB
    sent = 0
    for _ in range(400):  # bounded: the pause comes long before
        theirs.sendall(block)
        sent += len(block)
        mirror()  # type: ignore[operator]
        if events and events[-1] & _mirror.PAUSE:
            break
    assert events[0] == _mirror.WANT_WRITE
    assert events[-1] & _mirror.PAUSE
    assert 64 * 1024 < mirror.pending <= 64 * 1024 + 16 * 1024  # type: ignore[attr-defined]
    read = mirror.bytes_in  # type: ignore[attr-defined]
    got = bytearray()
    for _ in range(10_000):  # bounded; each round takes what the kernel holds
        if len(got) >= read:
            break
        got += theirs.recv(1 << 20)
        mirror.flush()  # type: ignore[attr-defined]
    assert bytes(got) == (block * (sent // len(block)))[:read]
    assert _mirror.RESUME in events or _mirror.DRAINED in events
    assert events[-1] == _mirror.DRAINED
    assert mirror.pending == 0  # type: ignore[attr-defined]


def test_a_reset_is_reported_once_as_failed(pair: tuple[socket.socket, socket.socket]) -> None:
    from socketkit.runtime import _mirror

    ours, theirs = pair
    events: list[int] = []
    mirror = relay(ours, events)
    theirs.close()
    mirror.feed(b"to nobody")  # type: ignore[attr-defined]
    assert events == [_mirror.FAILED]
    assert mirror.error != 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kwargs", [{"high": 1, "low": 2}, {"chunk": 0}, {"chunk": 1 << 30}, {"low": -1}]
)
def test_bad_settings_are_refused(
    pair: tuple[socket.socket, socket.socket], kwargs: dict[str, int]
) -> None:
    with pytest.raises(ValueError, match="0 <= low <= high and 1 <= chunk"):
        relay(pair[0], [], **kwargs)


def test_an_unset_relay_refuses_instead_of_crashing() -> None:
    from socketkit.runtime._mirror import Mirror

    unset = Mirror.__new__(Mirror)
    for call in (unset, unset.flush, lambda: unset.feed(b"x")):
        with pytest.raises(RuntimeError, match="not initialised"):
            call()


def test_kept_output_is_given_back_once_written(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    import tracemalloc

    ours, theirs = pair
    events: list[int] = []
    mirror = relay(ours, events, high=1 << 30, low=0, chunk=64 * 1024)
    tracemalloc.start()
    try:
        block = b"z" * 65536
        for _ in range(64):  # 4 MiB: far more than the socket buffers hold
            theirs.sendall(block)
            mirror()  # type: ignore[operator]
        assert mirror.pending > 1 << 20  # type: ignore[attr-defined]
        held = tracemalloc.get_traced_memory()[0]
        got = 0
        for _ in range(10_000):
            if mirror.pending == 0:  # type: ignore[attr-defined]
                break
            got += len(theirs.recv(1 << 20))
            mirror.flush()  # type: ignore[attr-defined]
        assert mirror.pending == 0  # type: ignore[attr-defined]
        assert tracemalloc.get_traced_memory()[0] < held - (1 << 20)
    finally:
        tracemalloc.stop()
