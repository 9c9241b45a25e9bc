"""host_info and addrinfo against a fake resolver: names, order, errors; no DNS."""

from __future__ import annotations

import socket

import pytest

from socketkit.errors import ResolveError, UsageError
from socketkit.explore import StaticResolver, address_info, host_info
from socketkit.explore.resolver import family_name, protocol_name, type_name
from tests.unit.explore.explore_fakes import fake_catalog, fake_resolver


def test_this_machine_by_default() -> None:
    info = host_info(resolver=fake_resolver())
    assert info.query == "labhost"
    assert info.this_machine
    assert info.fqdn == "labhost.lab.example"
    assert info.canonical_name == "labhost.lab.example"
    assert info.aliases == ("labhost", "lab")


def test_every_address_ipv4_and_ipv6_in_resolver_order() -> None:
    info = host_info("www.example.com", resolver=fake_resolver())
    assert not info.this_machine
    assert [(a.family, a.address) for a in info.addresses] == [
        ("AF_INET6", "2001:db8::80"),
        ("AF_INET", "192.0.2.80"),
    ]
    assert info.canonical_name == "web.example.com"


def test_ipv6_only_name_is_an_answer_not_an_error() -> None:
    # gethostbyname_ex knows only IPv4 and fails here; getaddrinfo still answers.
    info = host_info("v6only.example", resolver=fake_resolver())
    assert [a.address for a in info.addresses] == ["2001:db8::6"]
    assert info.aliases == ()


def test_unknown_name_is_resolve_error_68() -> None:
    with pytest.raises(ResolveError) as caught:
        host_info("nowhere.invalid", resolver=fake_resolver())
    assert caught.value.exit_code == 68
    assert "nowhere.invalid" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_gethostbyname_ex_only_addresses_are_kept() -> None:
    class OldResolver(StaticResolver):
        def getaddrinfo(self, *args: object, **kwargs: object) -> list[object]:  # type: ignore[override]
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    info = host_info("labhost", resolver=OldResolver(hosts=fake_resolver().hosts))
    assert [a.address for a in info.addresses] == ["192.0.2.10"]


def test_names_for_numbers() -> None:
    assert family_name(socket.AF_INET) == "AF_INET"
    assert family_name(socket.AF_INET6) == "AF_INET6"
    assert type_name(socket.SOCK_DGRAM) == "SOCK_DGRAM"
    assert protocol_name(socket.IPPROTO_TCP) == "IPPROTO_TCP"
    assert protocol_name(socket.IPPROTO_UDP) == "IPPROTO_UDP"
    assert protocol_name(0) == "IPPROTO_IP"  # not its alias IPPROTO_HOPOPTS
    assert family_name(9999).startswith("AF_?")


def ticking(step: float = 0.004) -> object:
    values = iter([1.0, 1.0 + step, 2.0, 2.0 + step])
    return lambda: next(values)


def test_addrinfo_names_and_order() -> None:
    report = address_info("www.example.com", "http", resolver=fake_resolver(), clock=ticking())  # type: ignore[arg-type]
    rows = [(r.family, r.type, r.protocol, r.address) for r in report.results]
    assert rows == [
        ("AF_INET6", "SOCK_STREAM", "IPPROTO_TCP", "[2001:db8::80]:80"),
        ("AF_INET6", "SOCK_DGRAM", "IPPROTO_UDP", "[2001:db8::80]:80"),
        ("AF_INET", "SOCK_STREAM", "IPPROTO_TCP", "192.0.2.80:80"),
        ("AF_INET", "SOCK_DGRAM", "IPPROTO_UDP", "192.0.2.80:80"),
    ]
    assert report.results[0].canonical_name == "web.example.com"
    assert report.results[0].sockaddr == ("2001:db8::80", 80, 0, 0)
    assert report.results[0].numbers == (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    assert report.elapsed_ms == 4.0
    assert report.family == "AF_UNSPEC"
    assert report.flags == ("AI_CANONNAME",)
    assert report.service_source == "resolver"


def test_addrinfo_family_and_type_filters() -> None:
    report = address_info(
        "www.example.com", "80", family=4, socktype="dgram", resolver=fake_resolver()
    )
    assert [(r.family, r.type, r.address) for r in report.results] == [
        ("AF_INET", "SOCK_DGRAM", "192.0.2.80:80")
    ]
    assert report.type == "SOCK_DGRAM"


def test_addrinfo_passive_gives_wildcards_without_canonname() -> None:
    report = address_info(None, "8080", passive=True, socktype="stream", resolver=fake_resolver())
    assert [r.address for r in report.results] == ["[::]:8080", "0.0.0.0:8080"]
    assert report.flags == ("AI_PASSIVE",)


def test_addrinfo_needs_a_host_unless_passive() -> None:
    with pytest.raises(UsageError, match="--passive"):
        address_info(None, "80", resolver=fake_resolver())


def test_addrinfo_fills_a_missing_service_from_the_shipped_table() -> None:
    resolver = fake_resolver()
    resolver.services = {}  # a system with no services database at all
    report = address_info(
        "labhost", "qotd", socktype="dgram", resolver=resolver, catalog=fake_catalog()
    )
    assert report.service_source == "iana"
    assert {r.address for r in report.results} == {"192.0.2.10:17", "[2001:db8::10]:17"}


def test_addrinfo_unknown_service_is_one_line() -> None:
    with pytest.raises(ResolveError, match="unknown service 'nosuch'") as caught:
        address_info("labhost", "nosuch", resolver=fake_resolver(), catalog=fake_catalog())
    assert caught.value.exit_code == 68


def test_addrinfo_unknown_host() -> None:
    with pytest.raises(ResolveError, match=r"cannot resolve 'nowhere\.invalid'"):
        address_info("nowhere.invalid", "80", resolver=fake_resolver())


def test_addrinfo_family_without_addresses() -> None:
    with pytest.raises(ResolveError, match="no address of the family"):
        address_info("v6only.example", "80", family=4, resolver=fake_resolver())
