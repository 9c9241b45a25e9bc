"""The client commands (daytime, time, qotd, chargen, discard, sum) and serve's new flags.

In-process through ``main(argv)`` against servers in a thread, plus a few
subprocess runs for exit codes, the shutdown summary and the absence of
tracebacks. Loopback only; every wait has a timeout.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from socketkit.cli.main import main
from socketkit.protocols.chargen import pattern
from socketkit.protocols.qotd import default_quotes
from socketkit.runtime import Limits, ServerThread, serve_in_thread
from socketkit.runtime.guards import UdpGuard
from tests.support import TIMEOUT, closed_port, one_shot_server

SERVICES = ("discard", "daytime", "qotd", "chargen", "time", "sum")
DAYTIME = re.compile(r"\w+day, \w+ \d{1,2}, \d{4} \d\d:\d\d:\d\d-UTC")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main()`` configures the "socketkit" logger (its own handler, no propagation);
    put it back, or later tests that capture its records see them twice."""
    logger = logging.getLogger("socketkit")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    limits = Limits()
    thread = serve_in_thread(*SERVICES, udp_policy=UdpGuard(limits), limits=limits)
    try:
        yield thread
    finally:
        thread.stop(timeout=TIMEOUT)


def to(server: ServerThread, name: str) -> str:
    return str(server.address(name, "tcp"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("udp", [[], ["--udp"]])
def test_daytime(server: ServerThread, capsys: pytest.CaptureFixture[str], udp: list[str]) -> None:
    code, out, _ = run(capsys, "daytime", "--to", to(server, "daytime"), *udp)
    assert code == 0
    assert DAYTIME.fullmatch(out.strip())


@pytest.mark.parametrize("udp", [[], ["--udp"]])
def test_qotd(server: ServerThread, capsys: pytest.CaptureFixture[str], udp: list[str]) -> None:
    code, out, _ = run(capsys, "qotd", "--to", to(server, "qotd"), *udp)
    assert code == 0
    assert out.replace("\n", "\r\n").encode() in default_quotes()


@pytest.mark.parametrize("udp", [[], ["--udp"]])
def test_time(server: ServerThread, capsys: pytest.CaptureFixture[str], udp: list[str]) -> None:
    code, out, _ = run(capsys, "time", "--to", to(server, "time"), *udp)
    assert code == 0
    first, second = out.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", first)
    assert "agrees with this machine's clock" in second
    code, out, _ = run(capsys, "time", "--to", to(server, "time"), "--json", *udp)
    data = json.loads(out)
    assert abs(data["offset_seconds"]) < 2
    assert data["seconds_since_1900"] - data["unix_time"] == 2_208_988_800


def test_chargen_lines_and_bytes(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "chargen", "--to", to(server, "chargen"), "--lines", "3")
    assert code == 0
    assert out.encode() == pattern(0, 3 * 74)
    code, out, _ = run(capsys, "chargen", "--to", to(server, "chargen"), "--bytes", "1000")
    assert code == 0
    assert out.encode() == pattern(0, 1000)
    code, out, _ = run(capsys, "chargen", "--to", to(server, "chargen"), "--udp")
    assert code == 0
    assert len(out.encode()) <= 512


def test_discard_bytes_and_stdin(
    server: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "discard", "--to", to(server, "discard"), "--bytes", "2000000")
    assert code == 0
    assert re.fullmatch(
        r"sent 2000000 bytes in [\d.]+ s: [\d.]+ MiB/s \(the server read them all and closed\)\n",
        out,
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * 12345)))
    code, out, _ = run(capsys, "discard", "--to", to(server, "discard"), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["bytes_sent"] == 12345
    assert result["confirmed"] is True
    code, out, _ = run(
        capsys, "discard", "--to", to(server, "discard"), "--udp", "--bytes", "5000", "--json"
    )
    assert json.loads(out)["datagrams"] == 4


@pytest.mark.parametrize("udp", [[], ["--udp"]])
def test_sum_two_numbers(
    server: ServerThread, capsys: pytest.CaptureFixture[str], udp: list[str]
) -> None:
    assert run(capsys, "sum", "0.1", "0.2", "--to", to(server, "sum"), *udp)[:2] == (0, "0.3\n")
    # options between the numbers, and a negative number after them
    assert run(capsys, "sum", "2", "--to", to(server, "sum"), *udp, "-3")[:2] == (0, "-1\n")
    assert run(capsys, "sum", "--to", to(server, "sum"), *udp, "--", "-1e3", "1")[:2] == (
        0,
        "-999\n",
    )
    code, out, err = run(capsys, "sum", "1", "x", "--to", to(server, "sum"), *udp)
    assert code == 65
    assert out == ""
    assert err == "socketkit: the server answered: ERR not a number: x\n"


@pytest.mark.parametrize("udp", [[], ["--udp"]])
def test_sum_reads_request_lines_from_stdin(
    server: ServerThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    udp: list[str],
) -> None:
    stdin = b"2 3\n99999999999999999999 1\n\nnope 1\n1.50 1.50"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code, out, err = run(capsys, "sum", "--to", to(server, "sum"), *udp)
    # Every reply is shown; the ERR answers make the run fail, as `sum A B` does.
    assert code == 65
    assert err == "socketkit: the server answered ERR to 2 of 5 requests (shown above)\n"
    assert out.splitlines() == [
        "5",
        "100000000000000000000",
        "ERR expected two numbers",
        "ERR not a number: nope",
        "3.00",
    ]


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sum", "1")
    assert code == 64
    assert "sum takes two numbers, not 1" in err
    code, _, err = run(capsys, "chargen", "--lines", "0")
    assert code == 64
    code, _, err = run(capsys, "daytime", "--udp", "--to", "unix:/tmp/x.sock")
    assert code == 64
    assert "--udp needs HOST:PORT" in err


def test_nobody_listening_is_a_clear_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    with closed_port() as port:
        code, _, err = run(capsys, "daytime", "--to", f"127.0.0.1:{port}", "--timeout", "5")
    assert code == 69
    assert err.startswith("socketkit: connection refused by 127.0.0.1:")
    assert len(err.splitlines()) == 1


def test_udp_without_answer_times_out_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    # A bound UDP socket that never answers (no ICMP "port unreachable" either).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        code, _, err = run(capsys, "time", "--udp", "--to", f"127.0.0.1:{port}", "--timeout", "0.3")
    assert code == 75
    assert "no reply from" in err
    assert "chose not to answer" in err


@pytest.mark.parametrize("command", ["daytime", "time", "qotd", "chargen", "discard", "sum"])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"socketkit {command}" in out
    assert "--to HOST:PORT" in out
    assert "--udp" in out


# -- serve: the new flags ----------------------------------------------------------


def test_serve_help_lists_every_new_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--max-line",
        "--udp-rate",
        "--udp-burst",
        "--udp-amplification",
        "--udp-allow-low-ports",
        "--udp-guard-loopback",
        "--quotes",
        "--max-connections",
        "--max-per-source",
        "--idle-timeout",
    ):
        assert flag in out, flag


