"""The sum protocol (DESIGN.md section 4): every example, every error, every split, properties."""

from __future__ import annotations

import decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketkit.protocols.lines import TOO_LONG, LineBuffer
from socketkit.protocols.sum import (
    MAX_LINE,
    SumDatagram,
    SumStream,
    add_numbers,
    answer_line,
)
from tests.unit.protocols.helpers import drain, run_chunks

# Every example of DESIGN.md section 4, as (request, reply).
DESIGN_EXAMPLES = [
    ("2 3", "5"),
    ("0.1 0.2", "0.3"),
    ("99999999999999999999 1", "100000000000000000000"),
    ("1e3 1", "1001"),
    ("1.50 1.50", "3.00"),
    ("1e-3 1", "1.001"),
    # The number forms the section lists: -12, 3.25, 1e3, +0.5E-2.
    ("-12 3.25", "-8.75"),
    ("+0.5E-2 1e3", "1000.005"),
    # Separated by spaces or tabs, surrounding white space ignored.
    ("\t 2 \t\t 3 \t", "5"),
]

ERRORS = [
    ("", "ERR expected two numbers"),
    ("   \t ", "ERR expected two numbers"),
    ("7", "ERR expected two numbers"),
    ("1 2 3", "ERR expected two numbers"),
    ("one 2", "ERR not a number: one"),
    ("2 3x", "ERR not a number: 3x"),
    ("NaN 1", "ERR not a number: NaN"),
    ("1 Infinity", "ERR not a number: Infinity"),
    ("inf 1", "ERR not a number: inf"),
    ("-inf 1", "ERR not a number: -inf"),
    ("1 sNaN", "ERR not a number: sNaN"),
    ("0x10 1", "ERR not a number: 0x10"),
    ("1_000 1", "ERR not a number: 1_000"),
    ("3. 1", "ERR not a number: 3."),
    (".5 1", "ERR not a number: .5"),
    ("1e 1", "ERR not a number: 1e"),
    ("\u0661 1", "ERR not a number: \u0661"),  # an Arabic-Indic digit is not one of ours
    ("1e999999999 1", "ERR number too long"),
    ("1 -1E-999999999999999999999999", "ERR number too long"),
    ("1" + "0" * 4000 + " 1", "ERR number too long"),
    ("1e4000 1", "ERR number too long"),  # 4001 digits in plain form
    ("1e-4000 1", "ERR number too long"),  # "0." + 4000 digits: 4001 digits with the 0
    ("x 1e999999999", "ERR not a number: x"),  # the first bad token is reported
]


@pytest.mark.parametrize(("request_line", "reply"), DESIGN_EXAMPLES + ERRORS)
def test_every_example_and_error_over_a_stream(request_line: str, reply: str) -> None:
    proto = SumStream()
    proto.receive_data(request_line.encode() + b"\n")
    assert drain(proto) == reply.encode() + b"\n"
    assert not proto.close_expected(), "an answered line keeps the connection open"


@pytest.mark.parametrize(("request_line", "reply"), DESIGN_EXAMPLES + ERRORS)
def test_every_example_and_error_over_udp(request_line: str, reply: str) -> None:
    svc = SumDatagram()
    expected = [reply.encode() + b"\n"]
    assert svc.handle(request_line.encode(), 0.0) == expected
    assert svc.handle(request_line.encode() + b"\n", 0.0) == expected
    assert svc.handle(request_line.encode() + b"\r\n", 0.0) == expected


def test_limits_of_the_plain_form_are_exact() -> None:
    assert add_numbers("1e3999", "0") == "1" + "0" * 3999  # 4000 digits: allowed
    assert add_numbers("9" * 4000, "1") == "1" + "0" * 4000  # the sum may be longer
    assert add_numbers("1e-3999", "0") == "0." + "0" * 3998 + "1"  # 1 + 3999 digits: allowed
    assert add_numbers("0e99999999999999", "5") == "5"  # zero is "0" whatever the exponent
    assert add_numbers("0e-3999", "1") == "1." + "0" * 3999
    assert add_numbers("0e-4000", "1") == "ERR number too long"


def test_results_never_use_an_exponent_and_zero_has_no_sign() -> None:
    assert add_numbers("1E+3", "1E+3") == "2000"
    assert add_numbers("1e-7", "0") == "0.0000001"
    assert add_numbers("-0", "-0") == "0"
    assert add_numbers("-0.00", "0") == "0.00"
    assert add_numbers("-1.5", "1.5") == "0.0"


def test_a_huge_exponent_is_refused_before_any_arithmetic() -> None:
    # Would take minutes and gigabytes if it reached Decimal arithmetic.
    assert answer_line(b"1e99999999999999999999 1e-99999999999999999999") == "ERR number too long"
    assert answer_line(b"1e" + b"9" * 8000 + b" 1") == "ERR number too long"


