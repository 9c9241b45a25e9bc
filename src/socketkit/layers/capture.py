"""The only I/O in layers/: capture frames off an interface, read and write pcap.

Capture is a Linux packet socket (``AF_PACKET``, ``SOCK_RAW``): the kernel
hands it every frame on the interface with its link header, which is what
tcpdump and scapy's sniffer use underneath. We open it *before* the exchange
(so it sees the SYN), a thread reads it while the exchange runs, and the
caller collects the frames of its conversation until it has seen the last
one or a deadline passes. Times are the kernel's (``SO_TIMESTAMPNS``).

Opening it needs root or CAP_NET_RAW; without either, ``open_packet_capture``
raises ``PermissionDenied`` with one line that says how to grant it, and the
caller falls back to the root-free view.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import shlex
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scapy.error import Scapy_Exception
from scapy.utils import RawPcapReader, RawPcapWriter

from socketkit.errors import DataError, PermissionDenied, UsageError
from socketkit.layers.decode import LINKTYPE_ETHERNET, Frame

__all__ = [
    "Capture",
    "CaptureOpener",
    "CaptureResult",
    "PacketCapture",
    "grant_hint",
    "open_packet_capture",
    "port_filter",
    "read_pcap",
    "write_pcap",
]

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux SO_TIMESTAMPNS(_OLD): a struct timespec per received frame."""
_SOL_PACKET = getattr(socket, "SOL_PACKET", 263)
_SO_ATTACH_FILTER = 26
_PACKET_STATISTICS = 6
_FRAME_BUFFER = 262_144
"""Largest frame we read: loopback's 64 KiB MTU plus headers, with room to spare."""
_RECEIVE_BUFFER = 8 * 1024 * 1024
_MAX_FRAMES = 200_000
"""Frames kept in memory while the exchange runs (loopback is shared with others)."""
_JOIN_TIMEOUT = 5.0
SNAPLEN = 262_144
"""The pcap snapshot length we declare (tcpdump's default)."""


@dataclass(frozen=True)
class CaptureResult:
    """The frames kept, and whether the capture saw the end it waited for."""

    frames: list[Frame]
    complete: bool
    dropped: int = 0


class Capture(Protocol):
    """What the rest of layers/ needs from a capture; tests pass their own."""

    interface: str
    linktype: int

    def collect(
        self,
        keep: Callable[[Frame], bool],
        done: Callable[[Sequence[Frame]], bool],
        timeout: float,
    ) -> CaptureResult: ...

    def close(self) -> None: ...


CaptureOpener = Callable[[str | None, int | None], Capture]
"""Opens a capture on an interface name (None: every interface) for one port (None: all)."""


def grant_hint() -> str:
    """How to get capture rights, for the one line shown when we have none.

    Both halves must work from a virtual environment: sudo resets PATH, so a
    bare ``sudo socketkit`` misses the venv and the command is given with the
    interpreter's full path; a venv's ``bin/python3`` is a symlink, and
    setcap refuses symlinks, so the grant names the real file (which every
    program run by that interpreter then shares: the line says so).
    """
    python = sys.executable
    real = os.path.realpath(python)
    shared = " (the interpreter behind this venv; every script it runs gets the right)"
    return (
        f"run it as root: sudo {shlex.quote(python)} -m socketkit layers, or grant the "
        f"real interpreter file once: sudo setcap cap_net_raw+eip {shlex.quote(real)}"
        + (shared if real != os.path.abspath(python) else "")
    )


