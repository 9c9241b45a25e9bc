"""Address classes come from the shipped IANA registries, not from ``ipaddress.is_*``.

The cases marked "3.11 is wrong" are ones where Python 3.11.7's ``ipaddress``
answers differently from the registries (python/cpython#113171, #117566,
CVE-2024-4032); our answer must not depend on the Python version.
"""

from __future__ import annotations

import ipaddress

import pytest

from socketkit.errors import UsageError
from socketkit.explore import address_space, classify_address
from socketkit.explore.addresses import REGISTRY_FILES, Registry, default_registry, scientific
from socketkit.explore.services import read_data_file

# address, class, globally reachable (None: the registry gives no value)
CASES = [
    ("0.0.0.0", "unspecified", False),
    ("0.1.2.3", "this-network", False),
    ("10.1.2.3", "private-use", False),
    ("172.31.255.255", "private-use", False),
    ("192.168.1.100", "private-use", False),  # the lecture's example address
    ("100.64.0.1", "shared-address-space", False),  # 3.11: neither private nor global
    ("127.0.0.1", "loopback", False),
    ("127.255.255.254", "loopback", False),
    ("169.254.1.1", "link-local", False),
    ("192.0.0.1", "service-continuity", False),
    ("192.0.0.8", "dummy", False),
    ("192.0.0.9", "anycast", True),
    ("192.0.0.10", "anycast", True),
    ("192.0.0.100", "protocol-assignments", False),
    ("192.0.0.170", "nat64-discovery", False),
    ("192.0.2.1", "documentation", False),
    ("198.51.100.7", "documentation", False),
    ("203.0.113.9", "documentation", False),
    ("192.31.196.1", "as112", True),
    ("192.52.193.1", "amt", True),
    ("192.88.99.1", "deprecated", None),
    ("192.88.99.2", "6a44-relay-anycast", False),
    ("198.18.0.1", "benchmarking", False),
    ("224.0.0.251", "multicast", None),
    ("239.1.2.3", "multicast", None),
    ("240.0.0.1", "reserved", False),
    ("255.255.255.255", "limited-broadcast", False),
    ("8.8.8.8", "global-unicast", True),
    ("::1", "loopback", False),
    ("::", "unspecified", False),
    ("::ffff:127.0.0.1", "loopback", False),  # 3.11 is wrong: is_loopback False
    ("::ffff:10.0.0.1", "private-use", False),
    ("::ffff:8.8.8.8", "global-unicast", True),
    ("::ffff:224.0.0.1", "multicast", None),  # 3.11 is wrong: is_multicast False
    ("::ffff:169.254.1.1", "link-local", False),  # 3.11 is wrong: is_link_local False
    ("64:ff9b::1.2.3.4", "nat64", True),
    ("64:ff9b:1::1", "nat64-local", False),  # 3.11 is wrong: is_global True
    ("100::1", "discard-only", False),
    ("2001:1::1", "anycast", True),  # 3.11 is wrong: is_private True
    ("2001:1::2", "anycast", True),  # 3.11 is wrong: is_private True
    ("2001:1::3", "anycast", True),  # 3.11 is wrong: is_private True
    ("2001:0::1", "teredo", None),
    ("2001:2::1", "benchmarking", False),
    ("2001:3::1", "amt", True),
    ("2001:4:112::1", "as112", True),
    ("2001:10::1", "deprecated", None),
    ("2001:20::1", "orchid", True),  # 3.11 is wrong: is_private True
    ("2001:30::1", "drone-remote-id", True),  # 3.11 is wrong: is_private True
    ("2001:db8::1", "documentation", False),
    ("3fff::1", "documentation", False),  # 3.11 is wrong: is_global True
    ("2002:c000:204::1", "6to4", None),
    ("2620:4f:8000::1", "as112", True),
    ("5f00::1", "srv6-sid", False),  # 3.11 is wrong: is_global True
    ("fc00::1", "unique-local", False),
    ("fd12:3456::1", "unique-local", False),
    ("fe80::1", "link-local", False),
    ("ff02::1", "multicast", None),
    ("2606:4700::1111", "global-unicast", True),
    ("4000::1", "reserved", None),
]


@pytest.mark.parametrize(("text", "category", "reachable"), CASES)
def test_registry_class(text: str, category: str, reachable: bool | None) -> None:
    report = classify_address(text)
    assert (report.category, report.globally_reachable) == (category, reachable)


def test_every_registry_class_has_a_case() -> None:
    tested = {category for _text, category, _reach in CASES}
    shipped = {e.category for e in default_registry().entries}
    # ::ffff:0:0/96 is looked through, never the answer: see test_mapped_address_is_looked_through.
    assert shipped - tested == {"ipv4-mapped"}