def test_invalid_utf8_is_an_error_reply_and_the_connection_stays_usable() -> None:
    proto = SumStream()
    proto.receive_data(b"\xff\xfe 1\n2 3\n")
    assert drain(proto) == b"ERR invalid UTF-8\n5\n"
    assert not proto.close_expected()


def test_the_token_is_echoed_as_sent() -> None:
    assert answer_line("1 zwölf".encode()) == "ERR not a number: zwölf"
    assert answer_line(b"1 a\rb") == "ERR not a number: a\rb"


SCRIPT = (
    b"2 3\n"
    b"0.1 0.2\r\n"
    b"\n"
    b"1.50 1.50\n"
    b"x 1\r\n"
    b"\xc3\xa9 1\n"  # é
    b"\xff 1\n"
    b"1e3 1\n"
    b"-1 1"  # no newline: answered at EOF
)
SCRIPT_REPLY = (
    b"5\n0.3\nERR expected two numbers\n3.00\nERR not a number: x\n"
    + "ERR not a number: é\n".encode()
    + b"ERR invalid UTF-8\n1001\n0\n"
)


def test_script_at_once() -> None:
    proto = SumStream()
    assert run_chunks(proto, [SCRIPT]) == SCRIPT_REPLY
    assert proto.close_expected()


@pytest.mark.parametrize("split", range(len(SCRIPT) + 1))
def test_script_split_at_every_byte_boundary(split: int) -> None:
    proto = SumStream()
    assert run_chunks(proto, [SCRIPT[:split], SCRIPT[split:]]) == SCRIPT_REPLY
    assert proto.close_expected()


def test_script_one_byte_at_a_time() -> None:
    proto = SumStream()
    chunks = [SCRIPT[i : i + 1] for i in range(len(SCRIPT))]
    assert run_chunks(proto, chunks) == SCRIPT_REPLY


def test_the_connection_stays_open_until_the_client_closes() -> None:
    proto = SumStream()
    for _ in range(3):
        proto.receive_data(b"1 1\n")
        assert drain(proto) == b"2\n"
        assert not proto.close_expected()
    proto.receive_eof()
    assert drain(proto) == b""
    assert proto.close_expected()


# -- the line limit ------------------------------------------------------------


def test_a_line_of_exactly_8_kib_is_answered() -> None:
    line = b"1" + b" " * (MAX_LINE - 2) + b"2"
    assert len(line) == MAX_LINE
    for ending in (b"\n", b"\r\n"):
        proto = SumStream()
        proto.receive_data(line + ending)
        assert drain(proto) == b"3\n"
        assert not proto.close_expected()


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_a_longer_line_gets_err_line_too_long_then_close(ending: bytes) -> None:
    line = b"1" + b" " * (MAX_LINE - 1) + b"2"  # 8193 bytes
    proto = SumStream()
    proto.receive_data(b"2 3\n" + line + ending + b"4 5\n")
    assert drain(proto) == b"5\nERR line too long\n"
    assert proto.close_expected()
    proto.receive_data(b"6 7\n")  # whatever follows is ignored
    assert drain(proto) == b""


def test_a_line_without_newline_is_refused_once_it_cannot_fit() -> None:
    """The memory bound: we do not wait for the newline of an endless line."""
    proto = SumStream()
    proto.receive_data(b"1" * MAX_LINE + b"\r")
    assert drain(proto) == b""  # could still be 8192 bytes + CR LF
    proto.receive_data(b"1")
    assert drain(proto) == b"ERR line too long\n"
    assert proto.close_expected()
    proto = SumStream()
    proto.receive_data(b"1" * (MAX_LINE + 1))  # no CR at the end: it cannot fit any more
    assert drain(proto) == b"ERR line too long\n"
    ok = SumStream()
    ok.receive_data(b"1" * MAX_LINE + b"\r")
    ok.receive_data(b"\n")
    assert drain(ok) == b"ERR expected two numbers\n"


def test_an_over_long_last_line_at_eof() -> None:
    proto = SumStream(max_line=10)
    proto.receive_data(b"1 2 3 4 5 6")  # 11 bytes, no newline: might end in CR
    proto.receive_eof()
    assert drain(proto) == b"ERR line too long\n"
    assert proto.close_expected()


@pytest.mark.parametrize("split", range(0, 30))
def test_line_limit_verdict_does_not_depend_on_the_split(split: int) -> None:
    data = b"1 2\n" + b"9" * 11 + b"\r\n" + b"3 4\n"
    proto = SumStream(max_line=10)
    out = run_chunks(proto, [data[:split], data[split:]])
    assert out == b"3\nERR line too long\n"


def test_line_buffer_accepts_exactly_the_limit_with_crlf_split_anywhere() -> None:
    data = b"a" * 10 + b"\r\n"
    for split in range(len(data) + 1):
        buf = LineBuffer(10)
        buf.feed(data[:split])
        first = buf.next_line()
        buf.feed(data[split:])
        lines = [first, buf.next_line()]
        assert b"a" * 10 in lines
        assert TOO_LONG not in lines


