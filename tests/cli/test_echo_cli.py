"""``socketkit echo``: the message from stdin or --size, and ambiguous flags refused."""

from __future__ import annotations

import subprocess

import pytest

from socketkit import Endpoint
from socketkit.cli.main import main
from socketkit.client.echo import generated_message
from socketkit.runtime import ServerThread
from tests.support import PY, TIMEOUT


def _addr(ep: Endpoint) -> str:
    return f"{ep.host}:{ep.port}"


def test_generated_message_is_chargen_rotation_with_exact_size() -> None:
    data = generated_message(200)
    assert len(data) == 200
    first, second = data.split(b"\n")[:2]
    assert first == bytes(range(33, 33 + 72))
    assert second == bytes(range(34, 34 + 72))
    assert generated_message(0) == b""


def test_size_sends_that_many_generated_bytes(
    echo_server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = _addr(echo_server.address("echo", "tcp"))
    assert main(["echo", "--size", "1000", "--to", ep, "--chunk", "100", "-v"]) == 0
    out, err = capsys.readouterr()
    assert out == generated_message(1000).decode() + "\n"
    assert "sendall(1000 bytes)" in err
    assert "echoed 1000 bytes in 10 chunk(s)" in err


def test_message_from_stdin_when_none_is_given(echo_server: ServerThread) -> None:
    ep = _addr(echo_server.address("echo", "tcp"))
    done = subprocess.run(
        [*PY, "echo", "--to", ep, "-v", "--chunk", "4"],
        input=b"line one\nline two\n",
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"line one\nline two\n"
    assert b"sendall(18 bytes)" in done.stderr
    assert done.stderr.count(b"recv returned 4 bytes") == 4


def test_udp_message_from_stdin(echo_server: ServerThread) -> None:
    ep = _addr(echo_server.address("echo", "udp"))
    done = subprocess.run(
        [*PY, "echo", "--udp", "--to", ep],
        input=b"one datagram",
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"one datagram\n"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["hi", "--unix", "/tmp/x.sock", "--to", "127.0.0.1:7"], "name two servers"),
        (["--unix", "/tmp/x.sock", "--to", "127.0.0.1:10007", "--size", "3"], "name two servers"),
        (["hi", "--udp", "--unix", "/tmp/x.sock"], "not allowed with argument"),
        (["hi", "--udp", "--to", "unix:/tmp/x.sock"], "--udp needs HOST:PORT"),
        (["hi", "--size", "5"], "either MESSAGE or --size"),
        (["--size", "0"], "--size"),
    ],
)
def test_ambiguous_combinations_are_one_line_usage_errors(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["echo", *argv]) == 64
    err = capsys.readouterr().err
    assert words in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_unix_with_to_exits_64_in_a_subprocess() -> None:
    done = subprocess.run(
        [*PY, "echo", "hi", "--unix", "/nonexistent.sock", "--to", "127.0.0.1:7"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 64
    assert done.stderr.decode().count("\n") == 1
    assert "--unix /nonexistent.sock and --to 127.0.0.1:7" in done.stderr.decode()
