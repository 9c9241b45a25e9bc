"""runtime/udp.py: every ready datagram answered per wake-up, through the one guarded path.

Runs under asyncio and uvloop (``arun``), and on both I/O paths (``udp_io``:
batched recvmmsg/sendmmsg and plain recvfrom/sendto); the client is a
non-blocking UDP socket driven by the same loop, every wait bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from socketkit.logs import configure_access_log
from socketkit.protocols.base import DatagramService
from socketkit.protocols.echo import EchoDatagram
from socketkit.runtime import mmsg
from socketkit.runtime.guards import UdpGuard
from socketkit.runtime.limits import Limits
from socketkit.runtime.stats import Counters
from socketkit.runtime.udp import UdpEndpoint, allow_all
from tests.support import TIMEOUT
from tests.virtual_time import loop_turns

Run = Callable[[Callable[[], Awaitable[Any]]], Any]

pytestmark = pytest.mark.udp_io


def udp_pair() -> tuple[socket.socket, socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.connect(server.getsockname())
    client.setblocking(False)
    return server, client


async def receive(client: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return [await asyncio.wait_for(loop.sock_recv(client, 65536), TIMEOUT) for _ in range(count)]


class Boom(DatagramService):
    """Fails on b"boom", echoes the rest: a buggy service must cost one datagram."""

    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        if datagram == b"boom":
            raise RuntimeError("bug")
        return [datagram]


def test_a_burst_of_datagrams_is_answered_in_full(arun: Run) -> None:
    async def main() -> Counters:
        server, client = udp_pair()
        counters = Counters()
        endpoint = UdpEndpoint(
            "echo/udp", server, EchoDatagram(), time.time, counters=counters, max_per_wakeup=4
        )
        endpoint.start()
        try:
            sent = [i.to_bytes(4, "big") * 16 for i in range(100)]
            for message in sent:  # all queued before the loop runs: many per wake-up
                client.send(message)
            got = await receive(client, len(sent))
            assert sorted(got) == sorted(sent)
        finally:
            endpoint.close()
            client.close()
        return counters

    counters = arun(main)
    assert counters.datagrams_received == 100
    assert counters.datagrams_sent == 100
    assert counters.bytes_received == counters.bytes_sent == 100 * 64
    assert counters.datagrams_dropped == 0


def test_without_counters_the_endpoint_keeps_its_own_and_reports_them(arun: Run) -> None:
    async def main() -> UdpEndpoint:
        server, client = udp_pair()
        endpoint = UdpEndpoint("echo/udp", server, EchoDatagram(), time.time)
        endpoint.start()
        try:
            client.send(b"hello")
            assert await receive(client, 1) == [b"hello"]
        finally:
            endpoint.close()
            client.close()
        return endpoint

    endpoint = arun(main)
    assert endpoint.label == "echo/udp"
    assert endpoint.endpoint is None
    stats = endpoint.statistics()
    assert stats == endpoint.counters.snapshot()
    assert (stats.datagrams_received, stats.datagrams_sent) == (1, 1)
    assert stats.bytes_received == stats.bytes_sent == 5
    assert stats.datagrams_dropped == 0


def test_allow_all_sends_every_reply() -> None:
    assert allow_all(("127.0.0.1", 9), b"q", [b"a", b"b"]) == [b"a", b"b"]
    assert allow_all(("127.0.0.1", 9), b"q", []) == []


def test_policy_decides_what_is_sent_and_refusals_are_counted(arun: Run) -> None:
    seen: list[tuple[Any, bytes, list[bytes]]] = []

    def policy(addr: Any, request: bytes, replies: list[bytes]) -> list[bytes]:
        seen.append((addr, request, replies))
        return [] if request.startswith(b"deny") else replies

    async def main() -> Counters:
        server, client = udp_pair()
        counters = Counters()
        endpoint = UdpEndpoint(
            "echo/udp", server, EchoDatagram(), time.time, counters=counters, policy=policy
        )
        endpoint.start()
        try:
            client.send(b"deny me")
            client.send(b"allow me")
            assert await receive(client, 1) == [b"allow me"]
        finally:
            endpoint.close()
            client.close()
        return counters

    counters = arun(main)
    assert [request for _, request, _ in seen] == [b"deny me", b"allow me"]
    assert seen[0][0][0] == "127.0.0.1"
    assert seen[0][2] == [b"deny me"]
    assert counters.datagrams_dropped == 1
    assert counters.datagrams_sent == 1


def test_a_failing_service_drops_one_datagram_and_keeps_serving(
    arun: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> Counters:
        server, client = udp_pair()
        counters = Counters()
        endpoint = UdpEndpoint("boom/udp", server, Boom(), time.time, counters=counters)
        endpoint.start()
        try:
            client.send(b"boom")
            client.send(b"still here")
            assert await receive(client, 1) == [b"still here"]
        finally:
            endpoint.close()
            client.close()
        return counters

    counters = arun(main)
    assert counters.datagrams_dropped == 1
    assert counters.datagrams_received == 2
    assert "service failed" in caplog.text


def test_the_service_gets_the_clock_reading(arun: Run) -> None:
    times: list[float] = []

    class Clocked(DatagramService):
        def handle(self, datagram: bytes, now: float) -> list[bytes]:
            times.append(now)
            return [datagram]

    async def main() -> None:
        server, client = udp_pair()
        endpoint = UdpEndpoint("t/udp", server, Clocked(), lambda: 1234.5, counters=Counters())
        endpoint.start()
        try:
            client.send(b"x")
            await receive(client, 1)
        finally:
            endpoint.close()
            client.close()

    arun(main)
    assert times == [1234.5]


def test_close_is_idempotent_and_closes_the_socket(arun: Run) -> None:
    async def main() -> None:
        server, client = udp_pair()
        endpoint = UdpEndpoint("e/udp", server, EchoDatagram(), time.time, counters=Counters())
        endpoint.start()
        endpoint.close()
        endpoint.close()
        assert server.fileno() == -1
        client.close()

    arun(main)


def test_batch_must_be_positive() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        pytest.raises(ValueError, match="max_per_wakeup"),
    ):
        UdpEndpoint("e", sock, EchoDatagram(), time.time, counters=Counters(), max_per_wakeup=0)


def test_a_udp_guard_is_asked_first_and_its_refusals_are_counted(arun: Run) -> None:
    """Rate limit 2 replies from one source (loopback not exempt): 5 sent, 2 answered."""
    limits = Limits(udp_loopback_exempt=False, udp_rate=0.001, udp_burst=2)
    served: list[bytes] = []

    class Recording(DatagramService):
        def handle(self, datagram: bytes, now: float) -> list[bytes]:
            served.append(datagram)
            return [datagram]

    async def main() -> Counters:
        all_seen = asyncio.Event()

        class CountingGuard(UdpGuard):
            """Tells the test once the guard has been asked about all five datagrams."""

            asked = 0

            def admit(self, addr: Any, request_size: int, now: float | None = None) -> Any:
                admission = super().admit(addr, request_size, now)
                self.asked += 1
                if self.asked == 5:
                    all_seen.set()
                return admission

        server, client = udp_pair()
        counters = Counters()
        endpoint = UdpEndpoint(
            "echo/udp",
            server,
            Recording(),
            time.time,
            counters=counters,
            policy=CountingGuard(limits),
        )
        endpoint.start()
        try:
            for i in range(5):
                client.send(b"%d" % i)
            got = await receive(client, 2)
            await asyncio.wait_for(all_seen.wait(), TIMEOUT)
            assert got == [b"0", b"1"]
        finally:
            endpoint.close()
            client.close()
        return counters

    counters = arun(main)
    assert counters.datagrams_rate_limited == 3
    assert served == [b"0", b"1"]  # refused sources cost no service work
    assert counters.datagrams_sent == 2


class WrongType(DatagramService):
    """Answers b"bad" with a str: a bug that escapes the adapter's loop in sendto."""

    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        return ["bad"] if datagram == b"bad" else [datagram]  # type: ignore[list-item]


