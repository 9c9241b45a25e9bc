"""``socketkit constants``: the socket module's numbers, with every name they carry.

The lecture builds ``{getattr(socket, n): n for n in dir(socket) if n.startswith(prefix)}``;
a dict comprehension keeps only the last name for a value, so ``AF_ROUTE``
hides ``AF_NETLINK`` (both 16 on Linux) and ``IPPROTO_HOPOPTS`` hides
``IPPROTO_IP`` (both 0). Here a value maps to all its names.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from socketkit.errors import UsageError

__all__ = [
    "DEFAULTS",
    "DEFAULT_PREFIXES",
    "GROUP_TITLES",
    "MEANINGS",
    "Constant",
    "ConstantGroup",
    "constant_groups",
    "get_constants",
]

DEFAULT_PREFIXES = ("AF_", "SOCK_", "IPPROTO_", "SOL_", "SO_")
"""Families, types, protocols, then the socket options with their level."""
DEFAULTS = DEFAULT_PREFIXES

GROUP_TITLES = {
    "AF_": "address families: socket(family, ...), which addresses the socket uses",
    "PF_": "protocol families (old spelling of AF_)",
    "SOCK_": "socket types: socket(..., type), which service the socket gives",
    "IPPROTO_": "protocols: socket(..., proto) and the level of IP/TCP/UDP options",
    "SOL_": "option levels: setsockopt(level, ...) for options of the socket itself",
    "SO_": "socket options at level SOL_SOCKET: setsockopt(SOL_SOCKET, SO_..., value)",
    "TCP_": "TCP options at level IPPROTO_TCP",
    "IP_": "IPv4 options at level IPPROTO_IP",
    "IPV6_": "IPv6 options at level IPPROTO_IPV6",
    "MSG_": "flags for send()/recv(): how one call behaves",
    "AI_": "getaddrinfo() flags",
    "NI_": "getnameinfo() flags",
    "EAI_": "getaddrinfo() error codes",
    "SHUT_": "shutdown() directions",
}
"""What each prefix's group is for, so options never sit among families."""

