"""The probe's pure parts: validators built on the protocols, the check table, exit status."""

from __future__ import annotations

import pytest

from socketkit.endpoints import Endpoint
from socketkit.probe import CHECKS, SERVICES, CheckResult, ProbeOptions, Target, Verdict
from socketkit.probe.conformance import (
    check_chargen_lines,
    validate_line,
    validate_quote,
    validate_time,
)
from socketkit.probe.model import worst
from socketkit.probe.runner import exit_status, select_checks
from socketkit.protocols.chargen import PERIOD, pattern
from socketkit.protocols.timeproto import EPOCH_OFFSET, encode_time


def _result(verdict: Verdict, check: str = "x") -> CheckResult:
    return CheckResult(check, "echo", "tcp", "127.0.0.1:7", "conformance", "", verdict, "", "", "")


def test_the_rfc_pattern_passes_whole_and_cut_anywhere() -> None:
    assert check_chargen_lines(PERIOD * 2, partial_tail=False) is None
    for size in (0, 1, 71, 72, 73, 74, 75, 300, 512):
        assert check_chargen_lines(pattern(0, size), partial_tail=True) is None, size
    assert check_chargen_lines(pattern(74 * 13, 740), partial_tail=True) is None


def test_a_93_character_ring_still_rotates() -> None:
    ring = bytes(range(33, 126))  # xinetd's: no space, no ~
    period = b"".join((ring[n:] + ring[:n])[:72] + b"\r\n" for n in range(len(ring)))
    assert check_chargen_lines(period * 2, partial_tail=False) is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (PERIOD[:74].replace(b"\r\n", b"\n"), "after the last CR LF"),
        (PERIOD[:73] + b"\r\n", "73 characters"),
        (PERIOD[:74] + PERIOD[:74], "does not continue"),
        (PERIOD[:10] + b"\x00" + PERIOD[11:74], "outside the printing"),
    ],
)
def test_broken_chargen_lines_are_named(data: bytes, why: str) -> None:
    found = check_chargen_lines(data, partial_tail=False)
    assert found is not None and why in found


def test_a_cut_line_that_breaks_the_pattern_is_caught() -> None:
    assert check_chargen_lines(PERIOD[:74] + b"XYZ", partial_tail=True) is not None


def test_daytime_lines() -> None:
    assert validate_line(b"Saturday, December 5, 2026 15:05:39-UTC\r\n") is None
    assert validate_line(b"05 DEC 2026 15:06:50 UTC\n") is None
    assert validate_line(b"") == "no date line"
    assert validate_line(b"one\r\ntwo\r\n") == "more than one line"
    assert "ASCII" in (validate_line("Montag, 7. März\r\n".encode()) or "")


def test_quotes() -> None:
    assert validate_quote(b"q" * 511) == (Verdict.PASS, "")
    assert validate_quote(b"q" * 512)[0] is Verdict.FAIL
    assert validate_quote(b"")[0] is Verdict.FAIL
    assert validate_quote("caf\u00e9\r\n".encode())[0] is Verdict.WARN


def test_time_near_our_clock_across_the_2036_wrap() -> None:
    wrap = 2**32 - EPOCH_OFFSET  # 2036-02-07 06:28:16 UTC, in Unix seconds
    for now in (1_700_000_000.4, wrap - 0.5, wrap + 0.5):
        out = validate_time(encode_time(now), now, tolerance=2.0)
        assert out.verdict is Verdict.PASS, (now, out)
        assert out.measure is not None and abs(out.measure) <= 1
    assert validate_time(encode_time(1_700_000_000 - 10), 1_700_000_000, 2.0).verdict is (
        Verdict.WARN
    )


def test_time_from_1970_or_of_the_wrong_size_fails() -> None:
    now = 1_700_000_000.0
    unix = int(now).to_bytes(4, "big")
    assert validate_time(unix, now, 2.0).verdict is Verdict.FAIL
    assert validate_time(encode_time(now) + b"\n", now, 2.0).verdict is Verdict.FAIL


def test_checks_are_data_with_unique_names_for_known_services() -> None:
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names))
    for check in CHECKS:
        assert check.services <= set(SERVICES)
        assert check.transports <= {"tcp", "udp", "unix"}
        assert check.clause


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("transport", ["tcp", "udp", "unix"])
def test_every_service_and_transport_has_conformance_checks(service: str, transport: str) -> None:
    target = Target(service, Endpoint(host="127.0.0.1", port=1), transport)  # type: ignore[arg-type]
    chosen = select_checks(target, ProbeOptions())
    assert any(c.kind == "conformance" for c in chosen)
    gentle = select_checks(target, ProbeOptions(gentle=True))
    assert all(c.kind != "robustness" and c.name != "rate-limit" for c in gentle)
    if transport != "udp":
        assert len(gentle) < len(chosen)  # the robustness checks really went


def test_exit_status() -> None:
    passed, warned, failed = (_result(v) for v in (Verdict.PASS, Verdict.WARN, Verdict.FAIL))
    skipped = _result(Verdict.SKIP)
    assert exit_status([passed, warned, skipped]) == 0
    assert exit_status([passed, warned], strict=True) == 1
    assert exit_status([passed, failed]) == 1
    assert worst([passed, warned, skipped]) is Verdict.WARN
    assert worst([skipped]) is Verdict.SKIP


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout": 0},
        {"timeout": 61},
        {"connections": 0},
        {"connections": 257},
        {"burst": 2001},
        {"rate": 0},
        {"rate": 10001},
    ],
)
def test_options_are_bounded(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ProbeOptions(**bad)  # type: ignore[arg-type]


def test_the_documentation_lists_every_check() -> None:
    import pathlib

    page = (pathlib.Path(__file__).parents[3] / "docs" / "probe.md").read_text()
    for check in CHECKS:
        assert f"| `{check.name}` |" in page, check.name
