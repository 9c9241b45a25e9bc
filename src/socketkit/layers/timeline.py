"""Name the phases of an exchange and tie its packets to the application's calls.

A TCP exchange reads, on the wire, as the lecture tells it: a three-way
handshake (SYN, SYN-ACK, ACK) while ``connect()`` waits, data segments that
``sendall`` caused and ``recv`` drains, acknowledgements the kernel sends on
its own (no application call makes them), and a teardown of two FINs, each
acknowledged. UDP has none of that ceremony: one datagram per ``send``.

Packets are tied to calls by stream offsets (a segment's relative sequence
number says which bytes it carries, a call's offset which bytes it moved),
not by timing, so the tie holds however the kernel coalesces or splits.
Everything here is pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from socketkit.endpoints import join_host_port
from socketkit.layers.decode import DecodedPacket
from socketkit.layers.exchange import AppCall

__all__ = [
    "PHASE_TITLES",
    "Conversation",
    "Phase",
    "Timeline",
    "TimelineEntry",
    "build_timeline",
    "infer_conversation",
    "is_complete",
]

PHASE_TITLES = {
    "handshake": "three-way handshake",
    "data": "data",
    "acknowledgement": "acknowledgement",
    "teardown": "teardown",
    "other": "other traffic",
}

CLIENT_TO_SERVER = "client -> server"
SERVER_TO_CLIENT = "server -> client"


def _norm(host: str) -> str:
    host = host.split("%", 1)[0]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


@dataclass(frozen=True)
class Conversation:
    """The two endpoints of one exchange and its transport ("TCP" or "UDP")."""

    protocol: str
    client: tuple[str, int]
    server: tuple[str, int]

    @classmethod
    def of(cls, protocol: str, client: tuple[str, int], server: tuple[str, int]) -> Conversation:
        return cls(protocol.upper(), (_norm(client[0]), client[1]), (_norm(server[0]), server[1]))

    def direction(self, packet: DecodedPacket) -> str | None:
        """Which way the packet goes in this conversation, or None if not ours."""
        ip, t = packet.internet, packet.transport
        if ip is None or t is None or t.protocol != self.protocol:
            return None
        src = (_norm(ip.source), t.source_port)
        dst = (_norm(ip.destination), t.destination_port)
        if (src, dst) == (self.client, self.server):
            return CLIENT_TO_SERVER
        if (src, dst) == (self.server, self.client):
            return SERVER_TO_CLIENT
        return None

    def __str__(self) -> str:
        return f"{self.protocol} {join_host_port(*self.client)} <-> {join_host_port(*self.server)}"


@dataclass(frozen=True)
class TimelineEntry:
    """One packet's place in the story."""

    packet: int
    phase: str
    direction: str
    what: str
    calls: tuple[int, ...] = ()


@dataclass(frozen=True)
class Phase:
    """A run of consecutive packets in one phase."""

    name: str
    packets: tuple[int, ...]
    calls: tuple[int, ...]

    @property
    def title(self) -> str:
        return PHASE_TITLES.get(self.name, self.name)

    @property
    def span(self) -> str:
        first, last = self.packets[0], self.packets[-1]
        return f"#{first}" if first == last else f"#{first}-#{last}"


@dataclass(frozen=True)
class Timeline:
    conversation: Conversation | None
    entries: list[TimelineEntry]
    phases: list[Phase]


def infer_conversation(packets: Sequence[DecodedPacket]) -> Conversation | None:
    """The first conversation in a capture; its client sent the first SYN (or packet)."""
    first: DecodedPacket | None = None
    for p in packets:
        if p.internet is None or p.transport is None:
            continue
        if p.transport.protocol == "TCP" and p.transport.flags == ("SYN",):
            first = p
            break
        if first is None:
            first = p
    if first is None or first.internet is None or first.transport is None:
        return None
    return Conversation.of(
        first.transport.protocol,
        (first.internet.source, first.transport.source_port),
        (first.internet.destination, first.transport.destination_port),
    )


