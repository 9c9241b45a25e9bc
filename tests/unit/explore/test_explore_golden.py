"""Golden ``--json`` outputs of every explorer, on fakes (no DNS, no /etc/services, no /proc).

A change in these files is a change in what programs reading our JSON see:
review it, then regenerate with ``SOCKETKIT_UPDATE_GOLDEN=1 pytest tests/unit/explore``.
The addrinfo golden holds Linux's numbers (AF_INET6 is 10 there).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from socketkit.cli.explore import Environment
from socketkit.cli.main import main

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SOCKETKIT_UPDATE_GOLDEN") == "1"

COMMANDS = [
    ["host"],
    ["host", "www.example.com"],
    ["addrinfo", "www.example.com", "http"],
    ["addrinfo", "labhost", "7", "--family", "6", "--type", "dgram"],
    ["constants"],
    ["ports", "0", "100"],
    ["ports", "0", "20000", "--listening", "--tcp"],
    ["port", "http"],
    ["port", "17"],
    ["port", "sum"],
    ["addr", "::ffff:127.0.0.1", "2001:1::3", "100.64.0.1", "192.168.1.100"],
    ["addr", "--space"],
]


def golden_name(argv: list[str]) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", "-".join(argv)).strip("_") + ".json"


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_json_output_matches_golden(
    argv: list[str], fake_env: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    if argv[0] == "addrinfo" and sys.platform != "linux":
        pytest.skip("the golden holds Linux's socket constant numbers")
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    path = GOLDEN / golden_name(argv)
    if UPDATE:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    assert data == json.loads(path.read_text(encoding="utf-8"))
