"""The PROXY protocol, versions 1 and 2 (HAProxy's proxy-protocol.txt), sans I/O.

A load balancer in front of ``serve`` opens one TCP connection per client and
sends, before the client's first byte, a header naming the real client
(source) and the address the client connected to (destination). Without it
every client looks like the balancer, so per-source caps, UDP guards, logs and
the access log act on the wrong address.

``ProxyHeaderParser`` is fed the connection's first bytes in any split and
answers one of:

- ``PENDING``: not enough bytes yet; feed more (the caller's own timeout
  decides how long to wait: a missing header is the caller's "truncated");
- ``ProxyAccepted``: the header, and ``rest``, the bytes that followed it
  (the client's first bytes, to hand to the service);
- ``ProxyRejected``: a short reason; close the connection and count it.

It never raises on any input, and holds at most 107 bytes for v1 and
16 + ``max_v2_length`` bytes for v2. Once decided, later ``feed`` calls return
the same decision and keep nothing. ``encode_v1``/``encode_v2`` build headers
for tests and doubles.

Why sans I/O: the same parser serves the asyncio adapter, a blocking inetd
connection and the tests, which split every header at every byte boundary.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "PENDING",
    "V1_MAX_LENGTH",
    "V2_SIGNATURE",
    "Address",
    "Pending",
    "ProxyAccepted",
    "ProxyHeaderParser",
    "ProxyRejected",
    "ProxyResult",
    "encode_v1",
    "encode_v2",
]

V1_MAX_LENGTH: Final = 107
"""The longest v1 line, CRLF included (the spec's worst case, TCP6 with long ports)."""
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
"""The 12 bytes that open every v2 header (chosen to be invalid in any text protocol)."""
_V1_PREFIX: Final = b"PROXY "
DEFAULT_MAX_V2_LENGTH: Final = 4096

Address = tuple[str, int]
"""(host, port); for AF_UNIX the path as text and port 0."""

Family = Literal["TCP4", "TCP6", "UDP4", "UDP6", "UNIX_STREAM", "UNIX_DGRAM", "UNKNOWN"]

# v2 address family/transport byte -> (our name, address block length).
_V2_FAMILIES: Final[dict[int, tuple[Family, int]]] = {
    0x00: ("UNKNOWN", 0),
    0x11: ("TCP4", 12),
    0x12: ("UDP4", 12),
    0x21: ("TCP6", 36),
    0x22: ("UDP6", 36),
    0x31: ("UNIX_STREAM", 216),
    0x32: ("UNIX_DGRAM", 216),
}
_V2_FAMILY_BYTE: Final = {name: byte for byte, (name, _) in _V2_FAMILIES.items()}


@dataclass(frozen=True)
class Pending:
    """More bytes are needed."""


PENDING: Final = Pending()


@dataclass(frozen=True)
class ProxyAccepted:
    """A valid header.

    ``source``/``destination`` are None for ``LOCAL`` (a health check from the
    balancer itself: use the connection's own addresses) and for ``UNKNOWN``.
    ``tlvs`` are v2's type-length-value extensions, in order (empty for v1).
    """

    version: Literal[1, 2]
    command: Literal["PROXY", "LOCAL"]
    family: Family
    source: Address | None
    destination: Address | None
    tlvs: tuple[tuple[int, bytes], ...] = ()
    rest: bytes = field(default=b"", repr=False)
    header_length: int = 0


@dataclass(frozen=True)
class ProxyRejected:
    """Not a valid header; ``reason`` is short and fixed (safe to log and count by)."""

    reason: str


ProxyResult = Pending | ProxyAccepted | ProxyRejected


class ProxyHeaderParser:
    """Incremental parser for one connection's PROXY header (v1 or v2).

    ``allow_v1``/``allow_v2`` restrict the versions accepted;
    ``max_v2_length`` bounds the v2 length field (address block plus TLVs),
    so a header announcing 65,535 bytes is refused at once instead of being
    buffered.
    """

    def __init__(
        self,
        *,
        max_v2_length: int = DEFAULT_MAX_V2_LENGTH,
        allow_v1: bool = True,
        allow_v2: bool = True,
    ) -> None:
        self._max_v2_length = max(0, min(max_v2_length, 0xFFFF))
        self._allow_v1 = allow_v1
        self._allow_v2 = allow_v2
        self._buffer = bytearray()
        self._result: ProxyResult = PENDING

    @property
    def result(self) -> ProxyResult:
        return self._result

    @property
    def buffered(self) -> int:
        """Bytes held now (for tests of the memory bound)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> ProxyResult:
        """Add bytes; return PENDING or the (final, sticky) decision."""
        if not isinstance(self._result, Pending):
            return self._result
        self._buffer += data
        result = self._parse()
        if not isinstance(result, Pending):
            self._buffer = bytearray()
        self._result = result
        return result

    def _parse(self) -> ProxyResult:
        buf = self._buffer
        head = bytes(buf[:12])
        if self._allow_v1 and _V1_PREFIX[: len(head)] == head[: len(_V1_PREFIX)]:
            return self._parse_v1()
        if self._allow_v2 and V2_SIGNATURE[: len(head)] == head:
            return self._parse_v2()
        return ProxyRejected("not a PROXY header")

    # -- version 1: one text line ---------------------------------------------

    def _parse_v1(self) -> ProxyResult:
        buf = self._buffer
        end = buf.find(b"\r\n", 0, V1_MAX_LENGTH)
        if end < 0:
            if len(buf) >= V1_MAX_LENGTH:
                return ProxyRejected("v1 line too long")
            if b"\n" in buf:  # an LF not after CR
                return ProxyRejected("v1 line not ended by CRLF")
            return PENDING
        line = bytes(buf[:end])
        rest = bytes(buf[end + 2 :])
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            return ProxyRejected("v1 not ASCII")
        parts = text.split(" ")
        if len(parts) >= 2 and parts[1] == "UNKNOWN":
            return ProxyAccepted(1, "PROXY", "UNKNOWN", None, None, (), rest, end + 2)
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            return ProxyRejected("v1 malformed")
        family: Family = "TCP4" if parts[1] == "TCP4" else "TCP6"
        src = _v1_address(parts[2], parts[4], family)
        dst = _v1_address(parts[3], parts[5], family)
        if src is None or dst is None:
            return ProxyRejected("bad address")
        return ProxyAccepted(1, "PROXY", family, src, dst, (), rest, end + 2)

    # -- version 2: binary ----------------------------------------------------

    def _parse_v2(self) -> ProxyResult:
        buf = self._buffer
        # Refuse a bad version, command or family as soon as its byte arrives.
        if len(buf) >= 13 and buf[12] >> 4 != 2:
            return ProxyRejected("v2 bad version")
        if len(buf) >= 13 and buf[12] & 0x0F > 1:
            return ProxyRejected("v2 bad command")
        if len(buf) >= 14 and buf[13] not in _V2_FAMILIES:
            return ProxyRejected("v2 bad family")
        if len(buf) < 16:
            return PENDING
        command_bits, fam = buf[12] & 0x0F, buf[13]
        length = int.from_bytes(buf[14:16], "big")
        if length > self._max_v2_length:
            return ProxyRejected("v2 length exceeds limit")
        if len(buf) < 16 + length:
            return PENDING
        body = bytes(buf[16 : 16 + length])
        rest = bytes(buf[16 + length :])
        family, address_length = _V2_FAMILIES[fam]
        if command_bits == 0:  # LOCAL: the body is skipped, addresses unused
            return ProxyAccepted(2, "LOCAL", family, None, None, (), rest, 16 + length)
        if length < address_length:
            return ProxyRejected("truncated")
        addresses = _v2_addresses(family, body[:address_length])
        if addresses is None:
            return ProxyRejected("bad address")
        tlvs = _v2_tlvs(body[address_length:])
        if tlvs is None:
            return ProxyRejected("v2 bad TLV")
        src, dst = addresses if family != "UNKNOWN" else (None, None)
        return ProxyAccepted(2, "PROXY", family, src, dst, tlvs, rest, 16 + length)


def _v1_port(text: str) -> int | None:
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        return None
    port = int(text)
    return port if port <= 0xFFFF else None


def _v1_address(host: str, port_text: str, family: Family) -> Address | None:
    port = _v1_port(port_text)
    if port is None:
        return None
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address
        if family == "TCP4":
            ip = ipaddress.IPv4Address(host)
        else:
            ip = ipaddress.IPv6Address(host)
            if ip.scope_id is not None:
                return None
    except ValueError:
        return None
    return (str(ip), port)


def _v2_addresses(family: Family, block: bytes) -> tuple[Address, Address] | None:
    if family in ("TCP4", "UDP4"):
        return (
            (str(ipaddress.IPv4Address(block[0:4])), int.from_bytes(block[8:10], "big")),
            (str(ipaddress.IPv4Address(block[4:8])), int.from_bytes(block[10:12], "big")),
        )
    if family in ("TCP6", "UDP6"):
        return (
            (str(ipaddress.IPv6Address(block[0:16])), int.from_bytes(block[32:34], "big")),
            (str(ipaddress.IPv6Address(block[16:32])), int.from_bytes(block[34:36], "big")),
        )
    if family in ("UNIX_STREAM", "UNIX_DGRAM"):
        paths = []
        for raw in (block[:108], block[108:216]):
            path = raw.split(b"\x00", 1)[0]
            try:
                paths.append(path.decode("utf-8"))
            except UnicodeDecodeError:
                return None
        return ((paths[0], 0), (paths[1], 0))
    return (("", 0), ("", 0))  # UNKNOWN: no addresses; the caller drops them


def _v2_tlvs(data: bytes) -> tuple[tuple[int, bytes], ...] | None:
    tlvs: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if len(data) - i < 3:
            return None
        kind = data[i]
        size = int.from_bytes(data[i + 1 : i + 3], "big")
        if len(data) - i - 3 < size:
            return None
        tlvs.append((kind, data[i + 3 : i + 3 + size]))
        i += 3 + size
    return tuple(tlvs)


# -- builders (tests and doubles) ---------------------------------------------


def encode_v1(source: Address | None = None, destination: Address | None = None) -> bytes:
    """A v1 line: TCP4 or TCP6 from the address text, ``UNKNOWN`` when either is None."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be the same IP version")
    proto = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {proto} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")


