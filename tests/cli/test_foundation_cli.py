"""The foundation's commands: serve, echo and send, in-process and as subprocesses.

Every expected failure must be one line on stderr with its own exit code and
no traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from socketkit import Endpoint, ServiceInfo, serve_in_thread
from socketkit.cli.main import main
from socketkit.cli.serve import _reachable
from socketkit.protocols import OutputBuffer, StreamProtocol
from socketkit.protocols.echo import EchoDatagram
from socketkit.runtime import ServerThread
from tests.support import (
    PY,
    TIMEOUT,
    ReplyThenClose,
    closed_port,
    one_shot_server,
    recv_until_eof,
    serve_process,
    stalled_listener,
)


def run_cli(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*PY, *argv], input=stdin, capture_output=True, timeout=TIMEOUT * 3, check=False
    )


def one_line_error(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    assert text.startswith("socketkit: ")
    return text


def addr(ep: Endpoint) -> str:
    return str(ep)


# -- echo -----------------------------------------------------------------------


def test_echo_prints_the_reply(
    echo_server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["echo", "hello world", "--to", addr(echo_server.address("echo", "tcp"))]) == 0
    assert capsys.readouterr().out == "hello world\n"


def test_echo_udp_and_unix(echo_server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    udp = addr(echo_server.address("echo", "udp"))
    assert main(["echo", "over udp", "--to", udp, "--udp"]) == 0
    unix = echo_server.address("echo", "unix").path
    assert unix is not None
    assert main(["echo", "over unix", "--unix", unix]) == 0
    assert capsys.readouterr().out == "over udp\nover unix\n"


def test_echo_verbose_narrates_16_byte_chunks(
    echo_server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "a message longer than sixteen bytes"
    ep = addr(echo_server.address("echo", "tcp"))
    assert main(["echo", message, "--to", ep, "--chunk", "16", "-v"]) == 0
    out, err = capsys.readouterr()
    assert out == message + "\n"
    assert "connected: local 127.0.0.1:" in err
    assert f"sendall({len(message)} bytes)" in err
    assert err.count("recv returned 16 bytes") == 2
    assert "recv returned 3 bytes" in err


class ShoutStream(StreamProtocol):
    """A broken echo server for the test: it answers in upper case."""

    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._out = OutputBuffer()

    def _on_data(self, data: bytes) -> None:
        self._out.append(data.upper())

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        return self.eof_received and not self._out


SHOUT = ServiceInfo("shout", "echoes in upper case", None, None, ShoutStream, EchoDatagram, 10999)


def test_echo_exits_1_when_the_reply_differs(capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread(SHOUT, udp=False) as server:
        assert main(["echo", "quiet", "--to", addr(server.address("shout", "tcp"))]) == 1
    out, err = capsys.readouterr()
    assert out == "QUIET\n"
    assert "reply differs" in err


def test_echo_refused_names_the_server_and_the_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with closed_port() as port:
        assert main(["echo", "x", "--to", f"127.0.0.1:{port}"]) == 69
    assert (
        capsys.readouterr().err
        == f"socketkit: connection refused by 127.0.0.1:{port} - is the server running?\n"
    )


def test_echo_to_a_path_that_is_not_a_socket(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["echo", "hi", "--unix", str(tmp_path)]) == 64  # a directory
    err = capsys.readouterr().err
    assert (
        err
        == f"socketkit: {tmp_path} is not a Unix socket - give the path `socketkit serve --unix` printed\n"
    )


def test_echo_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with stalled_listener() as (host, port):
        assert main(["echo", "x", "--to", f"{host}:{port}", "--timeout", "0.3"]) == 75
    assert "timed out" in capsys.readouterr().err


def test_echo_name_that_does_not_resolve(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No DNS query leaves the machine: the resolver is replaced for this test.
    def no_such_name(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    assert main(["echo", "x", "--to", "no-such-host.example:7", "--loop", "asyncio"]) == 68
    err = capsys.readouterr().err
    assert err.startswith("socketkit: cannot resolve no-such-host.example")
    assert "check the host name" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["echo", "x", "--to", "localhost"], "expected HOST:PORT"),
        (["echo", "x", "--to", "::1:7"], "brackets"),
        (["echo", "x", "--to", "127.0.0.1:99999"], "0 to 65535"),
        (["echo", "x", "--timeout", "-1"], "expected a number > 0"),
        (["echo", "x", "--size", "3"], "either MESSAGE or --size"),
        (["nosuchcommand"], "invalid choice"),
        (["serve", "nosuchservice"], "unknown service"),
        (["serve", "--port-base", "70000"], "choose 0-65535"),
        (["send"], "send needs HOST:PORT"),
        (
            ["send", "127.0.0.1:9", "x", "--bogus"],
            "socketkit: send: unrecognized arguments: --bogus (see socketkit send --help)",
        ),
        (["echo", "x", "--timeout", "y"], "socketkit: echo: argument --timeout"),
        (["addr", "--space", "--population", "abc"], "expected a whole number"),
        (
            ["--bogus", "echo", "hi"],
            "socketkit: unrecognized arguments: --bogus (see socketkit --help)",
        ),
    ],
)
def test_usage_errors_exit_64_with_one_line(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert words in err
    assert not err.startswith("socketkit: socketkit")


def test_unreachable_network_in_a_namespace_of_our_own() -> None:
    """A fresh network namespace has no route at all (lo is down): ENETUNREACH, exit 72."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to create a network namespace")
    done = subprocess.run(
        [unshare, "-n", *PY, "echo", "x", "--to", "127.0.0.1:7"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 72, done.stderr
    assert "unreachable" in one_line_error(done.stderr)


def test_subprocess_errors_have_distinct_codes_and_no_traceback() -> None:
    with closed_port() as port:
        refused = run_cli("echo", "x", "--to", f"127.0.0.1:{port}")
    usage = run_cli("echo", "x", "--to", "nonsense")
    codes = {refused.returncode, usage.returncode}
    assert codes == {69, 64}
    for done in (refused, usage):
        one_line_error(done.stderr)


# -- serve ----------------------------------------------------------------------


def test_serve_prints_endpoints_serves_and_stops_cleanly_on_sigint(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "s.sock")
    with serve_process("echo", "--port", "0", "--unix", path, last="echo\tunix") as (
        proc,
        reader,
    ):
        rows = [line.split("\t") for line in reader.lines if line.startswith("echo\t")]
        transports = {row[1]: row[2] for row in rows}
        assert set(transports) == {"tcp", "udp", "unix"}
        host = transports["tcp"].rpartition(":")[0]
        assert host == "127.0.0.1"
        assert transports["udp"] == transports["tcp"]
        for extra in ([], ["--udp"]):
            done = run_cli("echo", "ping", "--to", transports["tcp"], *extra)
            assert done.stdout == b"ping\n", done.stderr
        done = run_cli("echo", "via unix", "--unix", path)
        assert done.stdout == b"via unix\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "Traceback" not in err.decode()
    summary = out.decode().strip().splitlines()[-1]
    assert summary.startswith("socketkit: stopped: 2 connections served")
    assert "bytes received" in summary
    assert not os.path.exists(path)


def test_serve_sigterm_is_graceful_too(unix_dir: str) -> None:
    path = os.path.join(unix_dir, "t.sock")
    with serve_process("echo", "--port", "0", "--unix", path, last="echo\tunix") as (proc, _):
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.decode().strip().splitlines()[-1].startswith("socketkit: stopped: 0 connections")


def test_serve_sigterm_stops_it_even_when_its_output_is_gone() -> None:
    # `socketkit serve 2>&1 | head`: the reader left before the signal came.
    with serve_process("echo", "--port", "0", last="try:", merge_stderr=True) as (proc, _):
        assert proc.stdout is not None
        proc.stdout.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0


@pytest.mark.parametrize(
    ("bound", "hint"),
    [
        (Endpoint("0.0.0.0", 7), "127.0.0.1:7"),
        (Endpoint("::", 7), "[::1]:7"),
        (Endpoint("192.0.2.1", 7), "192.0.2.1:7"),
    ],
)
def test_the_try_hint_names_an_address_a_client_can_reach(bound: Endpoint, hint: str) -> None:
    assert str(_reachable(bound)) == hint


def test_the_try_hint_for_udp_only_says_udp() -> None:
    with serve_process("echo", "--port", "0", "--no-tcp", last="try:", merge_stderr=True) as (
        proc,
        reader,
    ):
        hint = reader.lines[-1]
        assert re.fullmatch(r"try: socketkit echo hello --to 127\.0\.0\.1:\d+ --udp", hint)
        done = run_cli(*hint.removeprefix("try: socketkit ").split())
        assert (done.returncode, done.stdout) == (0, b"hello\n"), done.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0


def test_serve_port_in_use_exit_73(capsys: pytest.CaptureFixture[str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        assert main(["serve", "echo", "--port", str(port), "--no-udp"]) == 73
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert err.startswith(f"socketkit: address already in use: 127.0.0.1:{port}")
    assert err.count("\n") == 1


def test_serve_address_not_on_this_machine_exit_78(capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never one of our addresses; bind fails locally.
    assert main(["serve", "echo", "--host", "192.0.2.1", "--port", "0"]) == 78
    assert "not on this machine" in capsys.readouterr().err


def test_serve_privileged_port_without_permission_exit_77() -> None:
    """Root with CAP_NET_BIND_SERVICE dropped is refused ports below 1024, like any user."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            if int(f.read()) <= 7:
                pytest.skip("this machine lets anyone bind port 7 (ip_unprivileged_port_start)")
    except FileNotFoundError:
        pass
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0:
        if setpriv is None:
            pytest.skip("running as root without setpriv(1) to drop CAP_NET_BIND_SERVICE")
        prefix = [setpriv, "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service"]
    else:
        prefix = []
    done = subprocess.run(
        [*prefix, *PY, "serve", "echo", "--port-base", "0", "--no-udp"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 77, done.stderr
    text = one_line_error(done.stderr)
    assert "ports below 1024 need root or CAP_NET_BIND_SERVICE" in text


# -- send -----------------------------------------------------------------------


def test_send_8_mib_through_echo_byte_exact(echo_server: ServerThread) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    done = run_cli("send", addr(echo_server.address("echo", "tcp")), stdin=payload)
    assert done.returncode == 0, done.stderr
    assert done.stdout == payload


def test_send_message_unix_and_hex(echo_server: ServerThread) -> None:
    unix = echo_server.address("echo", "unix")
    for argv in (["--hex", "hi"], ["hi", "--hex"]):  # options between, as in --help, or after
        done = run_cli("send", str(unix), *argv)
        assert done.stdout == b"hi\n"
        err = done.stderr.decode()
        assert "> 00000000  68 69 0a" in err
        assert "< 00000000  68 69 0a" in err


def test_send_udp_one_datagram_per_read(echo_server: ServerThread) -> None:
    ep = addr(echo_server.address("echo", "udp"))
    done = run_cli("send", ep, "--udp", "-q", "1", stdin=b"one datagram\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"one datagram\n"


class GreetStream(ReplyThenClose):
    """Says hello and closes at once, whatever the client does."""

    REPLY = b"hello and goodbye\n"


class SilentStream(GreetStream):
    """Reads everything and says nothing; closes only after the client does.

    Without FIN from the client (--no-shutdown), only -q can end a session with it.
    """

    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._out.take()

    def close_expected(self) -> bool:
        return self.eof_received


GREET = ServiceInfo("greet", "hello, then close", None, None, GreetStream, None, 10998)
SILENT = ServiceInfo("silent", "never answers", None, None, SilentStream, None, 10997)


def test_send_exits_when_the_peer_closes_even_with_stdin_open() -> None:
    with serve_in_thread(GREET, udp=False) as server:
        ep = addr(server.address("greet", "tcp"))
        # stdin stays open (a pipe we never close): only the peer's close can end it.
        proc = subprocess.Popen([*PY, "send", ep], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            out = proc.stdout.read()
            assert proc.wait(TIMEOUT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(TIMEOUT)
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    stream.close()
    assert out == b"hello and goodbye\n"


@contextmanager
def half_closing_peer() -> Iterator[tuple[str, list[bytes]]]:
    """A peer that greets, half-closes (FIN) and then reads until we close."""
    got: list[bytes] = []

    def greet_then_read(conn: socket.socket) -> None:
        conn.sendall(b"hello, I am done talking\n")
        conn.shutdown(socket.SHUT_WR)
        got.append(recv_until_eof(conn))

    with one_shot_server(greet_then_read) as address:
        yield address, got


def test_send_no_exit_on_peer_close_keeps_sending_until_input_ends() -> None:
    with half_closing_peer() as (ep, got):
        done = run_cli("send", ep, "--no-exit-on-peer-close", stdin=b"more input\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello, I am done talking\n"
    assert got == [b"more input\n"], "our input still reached the half-closed peer"


def test_send_no_exit_on_peer_close_says_why_when_the_peer_closes_fully() -> None:
    # A full close: what we send next is answered with a reset, long before
    # 32 MiB of input (more than every buffer on the way holds) is through.
    with one_shot_server(lambda conn: conn.close()) as ep:
        done = run_cli("send", ep, "--no-exit-on-peer-close", stdin=b"x" * (32 << 20))
    assert done.returncode == 74
    err = one_line_error(done.stderr)
    assert "closed the connection before our input ended" in err
    assert "needs a peer that only half-closes" in err


def test_send_no_exit_on_peer_close_after_input_ended_is_a_plain_reset() -> None:
    def read_then_reset(conn: socket.socket) -> None:
        recv_until_eof(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST, after our whole input (and FIN) arrived

    with one_shot_server(read_then_reset) as ep:
        done = run_cli("send", ep, "hi", "--no-exit-on-peer-close")
    assert done.returncode == 74
    err = one_line_error(done.stderr)
    assert "connection lost (Connection reset by peer)" in err
    assert "before our input ended" not in err


def test_send_default_stops_when_the_peer_half_closes() -> None:
    with half_closing_peer() as (ep, _got):
        done = run_cli("send", ep, "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello, I am done talking\n"


def test_send_quit_after_eof_ends_a_session_with_a_silent_peer() -> None:
    with serve_in_thread(SILENT, udp=False) as server:
        ep = addr(server.address("silent", "tcp"))
        done = run_cli("send", ep, "--no-shutdown", "-q", "0.1", stdin=b"anyone there?\n")
        stats = server.statistics()
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert stats.bytes_received == len(b"anyone there?\n")


def test_send_refused_is_one_line() -> None:
    with closed_port() as port:
        done = run_cli("send", f"127.0.0.1:{port}", "x")
    assert done.returncode == 69
    assert "is the server running?" in one_line_error(done.stderr)


def test_echo_empty_message_over_udp_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with closed_port() as port:
        assert main(["echo", "", "--udp", "--to", f"127.0.0.1:{port}"]) == 64
    assert "empty UDP message" in capsys.readouterr().err


def test_nan_seconds_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "127.0.0.1:9", "x", "-q", "nan"]) == 64
    assert main(["serve", "echo", "--idle-timeout", "inf"]) == 64
    err = capsys.readouterr().err
    assert err.count("finite") == 2


def test_a_huge_chunk_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "echo", "--port", "0", "--chunk", "100000000000"]) == 64
    assert "at most" in capsys.readouterr().err


def test_closed_stdout_ends_quietly_with_exit_0(echo_server: ServerThread) -> None:
    """`socketkit send ... | head -c 10`: the reader left; not a network error."""
    ep = addr(echo_server.address("echo", "tcp"))
    with subprocess.Popen(
        [*PY, "send", ep], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stdout.read(0) == b""
        proc.stdout.close()  # the reader goes away before anything is written
        try:
            proc.stdin.write(b"x" * (4 * 1024 * 1024))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        assert proc.wait(TIMEOUT) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == b""


def test_a_missing_event_loop_is_one_line_and_no_warning_escapes() -> None:
    # rloop is an extra: without it, the refusal is one line (no "never awaited").
    code = (
        "import sys; sys.modules['rloop'] = None;"
        "from socketkit.cli.main import main;"
        "sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            code,
            "serve",
            "echo",
            "--port",
            "0",
            "--loop",
            "rloop",
        ],
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 64
    assert done.stderr.decode().splitlines() == [
        "socketkit: --loop rloop: rloop is not installed - pip install 'socketkit[rloop]', "
        "or use --loop asyncio"
    ]


def test_serve_unix_in_a_directory_it_cannot_write_names_the_directory(tmp_path: Path) -> None:
    # It used to say "ports below 1024 need root". Root may write anywhere but sysfs.
    if os.geteuid() == 0:
        directory = "/sys"
        if not os.path.isdir(directory):
            pytest.skip("running as root and /sys is not mounted: no directory root cannot write")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        directory = str(locked)
    done = run_cli("serve", "echo", "--unix", f"{directory}/echo.sock", "--no-tcp", "--no-udp")
    err = done.stderr.decode()
    assert done.returncode == 77, err
    assert err.splitlines() == [
        f"socketkit: cannot bind unix:{directory}/echo.sock: no permission to create a socket "
        f"file in {directory} - choose a directory you can write to (for example /tmp or "
        "$XDG_RUNTIME_DIR)"
    ]


def test_serve_sighup_stops_gracefully_with_a_summary_and_removes_its_socket_file(
    unix_dir: str,
) -> None:
    # Python's default for SIGHUP killed serve at once (exit 129), no summary, file left.
    path = os.path.join(unix_dir, "hup.sock")
    with serve_process("echo", "--port", "0", "--unix", path, last="try:", merge_stderr=True) as (
        proc,
        _reader,
    ):
        assert os.path.exists(path)
        proc.send_signal(signal.SIGHUP)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
    lines = rest.decode().strip().splitlines()
    assert lines[0] == (
        "socketkit: shutting down (SIGHUP: the terminal closed; a second signal stops at once)"
    )
    assert lines[-1].startswith("socketkit: stopped: 0 connections served")
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    ("sig", "said"),
    [
        (signal.SIGINT, "socketkit: shutting down (Ctrl-C again to stop at once)"),
        (signal.SIGTERM, "socketkit: shutting down (SIGTERM again to stop at once)"),
    ],
)
def test_serve_names_the_signal_it_got_not_always_ctrl_c(sig: int, said: str) -> None:
    with serve_process("echo", "--port", "0", last="try:", merge_stderr=True) as (proc, _):
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
    assert rest.decode().splitlines()[0] == said


def test_serve_summary_counts_connections_cut_when_the_grace_runs_out() -> None:
    with serve_process(
        "echo", "--port", "0", "--no-udp", "--grace", "0", last="try:", merge_stderr=True
    ) as (proc, reader):
        port = int(reader.lines[0].split("\t")[2].rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"x")
            assert client.recv(1) == b"x"  # served, and it stays open past the grace
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
    summary = rest.decode().strip().splitlines()[-1]
    assert summary.startswith("socketkit: stopped: 1 connections served"), summary
    assert "1 connections cut" in summary


def test_serve_whose_stdout_reader_left_before_the_banner_serves_on(unix_dir: str) -> None:
    # `serve | (exit)`: the banner fails; it used to exit 0 at once, leaving its socket file.
    path = os.path.join(unix_dir, "quiet.sock")
    proc = subprocess.Popen(
        [*PY, "serve", "echo", "--unix", path, "--no-tcp", "--no-udp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before serve writes a byte
        deadline = time.monotonic() + TIMEOUT
        while True:  # bounded: wait for the socket to accept
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with socket.socket(socket.AF_UNIX) as client:
                    client.settimeout(TIMEOUT)
                    client.connect(path)
                    client.sendall(b"still here")
                    assert client.recv(64) == b"still here"
                break
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline, "serve never listened"
                time.sleep(0.02)  # polling a child's socket file, bounded by TIMEOUT
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
        assert not os.path.exists(path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.parametrize(
    ("hosts", "warned"),
    [
        (["127.0.0.1", "::1"], None),
        (["0.0.0.0"], "0.0.0.0"),  # e.g. a socket systemd bound and passed: not --host
        (["127.0.0.1", "192.0.2.7"], "192.0.2.7"),
    ],
)
def test_the_exposure_warning_reads_the_bound_addresses(
    capsys: pytest.CaptureFixture[str], hosts: list[str], warned: str | None
) -> None:
    from types import SimpleNamespace

    from socketkit.cli import serve as serve_cli
    from socketkit.runtime import BoundEndpoint

    endpoints = [BoundEndpoint("echo", "tcp", Endpoint(host=h, port=7), "IPv4") for h in hosts]
    serve_cli._announce(endpoints, "uvloop", SimpleNamespace(count=1, pids=[]))  # type: ignore[arg-type]
    err = capsys.readouterr().err
    if warned is None:
        assert "reachable from other machines" not in err
    else:
        assert (
            f"socketkit: warning: listening on {warned}, reachable from other machines: echo" in err
        )