def test_serve_refuses_a_quote_over_the_limit_before_binding(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quotes = tmp_path / "quotes.txt"
    quotes.write_text("Short.\n-- A\n\n" + "x" * 600 + "\n-- B\n", encoding="utf-8")
    code, _, err = run(capsys, "serve", "qotd", "--quotes", str(quotes), "--port", "0")
    assert code == 65
    assert err == (
        f"socketkit: {quotes}: quote 2 (line 4) is 608 bytes with its CR LF line endings; "
        "RFC 865 wants under 512 - shorten it or split it in two\n"
    )
    code, _, err = run(capsys, "serve", "--quotes", str(tmp_path / "missing.txt"))
    assert code == 65
    assert "cannot read quotes from" in err


def test_serve_rejects_bad_udp_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "serve", "--udp-rate", "-1")[0] == 64
    assert run(capsys, "serve", "--udp-amplification", "lots")[0] == 64
    assert run(capsys, "serve", "--udp-io", "fast")[0] == 64


def test_a_bad_udp_io_environment_is_one_line_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCKETKIT_UDP_IO", "fast")
    code, _, err = run(capsys, "serve", "echo", "--port", "0")
    assert code == 64
    assert err.count("\n") == 1 and "SOCKETKIT_UDP_IO='fast'" in err
    assert "Traceback" not in err