def encode_v2(
    source: Address | None = None,
    destination: Address | None = None,
    *,
    command: Literal["PROXY", "LOCAL"] = "PROXY",
    transport: Literal["stream", "dgram"] = "stream",
    tlvs: Sequence[tuple[int, bytes]] = (),
    unix: bool = False,
) -> bytes:
    """A v2 header. No addresses (or ``command="LOCAL"``) gives family UNSPEC."""
    body = b""
    fam = 0x00
    if source is not None and destination is not None:
        if unix:
            fam = _V2_FAMILY_BYTE["UNIX_STREAM" if transport == "stream" else "UNIX_DGRAM"]
            body = b"".join(p[0].encode().ljust(108, b"\x00")[:108] for p in (source, destination))
        else:
            src = ipaddress.ip_address(source[0])
            dst = ipaddress.ip_address(destination[0])
            if src.version != dst.version:
                raise ValueError("source and destination must be the same IP version")
            name = ("TCP" if transport == "stream" else "UDP") + str(src.version)
            fam = _V2_FAMILY_BYTE[name]  # type: ignore[index]
            body = (
                src.packed
                + dst.packed
                + source[1].to_bytes(2, "big")
                + destination[1].to_bytes(2, "big")
            )
    for kind, value in tlvs:
        body += bytes([kind]) + len(value).to_bytes(2, "big") + value
    ver_cmd = 0x21 if command == "PROXY" else 0x20
    return V2_SIGNATURE + bytes([ver_cmd, fam]) + len(body).to_bytes(2, "big") + body
