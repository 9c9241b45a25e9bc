"""Operator-facing CLI basics (issue 12): the version, from the package metadata."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

import pytest

import socketkit
from socketkit.cli.main import main
from tests.support import PY, TIMEOUT


def test_dunder_version_is_the_installed_metadata() -> None:
    assert socketkit.__version__ == version("socketkit")


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag_prints_name_and_version(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([flag])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"socketkit {version('socketkit')}\n"


def test_version_as_a_subprocess_exits_0_without_noise() -> None:
    done = subprocess.run([*PY, "-V"], capture_output=True, text=True, timeout=TIMEOUT)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"socketkit {socketkit.__version__}\n",
        "",
    )


def test_inetd_with_proxy_protocol_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # It used to close every connection unserved (the header reader was not counted as open).
    assert main(["serve", "echo", "--inetd", "--proxy-protocol"]) == 64
    err = capsys.readouterr().err
    assert err.startswith("socketkit: --inetd and --proxy-protocol do not go together")