def test_a_bug_escaping_the_batch_keeps_the_counts_of_what_it_served(udp_io: str) -> None:
    server, client = udp_pair()
    server.setblocking(False)
    counters = Counters()
    endpoint = UdpEndpoint("echo/udp", server, WrongType(), time.time, counters=counters)
    try:
        for message in (b"one", b"two", b"bad"):  # loopback delivers within send()
            client.send(message)
        if udp_io == "plain":
            with pytest.raises(TypeError):
                endpoint._on_readable()  # the loop would log it; the counts must stay
        else:
            # sendmmsg refuses the one reply that is not bytes; the others went.
            endpoint._batcher = mmsg.batcher(server)
            endpoint._on_readable_batched()
            assert counters.datagrams_dropped == 1
        assert counters.datagrams_received == 3
        assert counters.bytes_received == 9
        assert counters.datagrams_sent == 2
        assert counters.bytes_sent == 6
    finally:
        endpoint.close()
        client.close()


class TooBig(DatagramService):
    """Answers each datagram twice: once too large for UDP, once in full."""

    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        return [b"x" * 70_000, datagram]


def test_the_path_taken_is_the_one_asked_for_and_narration_stays_plain(
    arun: Run, udp_io: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> tuple[bool, bool]:
        server, client = udp_pair()
        quiet = UdpEndpoint("echo/udp", server, EchoDatagram(), time.time)
        quiet.start()
        server2, client2 = udp_pair()
        told = UdpEndpoint("echo/udp", server2, EchoDatagram(), time.time, narrate=True, io="auto")
        told.start()
        try:
            return quiet.batched, told.batched
        finally:
            for item in (quiet, told, client, client2):
                item.close()

    with caplog.at_level(logging.INFO, logger="socketkit.server"):  # narration shows
        assert arun(main) == (udp_io == "batched", False)


def test_a_reply_the_kernel_refuses_is_dropped_counted_and_the_rest_go(arun: Run) -> None:
    async def main() -> tuple[Counters, list[bytes]]:
        server, client = udp_pair()
        counters = Counters()
        endpoint = UdpEndpoint("big/udp", server, TooBig(), time.time, counters=counters)
        endpoint.start()
        try:
            for message in (b"one", b"two", b"three"):
                client.send(message)
            return counters, await receive(client, 3)
        finally:
            endpoint.close()
            client.close()

    counters, got = arun(main)
    assert sorted(got) == [b"one", b"three", b"two"]
    assert (counters.datagrams_sent, counters.datagrams_dropped) == (3, 3)
    assert counters.bytes_sent == len(b"onetwothree")


def test_the_access_log_says_what_went_back_to_each_source(arun: Run) -> None:
    async def main() -> None:
        server, client = udp_pair()
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.0.2", 0))  # the rate limit is per source address
        other.connect(server.getsockname())
        other.setblocking(False)
        guard = UdpGuard(Limits(udp_loopback_exempt=False, udp_rate=0.01, udp_burst=1))
        endpoint = UdpEndpoint("echo/udp", server, TooBig(), time.time, policy=guard)
        endpoint.start()
        try:
            client.send(b"first")  # answered; the too-big reply is over the 1x budget
            assert await receive(client, 1) == [b"first"]
            client.send(b"second")  # rate-limited: nothing goes back
            other.send(b"sync")  # another address: served after "second", in order
            assert await receive(other, 1) == [b"sync"]
        finally:
            for item in (endpoint, client, other):
                item.close()

    stream = io.StringIO()
    configure_access_log(stream, fmt="json")
    try:
        arun(main)
    finally:
        configure_access_log(None)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["bytes_in"], r["bytes_out"], r["ended"]) for r in records] == [
        (5, 5, "answered"),
        (6, 0, "no_reply"),
        (4, 4, "answered"),
    ]