MEANINGS = {
    "AF_UNSPEC": "any family (getaddrinfo: IPv4 or IPv6)",
    "AF_UNIX": "Unix domain: a path on this machine, no network",
    "AF_LOCAL": "Unix domain (POSIX name for AF_UNIX)",
    "AF_INET": "IPv4: (host, port)",
    "AF_INET6": "IPv6: (host, port, flowinfo, scope_id)",
    "AF_PACKET": "Linux link layer: whole frames (what capture uses)",
    "AF_NETLINK": "Linux kernel messages (routes, interfaces)",
    "AF_ROUTE": "routing messages (Linux: same number as AF_NETLINK)",
    "AF_BLUETOOTH": "Bluetooth",
    "AF_CAN": "CAN bus (cars, machines)",
    "AF_VSOCK": "VM to host sockets",
    "AF_TIPC": "TIPC cluster messaging",
    "AF_ALG": "Linux kernel crypto API",
    "AF_QIPCRTR": "Qualcomm IPC router",
    "AF_RDS": "Reliable Datagram Sockets",
    "SOCK_STREAM": "reliable, ordered byte stream, connected (TCP)",
    "SOCK_DGRAM": "separate datagrams, unreliable, no connection (UDP)",
    "SOCK_RAW": "raw packets: you write the headers (ping, capture)",
    "SOCK_SEQPACKET": "reliable, ordered, connected, keeps message boundaries (SCTP, Unix)",
    "SOCK_RDM": "reliable datagrams, any order",
    "SOCK_NONBLOCK": "flag: open non-blocking (Linux)",
    "SOCK_CLOEXEC": "flag: close on exec (Linux)",
    "IPPROTO_IP": "IP itself: the default protocol for the type (proto 0)",
    "IPPROTO_HOPOPTS": "IPv6 hop-by-hop options header (same number as IPPROTO_IP)",
    "IPPROTO_ICMP": "ICMP: ping, unreachable, TTL exceeded",
    "IPPROTO_IGMP": "IGMP: IPv4 multicast group membership",
    "IPPROTO_TCP": "TCP: reliable byte stream",
    "IPPROTO_UDP": "UDP: datagrams",
    "IPPROTO_IPV6": "IPv6 (in IPv4), and the level of IPV6_ options",
    "IPPROTO_ICMPV6": "ICMPv6: ping6, neighbour discovery",
    "IPPROTO_SCTP": "SCTP: reliable messages, several streams",
    "IPPROTO_UDPLITE": "UDP-Lite: partial checksums",
    "IPPROTO_RAW": "raw IP: you write the IP header",
    "IPPROTO_MPTCP": "Multipath TCP",
    "IPPROTO_GRE": "GRE tunnels",
    "IPPROTO_ESP": "IPsec ESP (encryption)",
    "IPPROTO_AH": "IPsec AH (authentication)",
    "IPPROTO_FRAGMENT": "IPv6 fragment header",
    "IPPROTO_ROUTING": "IPv6 routing header",
    "IPPROTO_NONE": "IPv6: no next header",
    "IPPROTO_DSTOPTS": "IPv6 destination options header",
    "SOL_SOCKET": "options of the socket itself (SO_*)",
    "SOL_IP": "IPv4 options (Linux alias of IPPROTO_IP)",
    "SOL_TCP": "TCP options (Linux alias of IPPROTO_TCP)",
    "SOL_UDP": "UDP options (Linux alias of IPPROTO_UDP)",
    "SO_REUSEADDR": "bind a port still in TIME_WAIT (servers restart at once)",
    "SO_REUSEPORT": "several sockets share one port; the kernel spreads connections",
    "SO_KEEPALIVE": "probe an idle TCP connection to find a dead peer",
    "SO_BROADCAST": "allow sending to a broadcast address (UDP)",
    "SO_LINGER": "what close() does with unsent data",
    "SO_RCVBUF": "receive buffer size (bytes)",
    "SO_SNDBUF": "send buffer size (bytes)",
    "SO_RCVTIMEO": "timeout for blocking receives",
    "SO_SNDTIMEO": "timeout for blocking sends",
    "SO_ERROR": "read and clear the pending error (after a non-blocking connect)",
    "SO_TYPE": "read the socket type (SOCK_*)",
    "SO_ACCEPTCONN": "read: is the socket listening",
    "SO_BINDTODEVICE": "use only this interface (Linux)",
    "SO_OOBINLINE": "urgent data arrives in the normal stream",
    "SO_RCVLOWAT": "wake a receiver only when this many bytes are ready",
    "SO_SNDLOWAT": "wake a sender only when this much room is free",
    "SO_DEBUG": "protocol debugging",
    "SO_DONTROUTE": "send only to directly connected hosts",
    "SO_PEERCRED": "Unix: pid, uid, gid of the peer (Linux)",
    "SO_PASSCRED": "Unix: receive the sender's credentials",
    "SO_PRIORITY": "queueing priority of outgoing packets (Linux)",
    "SO_MARK": "firewall mark on outgoing packets (Linux)",
    "SO_DOMAIN": "read the family (AF_*) (Linux)",
    "SO_PROTOCOL": "read the protocol (IPPROTO_*) (Linux)",
    "SO_INCOMING_CPU": "CPU that handled the socket's packets (Linux)",
    "TCP_NODELAY": "send small segments at once (turn Nagle's algorithm off)",
    "TCP_MAXSEG": "maximum segment size (MSS)",
    "TCP_CORK": "hold partial segments until uncorked (Linux)",
    "TCP_KEEPIDLE": "idle seconds before the first keepalive probe",
    "TCP_KEEPINTVL": "seconds between keepalive probes",
    "TCP_KEEPCNT": "probes before the connection is declared dead",
    "TCP_INFO": "read the kernel's TCP state: RTT, MSS, window, retransmits",
    "TCP_QUICKACK": "acknowledge at once instead of delaying",
    "TCP_FASTOPEN": "data in the SYN (TFO), server side",
    "TCP_USER_TIMEOUT": "ms unacknowledged data may wait before the connection fails",
    "TCP_CONGESTION": "congestion control algorithm (cubic, bbr...)",
    "TCP_NOTSENT_LOWAT": "limit unsent data in the send buffer",
    "IP_TTL": "time to live of outgoing packets (hops)",
    "IP_TOS": "type of service / DSCP bits",
    "IP_MTU_DISCOVER": "path MTU discovery (set DF)",
    "IP_MULTICAST_TTL": "hops for multicast",
    "IP_MULTICAST_LOOP": "receive your own multicast",
    "IP_ADD_MEMBERSHIP": "join a multicast group",
    "IP_DROP_MEMBERSHIP": "leave a multicast group",
    "IP_HDRINCL": "raw sockets: you supply the IP header",
    "IP_RECVERR": "queue ICMP errors for the socket (Linux)",
    "IP_TRANSPARENT": "bind addresses not on this host (proxies)",
    "IP_FREEBIND": "bind an address that is not up yet",
    "IPV6_V6ONLY": "IPv6 only: no IPv4-mapped connections on this socket",
    "IPV6_UNICAST_HOPS": "hop limit of outgoing unicast packets",
    "IPV6_MULTICAST_HOPS": "hop limit for multicast",
    "IPV6_JOIN_GROUP": "join a multicast group",
    "IPV6_LEAVE_GROUP": "leave a multicast group",
    "MSG_PEEK": "look at the data without removing it",
    "MSG_WAITALL": "wait until the whole buffer is filled",
    "MSG_DONTWAIT": "do not block for this call",
    "MSG_OOB": "urgent (out-of-band) data",
    "MSG_TRUNC": "datagram was longer than the buffer",
    "MSG_NOSIGNAL": "no SIGPIPE when the peer has gone (EPIPE instead)",
    "MSG_MORE": "more data follows: hold the segment (Linux)",
    "MSG_CTRUNC": "ancillary data was cut",
    "MSG_DONTROUTE": "send only to directly connected hosts",
    "MSG_EOR": "end of record (SOCK_SEQPACKET)",
    "MSG_ERRQUEUE": "read queued errors (Linux)",
    "MSG_CONFIRM": "the link layer got a reply: skip ARP (Linux)",
    "AI_PASSIVE": "addresses to bind() (wildcard when host is None)",
    "AI_CANONNAME": "also return the canonical name",
    "AI_NUMERICHOST": "host must be a numeric address: no DNS",
    "AI_NUMERICSERV": "service must be a port number",
    "AI_ADDRCONFIG": "only families this host has an address in",
    "AI_V4MAPPED": "IPv4 answers as ::ffff:a.b.c.d when asking for IPv6",
    "AI_ALL": "with AI_V4MAPPED: IPv6 and mapped IPv4 answers",
    "SHUT_RD": "no more receiving",
    "SHUT_WR": "no more sending: the peer reads EOF (TCP sends FIN)",
    "SHUT_RDWR": "both directions",
}
"""What a constant is for, in a few words. Aliases share a row, so a row's
meaning is the first of its names that has one."""
_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Constant:
    value: int
    names: tuple[str, ...]
    """Every name with this value, sorted; more than one means aliases."""
    meaning: str = ""
    """What it is for, in a few words ("" where socketkit has no words for it)."""