# -- pipelining, batches and memory -------------------------------------------


def test_pipelined_replies_come_in_request_order_in_bounded_batches() -> None:
    proto = SumStream(batch_lines=10)
    requests = b"".join(f"{i} {i}\n".encode() for i in range(1000))
    proto.receive_data(requests)
    calls = []
    for _ in range(1000):
        data = proto.data_to_send()
        if not data:
            break
        calls.append(data)
    assert all(chunk.count(b"\n") <= 10 for chunk in calls), "one call answered too many lines"
    assert b"".join(calls) == b"".join(f"{2 * i}\n".encode() for i in range(1000))


def test_data_to_send_respects_max_bytes() -> None:
    proto = SumStream()
    proto.receive_data(b"\n" * 100)  # 100 x "ERR expected two numbers\n"
    out = drain(proto, 7)
    assert out == b"ERR expected two numbers\n" * 100


def test_a_client_far_ahead_is_asked_to_wait_not_answered_in_one_go() -> None:
    """Past the cap the protocol asks the runtime to stop reading; answering stays lazy
    and bounded per call, so one pipelining client cannot stall the others."""
    proto = SumStream(max_pending=16 * 1024, batch_lines=64)
    assert proto.wants_input()
    proto.receive_data(b"1 1\n" * 8192)  # 32 KiB, more than the cap
    assert not proto.wants_input()
    first = proto.data_to_send(1 << 20)
    assert first == b"2\n" * 64, "one call answers one bounded batch"
    out = first + drain(proto)
    assert out == b"2\n" * 8192
    assert proto.wants_input()


# -- properties ----------------------------------------------------------------

numbers = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{'.' + frac if frac else ''}{exp}",
    st.sampled_from(["", "+", "-"]),
    st.from_regex(r"[0-9]{1,30}", fullmatch=True),
    st.one_of(st.just(""), st.from_regex(r"[0-9]{1,30}", fullmatch=True)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, s, n: f"{e}{s}{n}",
            st.sampled_from("eE"),
            st.sampled_from(["", "+", "-"]),
            st.integers(min_value=0, max_value=60),
        ),
    ),
)


def _fraction_digits(token: str) -> int:
    exponent = decimal.Decimal(token).as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


@given(numbers, numbers)
def test_reply_is_the_exact_decimal_sum(a: str, b: str) -> None:
    reply = answer_line(f"{a} {b}".encode())
    with decimal.localcontext(decimal.Context(prec=1000)):
        expected = decimal.Decimal(a) + decimal.Decimal(b)
    assert decimal.Decimal(reply) == expected
    assert "e" not in reply.lower()
    assert not reply.startswith("-0") or decimal.Decimal(reply) != 0
    fraction = reply.partition(".")[2]
    assert len(fraction) == max(_fraction_digits(a), _fraction_digits(b))


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
@settings(max_examples=300)
def test_any_bytes_give_one_reply_line_per_request_line(data: bytes, split: int) -> None:
    proto = SumStream(max_line=64)
    out = run_chunks(proto, [data[i : i + split] for i in range(0, len(data), split)])
    assert proto.close_expected()
    lines = data.split(b"\n")
    complete, last = lines[:-1], lines[-1]
    requests = [*complete, last] if last else complete
    too_long = next(
        (i for i, line in enumerate(requests) if len(line.removesuffix(b"\r")) > 64), None
    )
    replies = out.split(b"\n")
    assert replies[-1] == b"", "every reply ends with LF"
    replies = replies[:-1]
    if too_long is None:
        assert len(replies) == len(requests)
    else:
        assert len(replies) == too_long + 1
        assert replies[-1] == b"ERR line too long"


@given(st.binary(max_size=9000))
@settings(max_examples=100)
def test_any_datagram_gets_exactly_one_reply_line(data: bytes) -> None:
    replies = SumDatagram().handle(data, 0.0)
    assert len(replies) == 1
    assert replies[0].endswith(b"\n")
    assert replies[0].count(b"\n") == 1


@given(st.lists(st.tuples(numbers, numbers), max_size=40), st.integers(1, 64))
def test_pipelined_replies_stay_in_request_order(pairs: list[tuple[str, str]], chunk: int) -> None:
    payload = b"".join(f"{a}\t{b}\r\n".encode() for a, b in pairs)
    proto = SumStream(batch_lines=3)
    out = run_chunks(proto, [payload[i : i + chunk] for i in range(0, len(payload), chunk)])
    expected = b"".join(answer_line(f"{a} {b}".encode()).encode() + b"\n" for a, b in pairs)
    assert out == expected


def test_udp_refuses_several_requests_in_one_datagram() -> None:
    svc = SumDatagram()
    assert svc.handle(b"1 2\n3 4\n", 0.0) == [b"ERR one request per datagram\n"]
    assert svc.handle(b"1 " * 5000, 0.0) == [b"ERR line too long\n"]