def test_one_wake_up_serves_at_most_max_per_wakeup(udp_io: str) -> None:
    server, client = udp_pair()
    server.setblocking(False)
    counters = Counters()
    endpoint = UdpEndpoint(
        "echo/udp", server, EchoDatagram(), time.time, counters=counters, max_per_wakeup=5
    )
    try:
        for i in range(12):  # loopback delivers within send()
            client.send(b"%d" % i)
        if udp_io == "batched":
            endpoint._batcher = mmsg.batcher(server, 4)  # 4 + 1: the budget cuts the last call
            endpoint._on_readable_batched()
        else:
            endpoint._on_readable()
        assert counters.datagrams_received == 5
        assert counters.datagrams_sent == 5
    finally:
        endpoint.close()
        client.close()


def test_echo_to_free_sources_counts_the_same_when_c_answers(
    arun: Run, udp_io: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loopback passes the default guard freely: after its first batch, C echoes it."""
    handed: list[int] = []
    original = UdpEndpoint._on_batch

    def spy(self: UdpEndpoint, datagrams: list[tuple[bytes, Any]]) -> None:
        handed.append(len(datagrams))
        original(self, datagrams)

    monkeypatch.setattr(UdpEndpoint, "_on_batch", spy)

    async def main() -> None:
        server, client = udp_pair()
        guard = UdpGuard()
        endpoint = UdpEndpoint("echo/udp", server, EchoDatagram(), time.time, policy=guard)
        endpoint.start()
        try:
            for wave in range(1, 4):
                sent = [bytes([wave, i]) * 8 for i in range(40)]
                for message in sent:
                    client.send(message)
                assert sorted(await receive(client, len(sent))) == sorted(sent)
                live = endpoint.statistics()  # mid-run: what C echoed is folded in
                assert (live.datagrams_received, live.datagrams_sent) == (40 * wave, 40 * wave)
                assert live.bytes_received == live.bytes_sent == 40 * 16 * wave
            # The guard changes its mind (the client's port becomes one of ours):
            # the next datagram is refused on every path, C's marks included.
            guard.protect_port(client.getsockname()[1])
            client.send(b"refused now")
            for _ in range(1000):  # served alone, not in a batch with the barrier below
                if endpoint.statistics().datagrams_received == 121:
                    break
                await loop_turns(1)
            assert endpoint.statistics().datagrams_received == 121
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            other.bind(("127.0.0.2", 0))  # a barrier from another source, served after it
            other.setblocking(False)
            other.sendto(b"barrier", server.getsockname())
            assert await receive(other, 1) == [b"barrier"]
            other.close()
            with pytest.raises(BlockingIOError):
                client.recv(100)
            assert endpoint.statistics().datagrams_refused == 1
        finally:
            endpoint.close()
            client.close()

    arun(main)
    if udp_io == "batched":
        assert 0 < sum(handed) < 120  # C echoed most of it itself
    else:
        assert handed == []