@pytest.mark.parametrize(
    ("text", "python_says", "we_say"),
    [
        ("::ffff:127.0.0.1", "is_loopback", "loopback"),
        ("2001:1::3", "is_private", "anycast"),
        ("3fff::1", "is_global", "documentation"),
    ],
)
def test_independent_of_python_ipaddress(text: str, python_says: str, we_say: str) -> None:
    # Whatever this Python's ipaddress answers (3.11 and 3.13 differ), ours is the registry's.
    _ = getattr(ipaddress.ip_address(text), python_says)
    assert classify_address(text).category == we_say


def test_mapped_address_is_looked_through() -> None:
    report = classify_address("::ffff:127.0.0.1")
    assert report.ipv4_mapped == "127.0.0.1"
    assert report.version == 6
    assert [m.block for m in report.matches] == ["127.0.0.0/8", "::ffff:0:0/96"]
    assert report.description.startswith("IPv4-mapped IPv6 address carrying 127.0.0.1")


def test_forms_of_an_ipv6_address() -> None:
    report = classify_address("2001:0db8:85a3:0042:0000:8a2e:0370:7334")  # the lecture's
    assert report.compressed == "2001:db8:85a3:42:0:8a2e:370:7334"
    assert report.exploded == "2001:0db8:85a3:0042:0000:8a2e:0370:7334"
    assert report.integer == 0x20010DB885A3004200008A2E03707334
    assert report.reverse_pointer.endswith(".8.b.d.0.1.0.0.2.ip6.arpa")
    assert report.category == "documentation"


def test_forms_of_an_ipv4_address() -> None:
    report = classify_address("192.168.1.100")
    assert report.integer == 3232235876
    assert report.reverse_pointer == "100.1.168.192.in-addr.arpa"
    assert report.exploded == report.compressed == "192.168.1.100"


def test_zone_and_brackets() -> None:
    report = classify_address("[fe80::1%eth0]")
    assert report.scope_id == "eth0"
    assert report.compressed == "fe80::1"


def test_multicast_scope_is_named() -> None:
    assert "scope 2: link-local" in classify_address("ff02::fb").description
    assert "scope e: global" in classify_address("ff0e::1").description


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("bogus", "not an IPv4 or IPv6 address"),
        ("256.1.1.1", "not an IPv4 or IPv6 address"),
        ("10.0.0.0/8", "not a network"),
        ("10.0.0.1%eth0", "only IPv6 addresses take a %zone"),
        ("example.com", "socketkit host NAME"),
    ],
)
def test_bad_addresses_are_one_line_usage_errors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        classify_address(text)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 64


@pytest.mark.parametrize("filename", sorted(REGISTRY_FILES))
def test_registry_files_are_well_formed(filename: str) -> None:
    text = read_data_file(filename)
    assert text.startswith("# Source: ")
    assert "https://www.iana.org/assignments/" in text.splitlines()[0] + text.splitlines()[1]
    registry = Registry.from_csv(text, filename)
    assert registry.entries
    for entry in registry.entries:
        ipaddress.ip_network(entry.block)  # strict: no host bits set
        assert entry.rfc.startswith("RFC")
        assert entry.category == entry.category.lower()


def test_custom_registry_can_be_injected() -> None:
    reg = Registry.from_csv(
        "block,class,name,rfc,allocated,terminated,source,destination,forwardable,"
        "globally_reachable,reserved_by_protocol\n"
        "10.0.0.0/8,lab,Our lab,RFC 1918,,,True,True,True,False,False\n",
        "test",
    )
    assert classify_address("10.9.9.9", registry=reg).category == "lab"
    with pytest.raises(ValueError, match="bad registry flag"):
        Registry.from_csv(
            "block,class,name,rfc,allocated,terminated,source,destination,"
            "forwardable,globally_reachable,reserved_by_protocol\n"
            "10.0.0.0/8,x,x,RFC 1,,,yes,,,,\n",
            "t",
        )


def test_address_space_per_person() -> None:
    space = address_space()
    assert space.ipv4_addresses == 4_294_967_296
    assert space.ipv6_addresses == 2**128
    assert scientific(space.ipv6_addresses) == "3.4 x 10^38"  # the lecture's figure
    assert scientific(space.ipv6_per_person) == "4.1 x 10^28"
    assert "World Population Prospects" in space.population_source
    # With the population the lecture's figure implies (~7.9 billion) we get its 4.3 x 10^28.
    assert scientific(address_space(7_900_000_000).ipv6_per_person) == "4.3 x 10^28"
    with pytest.raises(UsageError):
        address_space(0)
