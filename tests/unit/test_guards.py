"""The UDP guards, pure: loop ports, bad sources, the token bucket, the amplification budget."""

from __future__ import annotations

import pytest

from socketkit.errors import UsageError
from socketkit.runtime.guards import REFUSED_PORTS, UdpGuard, source_address
from socketkit.runtime.limits import Limits

STRICT = Limits(udp_loopback_exempt=False)
CLIENT = ("192.0.2.10", 40000)  # TEST-NET-1: an address for documentation, never contacted


@pytest.mark.parametrize("port", sorted(REFUSED_PORTS))
def test_small_service_ports_are_refused_even_from_loopback(port: int) -> None:
    guard = UdpGuard(Limits(udp_allow_low_ports=True))
    admission = guard.admit(("127.0.0.1", port), 10, now=0.0)
    assert admission.counter == "datagrams_refused"
    assert "loop guard" in admission.reason or port == 0


def test_ports_below_1024_are_refused_unless_allowed() -> None:
    assert UdpGuard().admit(("192.0.2.1", 123), 10, now=0.0).counter == "datagrams_refused"
    relaxed = UdpGuard(Limits(udp_allow_low_ports=True))
    assert relaxed.admit(("192.0.2.1", 123), 10, now=0.0).admitted
    assert UdpGuard().admit(("192.0.2.1", 1024), 10, now=0.0).admitted


def test_our_own_service_ports_are_refused() -> None:
    guard = UdpGuard()
    assert guard.admit(("127.0.0.1", 10019), 1, now=0.0).admitted
    guard.protect_port(10019)
    admission = guard.admit(("127.0.0.1", 10019), 1, now=0.0)
    assert admission.counter == "datagrams_refused"
    assert "our UDP services" in admission.reason


@pytest.mark.parametrize(
    "host",
    ["255.255.255.255", "224.0.0.1", "239.1.2.3", "0.0.0.0", "0.1.2.3", "ff02::1", "::"],
)
def test_broadcast_multicast_and_unspecified_sources_are_refused(host: str) -> None:
    assert UdpGuard().admit((host, 40000), 10, now=0.0).counter == "datagrams_refused"


def test_v4_mapped_sources_are_judged_as_ipv4() -> None:
    ip, port = source_address(("::ffff:224.0.0.1", 5000, 0, 0))
    assert str(ip) == "224.0.0.1"
    assert port == 5000
    assert UdpGuard().admit(("::ffff:224.0.0.1", 5000, 0, 0), 1, now=0.0).counter == (
        "datagrams_refused"
    )
    assert UdpGuard().is_exempt(source_address(("::ffff:127.0.0.1", 5000, 0, 0))[0])


def test_loopback_is_exempt_from_rate_and_budget_by_default() -> None:
    guard = UdpGuard(Limits(udp_rate=1.0, udp_burst=1))
    for _ in range(100):
        admission = guard.admit(("127.0.0.1", 40000), 0, now=0.0)
        assert admission.admitted
        assert admission.budget is None
        guard.settle(("127.0.0.1", 40000), admission, [b"x" * 512])
    assert guard.admit(("::1", 40000, 0, 0), 0, now=0.0).budget is None


def test_token_bucket_limits_one_source_and_not_another() -> None:
    guard = UdpGuard(Limits(udp_rate=10.0, udp_burst=5, udp_loopback_exempt=False))
    flood, other = ("127.0.0.1", 40000), ("127.0.0.2", 40000)
    verdicts = []
    for _ in range(20):
        admission = guard.admit(flood, 10, now=100.0)
        verdicts.append(admission.counter)
        if admission.admitted:
            guard.settle(flood, admission, [b"reply"])
    assert verdicts.count(None) == 5
    assert verdicts.count("datagrams_rate_limited") == 15
    assert guard.admit(other, 10, now=100.0).admitted
    # 0.15 s later one more token has come back (10 per second), and only one.
    assert guard.admit(flood, 10, now=100.15).admitted
    guard.settle(flood, guard.admit(flood, 10, now=100.15), [b"r"])
    assert not guard.admit(flood, 10, now=100.15).admitted


def test_only_replies_cost_tokens() -> None:
    guard = UdpGuard(Limits(udp_rate=1.0, udp_burst=2))
    for _ in range(50):  # discard never answers: never limited
        admission = guard.admit(CLIENT, 10, now=0.0)
        assert admission.admitted
        guard.settle(CLIENT, admission, [])


def test_a_clock_going_backwards_refills_nothing() -> None:
    guard = UdpGuard(Limits(udp_rate=1.0, udp_burst=1))
    guard.settle(CLIENT, guard.admit(CLIENT, 10, now=50.0), [b"x"])
    assert not guard.admit(CLIENT, 10, now=10.0).admitted
    assert not guard.admit(CLIENT, 10, now=10.5).admitted
    assert guard.admit(CLIENT, 10, now=11.6).admitted


def test_the_source_table_is_bounded() -> None:
    guard = UdpGuard(Limits(udp_max_sources=100))
    for i in range(1000):
        guard.admit((f"198.51.100.{i % 250}", 40000 + i), 1, now=0.0)
        guard.admit((f"203.0.113.{i % 250}", 40000), 1, now=0.0)
    assert guard.tracked_sources == 100


def test_budget_is_a_multiple_of_the_request() -> None:
    assert UdpGuard().admit(CLIENT, 37, now=0.0).budget == 37
    assert UdpGuard(Limits(udp_amplification=2.5)).admit(CLIENT, 10, now=0.0).budget == 25
    assert UdpGuard(Limits(udp_amplification=None)).admit(CLIENT, 10, now=0.0).budget is None
    assert UdpGuard(STRICT).admit(("127.0.0.1", 5000), 8, now=0.0).budget == 8


def test_settle_keeps_whole_replies_that_fit_in_order() -> None:
    guard = UdpGuard()
    admission = guard.admit(CLIENT, 10, now=0.0)
    kept, dropped = guard.settle(CLIENT, admission, [b"abcd", b"0123456789", b"efghij"])
    assert kept == [b"abcd", b"efghij"]
    assert dropped == 1
    # A 4-byte time reply to an empty datagram does not fit a 1x budget.
    admission = guard.admit(CLIENT, 0, now=0.0)
    assert guard.settle(CLIENT, admission, [b"\x00\x01\x02\x03"]) == ([], 1)


def test_plain_policy_form() -> None:
    guard = UdpGuard()
    assert guard(CLIENT, b"12345", [b"123", b"456"]) == [b"123"]
    assert guard(("192.0.2.1", 19), b"12345", [b"1"]) == []


def test_bad_udp_limits_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="udp_rate"):
        Limits(udp_rate=0)
    with pytest.raises(UsageError, match="udp_amplification"):
        Limits(udp_amplification=-1)
    with pytest.raises(UsageError, match="udp_burst"):
        Limits(udp_burst=0)


@pytest.mark.parametrize(
    ("limits", "addr", "free"),
    [
        (Limits(), ("127.0.0.1", 40000), True),
        (Limits(), ("::1", 40000, 0, 0), True),
        (Limits(), ("::ffff:127.0.0.9", 40000, 0, 0), True),
        (STRICT, ("127.0.0.1", 40000), False),  # --udp-guard-loopback
        (Limits(), ("127.0.0.1", 19), False),  # the loop guard applies to loopback too
        (Limits(), ("192.0.2.1", 40000), False),  # rate limit and budget apply
    ],
)
def test_free_pass_only_where_admit_and_settle_would_pass_everything(
    limits: Limits, addr: tuple[object, ...], free: bool
) -> None:
    guard = UdpGuard(limits)
    assert guard.free_pass(addr) is free
    if free:
        admission = guard.admit(addr, 1)
        assert admission.admitted and admission.budget is None
        assert guard.settle(addr, admission, [b"x" * 5000] * 3) == ([b"x" * 5000] * 3, 0)


def test_new_limits_or_a_protected_port_change_verdicts_and_the_generation() -> None:
    guard = UdpGuard()
    loopback = ("127.0.0.1", 40000)
    assert guard.free_pass(loopback)
    before = guard.generation
    guard.limits = Limits(udp_loopback_exempt=False)  # cached verdicts must go
    assert not guard.free_pass(loopback)
    assert guard.generation == before + 1
    guard.protect_port(40000)
    assert guard.generation == before + 2
    assert guard.admit(loopback, 10).counter == "datagrams_refused"
