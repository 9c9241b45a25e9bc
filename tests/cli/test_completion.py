"""``socketkit completion`` and ``socketkit man``: generated from the real parser."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from socketkit.cli.main import build_parser, main
from tests.support import PY, TIMEOUT


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def _complete_bash(script: Path, words: list[str]) -> list[str]:
    """Ask the generated bash function what it offers after ``words``."""
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE='{' '.join(words)}'; COMP_POINT=${{#COMP_LINE}}\n"
        '_shtab_socketkit socketkit "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"\n'
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    return sorted(set(done.stdout.split()))


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = subprocess.run(
        [*PY, "completion", "bash"], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    path = tmp_path_factory.mktemp("completion") / "socketkit.bash"
    path.write_text(done.stdout)
    return path


def test_bash_script_is_valid_bash(bash_script: Path) -> None:
    subprocess.run(["bash", "-n", str(bash_script)], check=True, timeout=TIMEOUT)


def test_bash_completes_the_real_commands(bash_script: Path) -> None:
    offered = _complete_bash(bash_script, ["socketkit", "''"])
    commands = _commands()
    assert {"serve", "echo", "send", "completion", "man"} <= set(commands)
    assert set(commands) <= set(offered)
    assert _complete_bash(bash_script, ["socketkit", "se"]) == sorted(
        c for c in commands if c.startswith("se")
    )


def test_bash_completes_a_commands_options(bash_script: Path) -> None:
    offered = _complete_bash(bash_script, ["socketkit", "echo", "--u"])
    assert offered == ["--udp", "--unix"]
    assert _complete_bash(bash_script, ["socketkit", "completion", "''"]) == ["bash", "tcsh", "zsh"]


@pytest.mark.parametrize(
    ("shell", "marker"), [("zsh", "#compdef socketkit"), ("tcsh", "complete socketkit")]
)
def test_other_shells(capsys: pytest.CaptureFixture[str], shell: str, marker: str) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert marker in out
    assert "serve" in out and "completion" in out


def test_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "fish"]) == 64
    assert "invalid choice" in capsys.readouterr().err


def test_man_page_structure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["man"]) == 0
    page = capsys.readouterr().out
    assert page.startswith('.TH SOCKETKIT "1"')
    for section in (".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION"):
        assert section in page
    for command in _commands():
        assert f"\\fI\\,{command}\\/\\fR" in page, command


def test_man_page_renders(tmp_path: Path) -> None:
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed (Debian package groff-base)")
    done = subprocess.run([*PY, "man"], capture_output=True, timeout=TIMEOUT, check=True)
    rendered = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww"], input=done.stdout, capture_output=True, timeout=TIMEOUT
    )
    assert rendered.returncode == 0
    text = rendered.stdout.decode()
    assert "SOCKETKIT(1)" in text and "socketkit serve" in text
    assert rendered.stderr == b"", rendered.stderr  # -ww: no warnings


def test_help_says_how_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["completion", "--help"])
    assert "~/.local/share/bash-completion/completions/socketkit" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["man", "--help"])
    assert "man -l -" in capsys.readouterr().out
