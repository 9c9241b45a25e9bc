"""The shipped services table and the system-first, table-second catalog."""

from __future__ import annotations

import pytest

from socketkit.explore.services import (
    SERVICES_FILE,
    ServiceCatalog,
    ServiceEntry,
    SystemServices,
    TableServices,
    read_data_file,
)


def test_header_says_where_the_table_comes_from() -> None:
    first = read_data_file(SERVICES_FILE).splitlines()[0]
    assert first.startswith(
        "# Source: IANA Service Name and Transport Protocol Port Number Registry"
    )


@pytest.mark.parametrize(
    ("name", "port"),
    [
        ("echo", 7),
        ("discard", 9),
        ("daytime", 13),
        ("qotd", 17),
        ("chargen", 19),
        ("time", 37),
        ("ssh", 22),
        ("http", 80),
        ("https", 443),
    ],
)
def test_shipped_table_has_the_small_services_on_both_transports(name: str, port: int) -> None:
    table = TableServices.shipped()
    for transport in ("tcp", "udp"):
        entry = table.by_port(port, transport)
        assert entry is not None
        assert (entry.name, entry.source) == (name, "iana")
        assert table.by_name(name, transport) == entry


def test_shipped_table_has_our_sum_service_marked_as_ours() -> None:
    table = TableServices.shipped()
    entry = table.by_name("sum", "tcp")
    assert entry is not None
    assert (entry.name, entry.port, entry.source) == ("socketkit-sum", 10100, "socketkit")
    assert table.by_port(10007, "udp") is not None


def test_catalog_asks_in_order_and_fills_descriptions() -> None:
    system = TableServices([ServiceEntry("qotd", 17, "tcp", "system")])
    shipped = TableServices(
        [ServiceEntry("qotd", 17, t, "iana", "Quote of the Day") for t in ("tcp", "udp")]
    )
    catalog = ServiceCatalog([system, shipped])
    tcp = catalog.by_port(17, "tcp")
    udp = catalog.by_port(17, "udp")
    assert tcp == ServiceEntry("qotd", 17, "tcp", "system", "Quote of the Day")
    assert udp == ServiceEntry("qotd", 17, "udp", "iana", "Quote of the Day")
    assert catalog.by_port(18, "tcp") is None


def test_system_services_unknowns_are_none() -> None:
    system = SystemServices()
    assert system.by_port(70000, "tcp") is None  # socket raises OverflowError; we answer None
    assert system.by_name("no-such-service-here", "tcp") is None