def _read_lines(stream: io.BufferedReader | None, into: queue.Queue[str]) -> None:
    assert stream is not None
    for raw in iter(stream.readline, b""):
        into.put(raw.decode())
    into.put("")


def test_serve_subprocess_quotes_limits_and_shutdown_summary(tmp_path: pathlib.Path) -> None:
    """The whole path: start-up table, --quotes in use, a rate limit crossed, the
    counters in the summary printed at SIGINT, no traceback anywhere."""
    quotes = tmp_path / "quotes.txt"
    quotes.write_text("Only this one.\n-- The Test\n", encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "socketkit",
            "serve",
            "qotd",
            "sum",
            "--port",
            "qotd=0",
            "--port",
            "sum=0",
            "--quotes",
            str(quotes),
            "--udp-guard-loopback",
            "--udp-rate",
            "0.001",
            "--udp-burst",
            "2",
            "--udp-amplification",
            "off",
            "--max-line",
            "16",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        table = [lines.get(timeout=TIMEOUT) for _ in range(4)]
        rows = {tuple(line.split("\t")[:2]): line.split("\t")[2] for line in table}
        qotd_tcp = rows[("qotd", "tcp")]
        sum_udp = rows[("sum", "udp")]
        sum_tcp = rows[("sum", "tcp")]
        assert (
            subprocess.run(
                [sys.executable, "-m", "socketkit", "qotd", "--to", qotd_tcp],
                capture_output=True,
                timeout=TIMEOUT,
                check=True,
            ).stdout
            == b"Only this one.\n-- The Test\n"
        )
        host, _, port = sum_udp.rpartition(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect((host, int(port)))
            for _ in range(5):
                sock.send(b"1 1\n")
            assert sock.recv(100) == b"2\n"
            assert sock.recv(100) == b"2\n"
        host, _, port = sum_tcp.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(b"1 1\n" + b"1" * 17 + b"\n")
            with sock.makefile("rb") as replies:
                assert replies.read() == b"2\nERR line too long\n"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=TIMEOUT)  # stdout is read by the thread; stderr is a few lines
        finally:
            proc.kill()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == 0
    rest = []
    while True:
        line = lines.get(timeout=TIMEOUT)
        if not line:
            break
        rest.append(line)
    assert proc.stdout is not None
    proc.stdout.close()
    summary = rest[-1]
    assert summary.startswith("socketkit: stopped:")
    assert "3 datagrams rate limited" in summary
    assert b"Traceback" not in err


def test_sum_subprocess_prints_and_exits_cleanly(server: ServerThread) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "socketkit", "sum", "2", "3", "--to", to(server, "sum")],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"5\n", b"")
    done = subprocess.run(
        [sys.executable, "-m", "socketkit", "sum", "1e999999999", "1", "--to", to(server, "sum")],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 65
    assert done.stderr == b"socketkit: the server answered: ERR number too long\n"


# -- review fixes: closed stdout, sum replies, discard that cannot finish -----------


class _ClosedStdout(io.StringIO):
    """A stdout whose reader has gone (``| head -1``): every write fails like a pipe's."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def _read_to_eof(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [(["chargen"], b""), (["chargen", "--udp"], b""), (["sum"], b"1 2\n3 4\n")],
)
def test_a_closed_stdout_is_a_quiet_exit_not_a_lost_connection(
    server: ServerThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: bytes,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    monkeypatch.setattr(sys, "stdout", _ClosedStdout())
    code = main([*argv, "--to", to(server, argv[0])])
    assert (code, capsys.readouterr().err) == (0, "")


def test_chargen_piped_into_head_exits_0_without_a_word(server: ServerThread) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "socketkit", "chargen", "--to", to(server, "chargen")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == pattern(0, 74)
        proc.stdout.close()  # what head does after its line
        try:
            err = proc.stderr.read()
            code = proc.wait(timeout=TIMEOUT)
        finally:
            proc.kill()
    assert b"lost" not in err
    assert b"Traceback" not in err
    assert code == 0


def test_sum_refuses_a_reply_that_is_not_a_sum_reply(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(conn: socket.socket) -> None:
        conn.recv(100)
        conn.sendall(b"\x1b[2Jhello\r\n")

    with one_shot_server(answer) as address:
        code, out, err = run(capsys, "sum", "2", "3", "--to", address)
    assert code == 76
    assert out == ""
    assert err == (
        f"socketkit: the server at {address} did not answer like a sum server: "
        '"\\x1b[2Jhello" - is this the right service?\n'
    )


def test_sum_from_stdin_reports_requests_left_unanswered(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(conn: socket.socket) -> None:
        assert _read_to_eof(conn) == b"1 2\n3 4\n5 6\n"
        conn.sendall(b"3\n")

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"1 2\n3 4\n5 6\n")))
    with one_shot_server(answer) as address:
        code, out, err = run(capsys, "sum", "--to", address)
    assert (code, out) == (74, "3\n")
    assert err == (f"socketkit: {address} closed the connection with 2 of 3 requests unanswered\n")


@pytest.mark.parametrize("udp", [[], ["--udp"]])
def test_sum_escapes_control_characters_it_prints(
    server: ServerThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    udp: list[str],
) -> None:
    # The server repeats a bad number in its ERR reply: it must not reach the terminal raw.
    code, out, err = run(capsys, "sum", "1", "\x1b[2J\x07", "--to", to(server, "sum"), *udp)
    assert (code, out) == (65, "")
    assert err == 'socketkit: the server answered: "ERR not a number: \\x1b[2J\\x07"\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"2 3\n\x1b]0;pwned\x07 1\n")))
    code, out, err = run(capsys, "sum", "--to", to(server, "sum"), *udp)
    assert code == 65
    assert out == '5\n"ERR not a number: \\x1b]0;pwned\\x07"\n'
    assert "\x1b" not in out + err


@pytest.mark.parametrize("number", ["3\n5", "3 5", "", "\t7"])
def test_sum_refuses_a_number_that_would_make_another_request(
    capsys: pytest.CaptureFixture[str], number: str
) -> None:
    with closed_port() as port:  # refused before any connect: a connect would exit 69
        code, out, err = run(capsys, "sum", "2", number, "--to", f"127.0.0.1:{port}")
    assert (code, out) == (64, "")
    assert err.startswith("socketkit: bad number ")
    assert "without spaces or line breaks" in err
    assert len(err.splitlines()) == 1


def test_discard_to_a_server_that_answers_is_not_reported_as_read(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "discard", "--to", to(server, "daytime"), "--bytes", "10")
    assert (code, out) == (76, "")
    assert err.startswith(f'socketkit: the server at {to(server, "daytime")} sent data back ("')
    assert "a discard server never sends anything" in err
    assert "read them all" not in out + err


def test_discard_to_an_echo_server_ends_instead_of_hanging() -> None:
    echo = serve_in_thread("echo", udp=False)
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "socketkit", "discard", "--bytes", "200000000"),
                *("--to", str(echo.address("echo", "tcp")), "--timeout", "2"),
            ],
            capture_output=True,
            timeout=TIMEOUT,
        )
    finally:
        echo.stop(timeout=TIMEOUT)
    assert done.returncode == 76
    assert done.stdout == b""
    assert b"a discard server never sends anything" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_discard_times_out_when_the_server_stops_reading() -> None:
    # A listener that never accepts: the kernel takes the connection and buffers
    # some megabytes, then nobody reads. No byte ever comes back. A subprocess,
    # so that a client that hangs fails this test at its own timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        done = subprocess.run(
            [
                *(sys.executable, "-m", "socketkit", "discard", "--bytes", "200000000"),
                *("--to", f"127.0.0.1:{listener.getsockname()[1]}", "--timeout", "0.5"),
            ],
            capture_output=True,
            timeout=TIMEOUT,
        )
    assert (done.returncode, done.stdout) == (75, b"")
    assert b"the server stopped reading" in done.stderr
    assert len(done.stderr.splitlines()) == 1
