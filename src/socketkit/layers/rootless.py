"""What the layers look like from inside one socket, without capture rights.

Capturing packets needs root or CAP_NET_RAW, but a program can still ask its
own socket a lot: both endpoints (the transport and internet layers'
addresses), the TTL or hop limit it will stamp on packets, and on Linux the
kernel's TCP state (TCP_INFO): round-trip time, maximum segment size,
congestion window, retransmissions, bytes acknowledged and received. From the
MSS follows how the kernel may cut a payload into segments. Parsing is pure;
``inspect_socket`` is the only function that touches a socket.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

from socketkit.endpoints import format_sockaddr

__all__ = [
    "SocketView",
    "TcpInfo",
    "inspect_socket",
    "parse_tcp_info",
    "segment_sizes",
]

# struct tcp_info from linux/tcp.h, as far as we read it. Newer kernels append
# fields; older ones return fewer bytes, and the missing fields become None.
_TCP_INFO_FIELDS: tuple[tuple[str, str], ...] = (
    *(
        (name, "B")
        for name in (
            "state",
            "ca_state",
            "retransmits",
            "probes",
            "backoff",
            "options",
            "wscale",
            "app_limited",
        )
    ),
    *(
        (name, "I")
        for name in (
            "rto",
            "ato",
            "snd_mss",
            "rcv_mss",
            "unacked",
            "sacked",
            "lost",
            "retrans",
            "fackets",
            "last_data_sent",
            "last_ack_sent",
            "last_data_recv",
            "last_ack_recv",
            "pmtu",
            "rcv_ssthresh",
            "rtt",
            "rttvar",
            "snd_ssthresh",
            "snd_cwnd",
            "advmss",
            "reordering",
            "rcv_rtt",
            "rcv_space",
            "total_retrans",
        )
    ),
    ("pacing_rate", "Q"),
    ("max_pacing_rate", "Q"),
    ("bytes_acked", "Q"),
    ("bytes_received", "Q"),
    ("segs_out", "I"),
    ("segs_in", "I"),
    ("notsent_bytes", "I"),
    ("min_rtt", "I"),
    ("data_segs_in", "I"),
    ("data_segs_out", "I"),
    ("delivery_rate", "Q"),
    ("busy_time", "Q"),
    ("rwnd_limited", "Q"),
    ("sndbuf_limited", "Q"),
    ("delivered", "I"),
    ("delivered_ce", "I"),
    ("bytes_sent", "Q"),
)
TCP_INFO_SIZE = struct.calcsize("=" + "".join(code for _, code in _TCP_INFO_FIELDS))
"""Bytes of struct tcp_info we ask for (208 on current kernels, which return as many)."""

_TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}


@dataclass(frozen=True)
class TcpInfo:
    """The kernel's view of one TCP connection (Linux TCP_INFO)."""

    state: str
    rtt_us: int
    rtt_var_us: int
    snd_mss: int
    rcv_mss: int
    snd_cwnd: int
    """Congestion window, in segments: how many may be in flight unacknowledged."""
    retransmits: int
    """Retransmissions in total on this connection (tcpi_total_retrans)."""
    pmtu: int
    bytes_acked: int | None = None
    bytes_received: int | None = None
    bytes_sent: int | None = None
    segs_out: int | None = None
    segs_in: int | None = None


@dataclass(frozen=True)
class SocketView:
    """Everything one connected socket can tell about its layers, no privilege needed."""

    transport: str
    family: str
    local: str
    peer: str
    hop_limit: int | None
    """IP_TTL (IPv4) or IPV6_UNICAST_HOPS (IPv6): the TTL our packets leave with."""
    mtu: int | None = None
    tcp_info: TcpInfo | None = None


