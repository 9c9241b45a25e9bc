"""LineBuffer's edges, and the last branches of the service registry and sum's batching."""

from __future__ import annotations

from socketkit.protocols import ServiceInfo
from socketkit.protocols.echo import EchoDatagram, EchoStream
from socketkit.protocols.lines import TOO_LONG, LineBuffer
from socketkit.protocols.sum import SumStream


def test_after_a_too_long_line_nothing_more_is_kept_or_returned() -> None:
    lines = LineBuffer(4)
    lines.feed(b"abcdefgh")
    assert lines.next_line() is TOO_LONG
    lines.feed(b"ok\n")  # ignored: the connection is being refused
    assert lines.pending == 0
    assert lines.next_line() is None
    assert lines.take_rest() is None


def test_an_unterminated_last_line_longer_than_the_limit_is_too_long_at_eof() -> None:
    lines = LineBuffer(4)
    lines.feed(b"abcd\r")  # could still be "abcd" + CRLF: not refused yet
    assert lines.next_line() is None
    lines.feed(b"")
    assert lines.take_rest() == b"abcd"
    lines = LineBuffer(4)
    lines.feed(b"abcde")  # exactly max + 1 with no CR: refused at once
    assert lines.next_line() is TOO_LONG
    lines = LineBuffer(4)
    lines.feed(b"abc")
    assert lines.next_line() is None
    lines.feed(b"de")  # the rest at EOF is longer than the limit
    assert lines.take_rest() is TOO_LONG
    assert lines.next_line() is None


def test_transports_follow_the_forms_a_service_has() -> None:
    both = ServiceInfo("x", "", None, None, EchoStream, EchoDatagram)
    assert both.transports == ("tcp", "unix", "udp")
    assert ServiceInfo("x", "", None, None, EchoStream, None).transports == ("tcp", "unix")
    assert ServiceInfo("x", "", None, None, None, EchoDatagram).transports == ("udp",)


def test_sum_answers_one_batch_per_call_and_says_more_is_waiting() -> None:
    proto = SumStream(batch_lines=2)
    proto.receive_data(b"1 1\n" * 5)
    assert proto.data_to_send() == b"2\n2\n"
    assert proto.data_to_send() == b"2\n2\n"
    assert proto.data_to_send() == b"2\n"
    assert proto.data_to_send() == b""


def test_sum_an_unterminated_last_line_too_long_is_refused_then_it_closes_at_eof() -> None:
    from socketkit.protocols.sum import ERR_LONG_LINE

    proto = SumStream(max_line=4)
    proto.receive_data(b"1 2")
    proto.receive_data(b"34")  # "1 234": five bytes and no CR, so next_line refuses it
    proto.receive_eof()
    assert proto.close_expected() is False  # the last line is not answered yet
    assert proto.data_to_send() == ERR_LONG_LINE.encode() + b"\n"
    assert proto.close_expected() is True


def test_a_service_without_a_well_known_port_takes_its_fixed_port_at_base_0() -> None:
    from socketkit.protocols import get_service

    info = get_service("sum")
    assert info.well_known_port is None
    assert info.fixed_default_port is not None
    assert info.default_port(0) == info.fixed_default_port
    assert info.default_port(20000) == info.fixed_default_port - 10000 + 20000