def port_filter(port: int) -> list[tuple[int, int, int, int]]:
    """The classic BPF program for ``port PORT`` on Ethernet framing.

    Instruction for instruction what ``tcpdump -dd "port PORT"`` compiles
    (a test checks that): IPv6 or IPv4, then TCP, UDP or SCTP, then either
    port equal; IPv4 fragments after the first are skipped. The kernel runs
    it on every frame, so a busy loopback (a benchmark, other tests) never
    reaches our queue; scapy still does all the decoding.
    """
    ld_h, ld_b, ld_h_ind, ldx_msh = 0x28, 0x30, 0x48, 0xB1
    jeq, jset, ret = 0x15, 0x45, 0x06
    return [
        (ld_h, 0, 0, 12),  # 0: EtherType
        (jeq, 0, 8, 0x86DD),  # 1: IPv6?
        (ld_b, 0, 0, 20),  # 2: IPv6 next header
        (jeq, 2, 0, 132),  # 3: SCTP
        (jeq, 1, 0, 6),  # 4: TCP
        (jeq, 0, 17, 17),  # 5: UDP, else drop
        (ld_h, 0, 0, 54),  # 6: source port (14 + 40)
        (jeq, 14, 0, port),  # 7
        (ld_h, 0, 0, 56),  # 8: destination port
        (jeq, 12, 13, port),  # 9
        (jeq, 0, 12, 0x0800),  # 10: IPv4?
        (ld_b, 0, 0, 23),  # 11: IPv4 protocol
        (jeq, 2, 0, 132),  # 12
        (jeq, 1, 0, 6),  # 13
        (jeq, 0, 8, 17),  # 14
        (ld_h, 0, 0, 20),  # 15: flags and fragment offset
        (jset, 6, 0, 0x1FFF),  # 16: a later fragment has no ports
        (ldx_msh, 0, 0, 14),  # 17: X = IPv4 header length
        (ld_h_ind, 0, 0, 14),  # 18: source port
        (jeq, 2, 0, port),  # 19
        (ld_h_ind, 0, 0, 16),  # 20: destination port
        (jeq, 0, 1, port),  # 21
        (ret, 0, 0, SNAPLEN),  # 22: keep the whole frame
        (ret, 0, 0, 0),  # 23: drop
    ]


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER: hand the kernel a struct sock_fprog pointing at the program."""
    code = b"".join(struct.pack("=HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def open_packet_capture(interface: str | None = "lo", port: int | None = None) -> PacketCapture:
    """Open a packet socket on ``interface`` for ``port``; our errors if not permitted."""
    family = getattr(socket, "AF_PACKET", None)
    if family is None:
        raise UsageError(
            "packet capture works on Linux only here - "
            "use tcpdump, then: socketkit layers --read FILE"
        )
    try:
        # Protocol 0 receives nothing until bind names the interface and
        # ETH_P_ALL, so no frame of another interface slips in between.
        sock = socket.socket(family, socket.SOCK_RAW, 0)
    except PermissionError as exc:
        raise PermissionDenied(
            f"packet capture is not permitted (it needs root or CAP_NET_RAW) - {grant_hint()}"
        ) from exc
    try:
        if port is not None:
            _attach_filter(sock, port_filter(port))  # before bind: nothing unfiltered queues
        sock.bind((interface or "", ETH_P_ALL))
        _set_receive_buffer(sock)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot capture on {interface or 'all interfaces'}: {exc.strerror}"
        ) from exc
    return PacketCapture(sock, interface or "any")


def _set_receive_buffer(sock: socket.socket) -> None:
    """Make room for the whole exchange while we are not reading (root may force it)."""
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, _RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)


class PacketCapture:
    """A bound ``AF_PACKET`` socket (Ethernet framing, loopback's too) and its reader.

    A thread reads frames as they arrive, not after the exchange: the kernel
    stamps some frames (the handshake's, on recent kernels) only when they are
    read, so reading promptly is what keeps their times true.
    """

    linktype = LINKTYPE_ETHERNET

    def __init__(self, sock: socket.socket, interface: str) -> None:
        self._sock = sock
        self.interface = interface
        self._frames: list[Frame] = []
        self._overflow = 0
        self._finished = False
        self._cond = threading.Condition()
        self._wake_rx, self._wake_tx = socket.socketpair()
        self._thread = threading.Thread(target=self._read, name="socketkit-capture", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                readable, _, _ = select.select([self._sock, self._wake_rx], [], [])
                if self._wake_rx in readable:
                    return
                frames = self._drain()
                with self._cond:
                    room = _MAX_FRAMES - len(self._frames)
                    self._overflow += max(0, len(frames) - room)
                    self._frames += frames[: max(room, 0)]
                    self._cond.notify_all()
        except OSError:
            return  # the socket was closed under us: close() is running
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def collect(
        self,
        keep: Callable[[Frame], bool],
        done: Callable[[Sequence[Frame]], bool],
        timeout: float,
    ) -> CaptureResult:
        """Frames ``keep`` wants, once ``done`` says the exchange is over, or at the deadline."""
        deadline = time.monotonic() + timeout
        kept: list[Frame] = []
        seen = 0
        with self._cond:
            while True:
                kept += [f for f in self._frames[seen:] if keep(f)]
                seen = len(self._frames)
                if done(kept):
                    return CaptureResult(kept, complete=True, dropped=self._dropped())
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._finished:
                    return CaptureResult(kept, complete=False, dropped=self._dropped())
                self._cond.wait(remaining)

    def _drain(self) -> list[Frame]:
        out: list[Frame] = []
        space = socket.CMSG_SPACE(16)
        while True:
            try:
                data, ancillary, _flags, address = self._sock.recvmsg(_FRAME_BUFFER, space)
            except BlockingIOError:
                return out
            ifname, _proto, pkttype, hatype = address[:4]
            if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
                continue  # other framings would not fit one Ethernet pcap
            out.append(
                Frame(
                    data=data,
                    timestamp=_timestamp(ancillary),
                    linktype=LINKTYPE_ETHERNET,
                    interface=str(ifname),
                    wire_length=len(data),
                    outgoing=pkttype == PACKET_OUTGOING,
                )
            )

    def _dropped(self) -> int:
        """Frames lost: the kernel's (queue full, PACKET_STATISTICS) and our cap's."""
        try:
            raw = self._sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
        except OSError:
            return self._overflow
        _packets, drops = struct.unpack("=II", raw)
        return int(drops) + self._overflow

    def close(self) -> None:
        """Stop the reader (bounded wait), then close every socket."""
        try:
            self._wake_tx.send(b"x")
        except OSError:
            pass
        self._thread.join(_JOIN_TIMEOUT)
        self._sock.close()
        self._wake_rx.close()
        self._wake_tx.close()


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("=qq", data[:16])
            return float(seconds) + float(nanoseconds) / 1e9
    return time.time()


def write_pcap(path: str, frames: Sequence[Frame], linktype: int = LINKTYPE_ETHERNET) -> None:
    """A classic pcap (microsecond stamps), which Wireshark and tcpdump open."""
    kinds = {f.linktype for f in frames}
    if len(kinds) > 1:
        raise DataError(f"cannot write {path}: frames of several link types {sorted(kinds)}")
    if kinds:
        linktype = kinds.pop()
    try:
        writer = RawPcapWriter(path, linktype=linktype, snaplen=SNAPLEN, sync=False)
        with writer:
            writer.write_header(None)
            for f in frames:
                seconds = int(f.timestamp)
                micros = min(round((f.timestamp - seconds) * 1e6), 999_999)
                writer.write_packet(
                    f.data, sec=seconds, usec=micros, wirelen=f.wire_length or len(f.data)
                )
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _muffle(record: logging.LogRecord) -> bool:
    """Keeps scapy's "packet has been truncated" off stderr: we say it in our own words."""
    return "truncated" not in record.getMessage()


_SCAPY_MAX_FRAME = 65535
"""scapy hands back at most this many bytes of one frame (its MTU), whatever the file holds."""


def read_pcap(path: str, problems: list[str] | None = None) -> list[Frame]:
    """Frames from a pcap or pcapng file (gzipped too); a clear error for anything else.

    A file cut short inside a packet (a capture copied while it was being
    written) still yields what it holds, as tcpdump -r does; one line that
    says so is appended to ``problems``. We notice it ourselves (fewer
    bytes than the record's captured length), not from scapy's log, which
    rate-limits repeated warnings.
    """
    scapy_log = logging.getLogger("scapy.runtime")
    scapy_log.addFilter(_muffle)
    try:
        frames, cut = _read_pcap(path)
    finally:
        scapy_log.removeFilter(_muffle)
    if cut and problems is not None:
        problems.append(
            f"{path} ends inside packet {cut} (a truncated capture): "
            "showing what it holds, the last packet cut short"
        )
    return frames


def _read_pcap(path: str) -> tuple[list[Frame], int]:
    """The frames, and the number of the first packet cut short (0: none)."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below, whatever scapy does
    except FileNotFoundError as exc:
        raise DataError(f"cannot read {path}: no such file") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with stream:
        try:
            reader: Any = RawPcapReader(stream)  # type: ignore[arg-type]  # takes files too
        except Scapy_Exception as exc:
            raise DataError(f"cannot read {path}: not a pcap or pcapng file ({exc})") from exc
        try:
            frames, cut = [], 0
            for data, meta in reader:
                frames.append(_frame_from_metadata(bytes(data), meta, reader))
                caplen = getattr(meta, "caplen", None)  # pcap records; pcapng has none here
                if not cut and caplen is not None and len(data) < min(caplen, _SCAPY_MAX_FRAME):
                    cut = len(frames)
            return frames, cut
        except Scapy_Exception as exc:
            raise DataError(f"cannot read {path}: damaged capture file ({exc})") from exc
        finally:
            reader.close()


def _frame_from_metadata(data: bytes, meta: Any, reader: Any) -> Frame:
    if hasattr(meta, "tshigh"):  # pcapng
        stamp = ((meta.tshigh << 32) + meta.tslow) / meta.tsresol if meta.tshigh is not None else 0
        ifname = meta.ifname.decode("utf-8", "backslashreplace") if meta.ifname else None
        return Frame(
            data=data,
            timestamp=float(stamp),
            linktype=int(meta.linktype),
            interface=ifname,
            wire_length=int(meta.wirelen),
            outgoing=meta.direction == 2,
        )
    scale = 1e9 if getattr(reader, "nano", False) else 1e6
    return Frame(
        data=data,
        timestamp=meta.sec + meta.usec / scale,
        linktype=int(reader.linktype),
        wire_length=int(meta.wirelen),
    )