def parse_tcp_info(raw: bytes) -> TcpInfo:
    """Unpack the bytes ``getsockopt(IPPROTO_TCP, TCP_INFO, n)`` returned.

    The struct is naturally aligned with no padding up to the fields we read,
    so native-size fields in order are exact; fields past the end of ``raw``
    (an older kernel) are None.
    """
    values: dict[str, int] = {}
    offset = 0
    for name, code in _TCP_INFO_FIELDS:
        size = struct.calcsize("=" + code)
        if offset + size > len(raw):
            break
        (values[name],) = struct.unpack_from("=" + code, raw, offset)
        offset += size

    def need(name: str) -> int:
        return values.get(name, 0)

    return TcpInfo(
        state=_TCP_STATES.get(need("state"), f"state {need('state')}"),
        rtt_us=need("rtt"),
        rtt_var_us=need("rttvar"),
        snd_mss=need("snd_mss"),
        rcv_mss=need("rcv_mss"),
        snd_cwnd=need("snd_cwnd"),
        retransmits=need("total_retrans"),
        pmtu=need("pmtu"),
        bytes_acked=values.get("bytes_acked"),
        bytes_received=values.get("bytes_received"),
        bytes_sent=values.get("bytes_sent"),
        segs_out=values.get("segs_out"),
        segs_in=values.get("segs_in"),
    )


def segment_sizes(length: int, mss: int) -> list[int]:
    """How a payload of ``length`` bytes splits into segments of at most ``mss`` bytes.

    This is what the MSS implies on the wire; loopback and NIC offloads may
    still hand the capture fewer, larger frames (segmentation offload).
    """
    if length <= 0:
        return []
    if mss <= 0:
        return [length]
    full, rest = divmod(length, mss)
    return [mss] * full + ([rest] if rest else [])


def inspect_socket(sock: socket.socket) -> SocketView:
    """Read the root-free view of a connected TCP or UDP socket."""
    is_v6 = sock.family == socket.AF_INET6
    is_tcp = sock.type == socket.SOCK_STREAM
    hop_limit: int | None
    try:
        if is_v6:
            hop_limit = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
        else:
            hop_limit = sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
    except OSError:
        hop_limit = None
    return SocketView(
        transport="tcp" if is_tcp else "udp",
        family="IPv6" if is_v6 else "IPv4",
        local=format_sockaddr(sock.getsockname()),
        peer=format_sockaddr(sock.getpeername()),
        hop_limit=hop_limit,
        mtu=_path_mtu(sock, is_v6),
        tcp_info=_tcp_info(sock) if is_tcp else None,
    )


def _path_mtu(sock: socket.socket, is_v6: bool) -> int | None:
    """The path MTU the kernel knows for a connected socket (Linux IP_MTU/IPV6_MTU)."""
    if not sys.platform.startswith("linux"):
        return None
    level, option = (41, 24) if is_v6 else (0, 14)  # IPPROTO_IPV6/IPV6_MTU, IPPROTO_IP/IP_MTU
    try:
        value: int = sock.getsockopt(level, option)
    except OSError:
        return None
    return value


def _tcp_info(sock: socket.socket) -> TcpInfo | None:
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, option, TCP_INFO_SIZE)
    except OSError:
        return None
    return parse_tcp_info(raw)


def implied_wire(call: str, nbytes: int | None, transport: str, mss: int | None) -> str:
    """What a socket call puts on the wire, by the protocol's rules, when we cannot look.

    The root-free view cannot see packets, but TCP and UDP are specified well
    enough to say what each call must cause; with capture rights the packet
    list shows it happened.
    """
    if transport == "udp":
        return {
            "connect": "nothing: UDP connect only records the peer",
            "send": f"one datagram of {nbytes} bytes, never acknowledged",
            "recvmsg": "one datagram from the server" if nbytes else "nothing arrived",
            "close": "nothing: UDP has no teardown",
        }.get(call, "-")
    if call == "connect":
        return "three-way handshake: SYN, SYN-ACK, ACK"
    if call == "sendall":
        sizes = segment_sizes(nbytes or 0, mss or 0)
        return f"{len(sizes)} data segment(s) {sizes}, acknowledged by the server's kernel"
    if call == "recv":
        if nbytes == 0:
            return "the server's FIN arrived (EOF); our kernel acknowledges it"
        return f"{nbytes} bytes taken from data segments already acknowledged"
    if call == "shutdown":
        return "FIN: we send no more; the server's kernel acknowledges it"
    if call == "close":
        return "nothing more: both FINs were already exchanged"
    return "-"
