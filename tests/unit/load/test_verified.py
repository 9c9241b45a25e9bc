"""The Locust users' request forms, without Locust: host syntax and exact sums."""

from __future__ import annotations

import random
import subprocess
import sys
from decimal import Decimal

import pytest

from socketkit.errors import UsageError
from socketkit.load.verified import parse_target, sum_request
from socketkit.protocols.sum import SumStream
from tests.support import TIMEOUT


@pytest.mark.parametrize(
    ("text", "shown", "udp"),
    [
        ("tcp://127.0.0.1:10007", "tcp://127.0.0.1:10007", False),
        ("udp://[::1]:10100/", "udp://[::1]:10100", True),
        ("127.0.0.1:7", "tcp://127.0.0.1:7", False),
        ("unix:/tmp/echo.sock", "unix:/tmp/echo.sock", False),
    ],
)
def test_host_forms(text: str, shown: str, udp: bool) -> None:
    target = parse_target(text)
    assert (str(target), target.udp) == (shown, udp)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://127.0.0.1:80", "write tcp://HOST:PORT"),
        ("udp://unix:/tmp/x", "unix:/path"),
        ("tcp://localhost", "expected HOST:PORT"),
    ],
)
def test_bad_hosts_say_how_to_write_them(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(text)


def test_sum_requests_expect_what_the_sum_protocol_answers() -> None:
    rng = random.Random(7)
    for _ in range(500):
        line, expected = sum_request(rng)
        a, b = (Decimal(x) for x in line.decode().split())
        assert Decimal(expected) == a + b
        proto = SumStream()
        proto.receive_data(line)
        assert proto.data_to_send() == expected.encode() + b"\n"


def test_the_core_never_imports_locust() -> None:
    """Locust patches the standard library for gevent: only its own module may import it."""
    code = (
        "import sys, socketkit, socketkit.load, socketkit.load.verified, socketkit.cli.main;"
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert run.stdout.strip() == "[]"