def _overlapping(
    calls: Sequence[AppCall], names: tuple[str, ...], start: int, end: int
) -> tuple[int, ...]:
    found = []
    for c in calls:
        if c.name not in names or c.offset is None or not c.nbytes:
            continue
        if c.offset < end and start < c.offset + c.nbytes:
            found.append(c.index)
    return tuple(found)


def _first(calls: Sequence[AppCall], name: str, *, eof: bool = False) -> tuple[int, ...]:
    for c in calls:
        if c.name == name and (not eof or c.nbytes == 0):
            return (c.index,)
    return ()


def _labels(calls: Sequence[AppCall], indexes: tuple[int, ...]) -> str:
    by_index = {c.index: c for c in calls}
    return ", ".join(by_index[i].label for i in indexes if i in by_index)


class _TcpState:
    def __init__(self) -> None:
        self.synack_seen = False
        self.handshake_done = False
        self.fin_end: dict[str, int] = {}
        """Per direction: the absolute sequence number just after its FIN."""


def _tcp_entry(
    p: DecodedPacket, direction: str, state: _TcpState, calls: Sequence[AppCall]
) -> TimelineEntry:
    t = p.transport
    assert t is not None
    who = "client" if direction == CLIENT_TO_SERVER else "server"
    other = "server" if who == "client" else "client"
    flags = set(t.flags)
    seq = t.seq or 0
    rel = t.relative_seq if t.relative_seq is not None else seq
    if "RST" in flags:
        return TimelineEntry(
            p.index, "teardown", direction, f"RST: the {who} resets the connection"
        )
    if "SYN" in flags and "ACK" not in flags:
        return TimelineEntry(
            p.index,
            "handshake",
            direction,
            f"SYN: the {who} asks to open a connection; its byte numbering starts here",
            _first(calls, "connect"),
        )
    if "SYN" in flags:
        state.synack_seen = True
        return TimelineEntry(
            p.index,
            "handshake",
            direction,
            f"SYN-ACK: the {who} accepts and starts numbering its own bytes",
            _first(calls, "connect"),
        )
    if "FIN" in flags:
        state.fin_end[direction] = (seq + t.payload_length + 1) % (1 << 32)
        if who == "client":
            tied = _first(calls, "shutdown") or _first(calls, "close")
            what = "FIN: the client has nothing more to send"
        else:
            tied = _first(calls, "recv", eof=True)
            what = "FIN: the server has nothing more to send; your recv() sees EOF"
        if t.payload_length:
            what += f" (and carries {t.payload_length} bytes)"
        return TimelineEntry(p.index, "teardown", direction, what, tied)
    if t.payload_length:
        start = max(rel - 1, 0)
        end = start + t.payload_length
        if who == "client":
            tied = _overlapping(calls, ("sendall", "send"), start, end)
            what = f"{t.payload_length} bytes from the client"
            if tied:
                what += f", sent by {_labels(calls, tied)}"
        else:
            tied = _overlapping(calls, ("recv",), start, end)
            what = f"{t.payload_length} bytes from the server (the echo)"
            if tied:
                what += f", read by {_labels(calls, tied)}"
        return TimelineEntry(p.index, "data", direction, what, tied)
    back = SERVER_TO_CLIENT if direction == CLIENT_TO_SERVER else CLIENT_TO_SERVER
    if back in state.fin_end and t.ack == state.fin_end[back]:
        return TimelineEntry(
            p.index, "teardown", direction, f"ACK: the {who} acknowledges the {other}'s FIN"
        )
    if state.synack_seen and not state.handshake_done and who == "client":
        state.handshake_done = True
        return TimelineEntry(
            p.index,
            "handshake",
            direction,
            "ACK: handshake complete; connect() returns",
            _first(calls, "connect"),
        )
    got = (t.relative_ack - 1) if t.relative_ack else None
    what = f"ACK: the {who}'s kernel confirms receipt; no application call makes it"
    if got is not None:
        what = f"ACK: the {who}'s kernel confirms {got} bytes; no application call makes it"
    return TimelineEntry(p.index, "acknowledgement", direction, what)


