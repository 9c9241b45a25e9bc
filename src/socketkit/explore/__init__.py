"""Explorers: what the socket module and the kernel know, as data.

Each explorer is a plain function returning frozen dataclasses; nothing here
prints (only ``socketkit.cli`` does). Name services come in as objects
(``Resolver``, ``ServiceCatalog``) so tests and offline examples need no DNS
and no ``/etc/services``.
"""

from __future__ import annotations

from socketkit.explore.addresses import (
    AddressReport,
    AddressSpace,
    NetworkReport,
    Registry,
    RegistryEntry,
    address_space,
    classify_address,
    classify_network,
)
from socketkit.explore.addrinfo import (
    AddrInfoEntry,
    AddrInfoReport,
    address_info,
    get_address_info,
)
from socketkit.explore.constants import Constant, ConstantGroup, constant_groups, get_constants
from socketkit.explore.hosts import HostAddress, HostInfo, InterfaceAddress, host_info
from socketkit.explore.ports import (
    Listener,
    PortInfo,
    PortLookup,
    PortRange,
    PortsReport,
    UnixListener,
    ephemeral_range,
    iana_range,
    list_ports,
    lookup_port,
    read_listeners,
)
from socketkit.explore.resolver import Resolver, StaticResolver, SystemResolver
from socketkit.explore.services import (
    ServiceCatalog,
    ServiceEntry,
    ServicesDatabase,
    SystemServices,
    TableServices,
)

__all__ = [
    "AddrInfoEntry",
    "AddrInfoReport",
    "AddressReport",
    "AddressSpace",
    "Constant",
    "ConstantGroup",
    "HostAddress",
    "HostInfo",
    "InterfaceAddress",
    "Listener",
    "NetworkReport",
    "PortInfo",
    "PortLookup",
    "PortRange",
    "PortsReport",
    "Registry",
    "RegistryEntry",
    "Resolver",
    "ServiceCatalog",
    "ServiceEntry",
    "ServicesDatabase",
    "StaticResolver",
    "SystemResolver",
    "SystemServices",
    "TableServices",
    "UnixListener",
    "address_info",
    "address_space",
    "classify_address",
    "classify_network",
    "constant_groups",
    "ephemeral_range",
    "get_address_info",
    "get_constants",
    "host_info",
    "iana_range",
    "list_ports",
    "lookup_port",
    "read_listeners",
]
