"""Echo (RFC 862) as pure bytes in, bytes out, plus the registry and the sans-I/O rule."""

from __future__ import annotations

import ast
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import socketkit.protocols
from socketkit.errors import LocalProtocolError, UsageError
from socketkit.protocols import OutputBuffer, ServiceOptions, get_service, service_names
from socketkit.protocols.echo import EchoDatagram, EchoStream

MESSAGE = b"This is the message.  It will be repeated."


def drain(proto: EchoStream, max_bytes: int | None = None) -> bytes:
    out = bytearray()
    for _ in range(len(MESSAGE) * 4 + 10):  # bounded
        data = proto.data_to_send(max_bytes)
        if not data:
            return bytes(out)
        assert max_bytes is None or len(data) <= max_bytes
        out += data
    raise AssertionError("data_to_send never ran dry")


@pytest.mark.parametrize("split", range(len(MESSAGE) + 1))
def test_echo_returns_input_split_at_every_boundary(split: int) -> None:
    proto = EchoStream()
    proto.receive_data(MESSAGE[:split])
    first = proto.data_to_send()
    proto.receive_data(MESSAGE[split:])
    assert first + drain(proto) == MESSAGE
    assert not proto.close_expected()


def test_echo_closes_only_after_eof_and_everything_sent() -> None:
    proto = EchoStream()
    proto.receive_data(b"abc")
    proto.receive_eof()
    assert not proto.close_expected(), "must not close with bytes still owed"
    assert proto.data_to_send() == b"abc"
    assert proto.close_expected()


def test_echo_eof_is_idempotent_and_data_after_eof_is_our_bug() -> None:
    proto = EchoStream()
    proto.receive_eof()
    proto.receive_eof()
    with pytest.raises(LocalProtocolError):
        proto.receive_data(b"x")


def test_echo_declares_output_is_input() -> None:
    assert EchoStream.mirrors_input is True


def test_echo_all_byte_values() -> None:
    every = bytes(range(256))
    proto = EchoStream()
    proto.receive_data(every)
    assert proto.data_to_send() == every
    assert EchoDatagram().handle(every, now=0.0) == [every]


def test_datagram_echo_keeps_boundaries() -> None:
    svc = EchoDatagram()
    assert svc.handle(b"one", 0.0) == [b"one"]
    assert svc.handle(b"", 0.0) == [b""]


@given(
    chunks=st.lists(st.binary(max_size=64), max_size=20),
    limits=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=5),
)
def test_echo_property_output_equals_input_within_limits(
    chunks: list[bytes], limits: list[int]
) -> None:
    proto = EchoStream()
    out = bytearray()
    for i, chunk in enumerate(chunks):
        proto.receive_data(chunk)
        data = proto.data_to_send(limits[i % len(limits)])
        assert len(data) <= limits[i % len(limits)]
        out += data
    proto.receive_eof()
    out += proto.data_to_send()
    assert bytes(out) == b"".join(chunks)
    assert proto.close_expected()


@given(st.lists(st.binary(max_size=40), max_size=10), st.integers(min_value=1, max_value=30))
def test_output_buffer_takes_in_order_and_bounded(chunks: list[bytes], limit: int) -> None:
    buf = OutputBuffer()
    for c in chunks:
        buf.append(c)
    assert len(buf) == sum(map(len, chunks))
    out = bytearray()
    for _ in range(len(buf) + 1):
        piece = buf.take(limit)
        if not piece:
            break
        assert len(piece) <= limit
        out += piece
    assert bytes(out) == b"".join(chunks)
    assert len(buf) == 0


def test_output_buffer_single_chunk_is_not_copied() -> None:
    buf = OutputBuffer()
    data = b"x" * 1000
    buf.append(data)
    assert buf.take() is data


def test_registry_knows_echo_and_its_ports() -> None:
    info = get_service("echo")
    assert "echo" in service_names()
    assert (info.rfc, info.well_known_port) == (862, 7)
    assert info.default_port() == 10007
    assert info.default_port(0) == 7
    assert set(info.transports) == {"tcp", "udp", "unix"}


def test_service_options_reach_only_the_services_that_take_them() -> None:
    options = ServiceOptions(quotes=(b"only one\r\n",), max_line=16)
    echo = get_service("echo")
    assert echo.configured(options) is echo  # takes no options
    qotd = get_service("qotd").configured(options)
    assert qotd.stream is not None and qotd.datagram is not None
    proto = qotd.stream(now=0.0)
    assert proto.data_to_send() == b"only one\r\n"
    assert qotd.datagram().handle(b"", 0.0) == [b"only one\r\n"]
    sum_ = get_service("sum").configured(options)
    assert sum_.stream is not None
    line = sum_.stream(now=0.0)
    line.receive_data(b"1 " + b"1" * 20 + b"\n")
    assert line.data_to_send() == b"ERR line too long\n"
    defaults = ServiceOptions()
    assert get_service("qotd").configured(defaults) is get_service("qotd")
    assert get_service("sum").configured(defaults) is get_service("sum")


def test_registry_rejects_unknown_service_with_choices() -> None:
    with pytest.raises(UsageError, match=r"unknown service 'nope'.*echo"):
        get_service("nope")


FORBIDDEN = {"socket", "asyncio", "time", "datetime", "logging", "selectors", "threading"}


def test_protocols_do_no_io() -> None:
    """The sans-I/O rule, enforced: no module in protocols/ imports I/O or a clock."""
    package = pathlib.Path(socketkit.protocols.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders
