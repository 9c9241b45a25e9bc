"""``socketkit listen``: arguments, help and usage errors (in-process)."""

from __future__ import annotations

import pytest

from socketkit.cli.main import main


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["listen"], "listen needs a PORT or HOST:PORT"),
        (["listen", "--unix", "/tmp/x.sock", "9000"], "name two places - give one"),
        (["listen", "--unix", "/tmp/x.sock", "-4"], "-4/-6/-n apply to IP addresses"),
        (["listen", "9000", "--lines"], "--lines frames UDP datagrams; add -u"),
        (["listen", "-n", "localhost:0"], "is a name and -n allows only IP addresses"),
        (["listen", "-6", "127.0.0.1:0"], "not an address of the family -4/-6 asks for"),
        (["listen", "70000"], "ports run from 0 to 65535"),
        (["listen", "0", "-N", "--no-shutdown"], "contradict"),
        (["listen", "--exec", "/bin/sh", "0"], "unrecognized arguments: --exec"),
    ],
)
def test_listen_usage_errors(
    argv: list[str], wanted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 64
    err = capsys.readouterr().err
    assert wanted in err
    assert err.count("\n") == 1, err


def test_listen_help_says_loopback_one_connection_and_no_exec(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["listen", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "loopback unless you name another address" in text
    assert "-k, --keep-open" in text
    assert "there is no --exec" in text
    assert "UDP: replies go to the last sender" in text
