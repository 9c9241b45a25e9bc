"""A numeric SERVICE for addrinfo must be a port: getaddrinfo keeps the low 16 bits of any number."""

from __future__ import annotations

import pytest

from socketkit.cli.main import main
from socketkit.errors import UsageError
from socketkit.explore import address_info
from tests.unit.explore.explore_fakes import fake_resolver


@pytest.mark.parametrize("service", ["99999", "65536", "-1"])
def test_a_number_outside_0_65535_is_a_usage_error(service: str) -> None:
    with pytest.raises(UsageError, match="ports run from 0 to 65535"):
        address_info("labhost", service, resolver=fake_resolver())


@pytest.mark.parametrize("service", ["0", "65535"])
def test_the_ends_of_the_range_resolve(service: str) -> None:
    report = address_info("labhost", service, socktype="stream", resolver=fake_resolver())
    assert {entry.sockaddr[1] for entry in report.results} == {int(service)}


def test_the_cli_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Validation happens before any resolver call, so no DNS is consulted here.
    code = main(["addrinfo", "localhost", "99999"])
    out, err = capsys.readouterr()
    assert code == 64
    assert out == ""
    assert err == "socketkit: bad port 99999: ports run from 0 to 65535\n"