@dataclass(frozen=True)
class ConstantGroup:
    prefix: str
    constants: tuple[Constant, ...]
    """Sorted by value."""
    title: str = ""
    """What the group is: families, types, protocols, option levels, options..."""


def _meaning(names: Sequence[str]) -> str:
    return next((MEANINGS[n] for n in names if n in MEANINGS), "")


def get_constants(prefix: str, module: ModuleType | Any = socket) -> dict[int, tuple[str, ...]]:
    """The lecture's helper, fixed: value -> every name starting with ``prefix``."""
    found: dict[int, list[str]] = {}
    for name in dir(module):
        if not name.startswith(prefix):
            continue
        value = getattr(module, name)
        if isinstance(value, int) and not isinstance(value, bool):
            found.setdefault(int(value), []).append(name)
    return {value: tuple(sorted(names)) for value, names in sorted(found.items())}


def constant_groups(
    prefixes: Sequence[str] = (), module: ModuleType | Any = socket
) -> tuple[ConstantGroup, ...]:
    """One group per prefix (case-insensitive); an unknown prefix is a usage error.

    No prefixes means DEFAULT_PREFIXES, and then a group this platform lacks is
    left out instead of refused.
    """
    groups = []
    defaults = not prefixes
    for raw in prefixes or DEFAULT_PREFIXES:
        prefix = raw.strip().upper()
        if not _PREFIX.match(prefix):
            raise UsageError(
                f"bad prefix {raw!r}: use letters, digits and _, e.g. AF_, SOCK_, IPPROTO_, SO_"
            )
        table = get_constants(prefix, module)
        if not table:
            if defaults:  # a platform without, e.g., SOL_ constants: leave the group out
                continue
            raise UsageError(
                f"no constant in the socket module starts with {prefix!r} - "
                "try AF_, SOCK_, IPPROTO_, SO_, SOL_, MSG_ or AI_"
            )
        groups.append(
            ConstantGroup(
                prefix,
                tuple(Constant(v, names, _meaning(names)) for v, names in table.items()),
                GROUP_TITLES.get(prefix, f"constants starting with {prefix}"),
            )
        )
    return tuple(groups)