def _udp_entry(
    p: DecodedPacket, direction: str, counts: dict[str, int], calls: Sequence[AppCall]
) -> TimelineEntry:
    t = p.transport
    assert t is not None
    counts[direction] = counts.get(direction, 0) + 1
    n = counts[direction]
    names = ("send",) if direction == CLIENT_TO_SERVER else ("recvmsg",)
    matching = [c for c in calls if c.name in names]
    tied = (matching[n - 1].index,) if len(matching) >= n else ()
    who = "client" if direction == CLIENT_TO_SERVER else "server"
    what = f"datagram of {t.payload_length} bytes from the {who}; no handshake, no ACK"
    if tied:
        what += f" ({_labels(calls, tied)})"
    return TimelineEntry(p.index, "data", direction, what, tied)


def build_timeline(
    packets: Sequence[DecodedPacket],
    conversation: Conversation | None = None,
    calls: Sequence[AppCall] = (),
) -> Timeline:
    """Each packet's phase and cause; consecutive packets of one phase grouped."""
    conv = conversation or infer_conversation(packets)
    state = _TcpState()
    counts: dict[str, int] = {}
    entries: list[TimelineEntry] = []
    for p in packets:
        direction = conv.direction(p) if conv is not None else None
        if direction is None:
            entries.append(
                TimelineEntry(p.index, "other", "-", f"not this conversation: {p.summary}")
            )
        elif conv is not None and conv.protocol == "TCP":
            entries.append(_tcp_entry(p, direction, state, calls))
        else:
            entries.append(_udp_entry(p, direction, counts, calls))
    phases: list[Phase] = []
    for e in entries:
        if phases and phases[-1].name == e.phase:
            last = phases[-1]
            merged = last.calls + tuple(c for c in e.calls if c not in last.calls)
            phases[-1] = Phase(last.name, (*last.packets, e.packet), merged)
        else:
            phases.append(Phase(e.phase, (e.packet,), e.calls))
    return Timeline(conv, entries, phases)


def _covers(ack: int, end: int) -> bool:
    """Does ``ack`` acknowledge everything before ``end``? (serial number arithmetic)"""
    return (ack - end) % (1 << 32) < (1 << 31)


def is_complete(
    packets: Sequence[DecodedPacket],
    conversation: Conversation,
    *,
    datagrams_out: int = 0,
    datagrams_in: int = 0,
) -> bool:
    """Has the capture seen the exchange's last packet?

    TCP: a reset, or both FINs each acknowledged by the other side (the
    final ACK is the last packet of a clean close). UDP: as many datagrams
    each way as the application sent and received.
    """
    ours = [(p, d) for p in packets if (d := conversation.direction(p)) is not None]
    if conversation.protocol == "UDP":
        out = sum(1 for _, d in ours if d == CLIENT_TO_SERVER)
        back = sum(1 for _, d in ours if d == SERVER_TO_CLIENT)
        return out >= datagrams_out and back >= datagrams_in
    fin_end: dict[str, int] = {}
    acked: set[str] = set()
    for p, d in ours:
        t = p.transport
        assert t is not None
        if "RST" in t.flags:
            return True
        if "FIN" in t.flags and t.seq is not None:
            fin_end[d] = (t.seq + t.payload_length + 1) % (1 << 32)
        other = SERVER_TO_CLIENT if d == CLIENT_TO_SERVER else CLIENT_TO_SERVER
        if (
            other in fin_end
            and "ACK" in t.flags
            and t.ack is not None
            and _covers(t.ack, fin_end[other])
        ):
            acked.add(other)
    return acked >= {CLIENT_TO_SERVER, SERVER_TO_CLIENT}
