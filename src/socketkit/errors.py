"""The one exception tree of socketkit.

Every expected failure is a ``SocketkitError``: it carries a message for people
(what happened and what to do) and an exit code, so the CLI needs exactly one
``except`` to turn any of them into one line on stderr. OS errors are translated
where the I/O happens (``raise ... from exc``), so the errno stays reachable on
``__cause__``.

    SocketkitError                                         exit
    ├── UsageError            bad flag, address, port, input      64  EX_USAGE
    ├── DataError             bad input data (file, payload)      65  EX_DATAERR
    ├── ResolveError          the name does not resolve            68  EX_NOHOST
    ├── NetworkError          a translated OSError
    │   ├── ConnectionRefused nobody listens there                 69  EX_UNAVAILABLE
    │   ├── Unreachable       no route to the network or host     72
    │   ├── AddressInUse      bind: port taken                     73
    │   ├── ConnectionLost    reset or broken pipe mid-exchange    74  EX_IOERR
    │   ├── TimedOut          a deadline passed                    75  EX_TEMPFAIL
    │   ├── PermissionDenied  privileged port, no capture right    77  EX_NOPERM
    │   └── AddressNotAvailable  bind: address not on this host    78
    ├── ProtocolError
    │   ├── LocalProtocolError   our own API misused (a bug)       70  EX_SOFTWARE
    │   └── RemoteProtocolError  the peer's reply is malformed     76  EX_PROTOCOL
    ├── EchoMismatch          the echo differs from what was sent   1
    └── OutputClosed          our stdout was closed (| head): quiet  0

Exit 0 is success; 130 is an interrupted client (Ctrl-C); 70 is also used for
an unexpected internal error (a bug, reported without a traceback unless
``--debug``).
"""

from __future__ import annotations

import errno
import socket
from typing import ClassVar

__all__ = [
    "AddressInUse",
    "AddressNotAvailable",
    "ConnectionLost",
    "ConnectionRefused",
    "DataError",
    "EchoMismatch",
    "LocalProtocolError",
    "NetworkError",
    "OutputClosed",
    "PermissionDenied",
    "ProtocolError",
    "RemoteProtocolError",
    "ResolveError",
    "SocketkitError",
    "TimedOut",
    "Unreachable",
    "UsageError",
    "WorkerFailed",
    "translate_os_error",
]


class SocketkitError(Exception):
    """Root of every expected failure; ``str(exc)`` is the line shown to people."""

    exit_code: ClassVar[int] = 1


class UsageError(SocketkitError):
    exit_code = 64


class DataError(SocketkitError):
    exit_code = 65


class ResolveError(SocketkitError):
    exit_code = 68


class NetworkError(SocketkitError):
    exit_code = 71


class ConnectionRefused(NetworkError):
    exit_code = 69


class Unreachable(NetworkError):
    exit_code = 72


class AddressInUse(NetworkError):
    exit_code = 73


class ConnectionLost(NetworkError):
    exit_code = 74


class TimedOut(NetworkError):
    exit_code = 75


class PermissionDenied(NetworkError):
    exit_code = 77


class AddressNotAvailable(NetworkError):
    exit_code = 78


class ProtocolError(SocketkitError):
    exit_code = 76


class LocalProtocolError(ProtocolError):
    """Raised when socketkit's own API is called out of order: a bug, not the peer."""

    exit_code = 70


class WorkerFailed(SocketkitError):
    """A ``serve --workers`` worker could not start, or kept dying."""

    exit_code = 70


class RemoteProtocolError(ProtocolError):
    """Only clients raise this: a server's reply broke the protocol."""

    exit_code = 76


class EchoMismatch(SocketkitError):
    exit_code = 1


class OutputClosed(SocketkitError):
    """Whoever reads our output stopped (``socketkit chargen | head -1``).

    Not the network's fault and not a failure: the CLI exits 0 without a
    word, as ``cat`` does. Raised by sinks, so a broken pipe on stdout is
    never mistaken for a broken connection.
    """

    exit_code = 0


EXIT_CODES: dict[str, int] = {
    "success": 0,
    "echo reply differs": EchoMismatch.exit_code,
    "usage (bad flag, address, port)": UsageError.exit_code,
    "bad input data": DataError.exit_code,
    "name does not resolve": ResolveError.exit_code,
    "connection refused": ConnectionRefused.exit_code,
    "internal error (a bug, or serve workers that keep dying)": LocalProtocolError.exit_code,
    "other network error": NetworkError.exit_code,
    "network or host unreachable": Unreachable.exit_code,
    "address already in use": AddressInUse.exit_code,
    "connection reset or lost": ConnectionLost.exit_code,
    "timed out": TimedOut.exit_code,
    "malformed reply from the peer": RemoteProtocolError.exit_code,
    "permission denied (privileged port)": PermissionDenied.exit_code,
    "address not available on this host": AddressNotAvailable.exit_code,
    "interrupted (Ctrl-C)": 130,
}
"""Every exit code, for ``--help`` and the README."""


_REFUSED = {errno.ECONNREFUSED}
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}
_LOST = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ESHUTDOWN}
_PERMISSION = {errno.EACCES, errno.EPERM}


def translate_os_error(exc: OSError, *, action: str, where: str) -> SocketkitError:
    """Map an OS error at an I/O edge to our tree, with a line that says what to do.

    ``action`` is what we were doing ("connect", "bind", "send"), ``where`` the
    address as people write it (``127.0.0.1:7``, ``unix:/tmp/s``).
    """
    if isinstance(exc, socket.gaierror):
        return ResolveError(
            f"cannot resolve {where}: {exc.strerror or exc} - check the host name or your DNS"
        )
    if isinstance(exc, TimeoutError) and exc.errno is None:
        return TimedOut(f"{action} {where} timed out")
    code = exc.errno
    if action == "bind":
        if code == errno.EADDRINUSE:
            return AddressInUse(
                f"address already in use: {where} - another program listens there; "
                "stop it or choose another port (--port, --port-base)"
            )
        if code in _PERMISSION:
            return PermissionDenied(
                f"permission denied binding {where} - ports below 1024 need root or "
                "CAP_NET_BIND_SERVICE; use a port above 1023 (the default --port-base 10000 does)"
            )
        if code == errno.EADDRNOTAVAIL:
            return AddressNotAvailable(
                f"cannot bind {where}: that address is not on this machine - "
                "use 127.0.0.1, ::1, 0.0.0.0 or one of this host's addresses"
            )
        if code == errno.EAFNOSUPPORT:
            return AddressNotAvailable(
                f"cannot bind {where}: this machine does not support that address family"
            )
    if code in _REFUSED or (action == "connect" and isinstance(exc, FileNotFoundError)):
        return ConnectionRefused(f"connection refused by {where} - is the server running?")
    if code in _UNREACHABLE:
        return Unreachable(
            f"{action} {where}: {exc.strerror} - check the address, your routes and your network"
        )
    if code == errno.ETIMEDOUT:
        return TimedOut(f"{action} {where} timed out - is the host up, or a firewall in the way?")
    if code in _LOST:
        return ConnectionLost(
            f"{action} {where}: connection lost ({exc.strerror}) - the peer closed or reset "
            "it; is the server still running, or at its connection limit?"
        )
    if code == errno.EMSGSIZE:
        return DataError(
            f"{action} {where}: message too long for one datagram (UDP carries at most "
            "65,507 bytes over IPv4, 65,527 over IPv6) - send less at once, or use TCP"
        )
    if code in _PERMISSION:
        return PermissionDenied(f"{action} {where}: permission denied ({exc.strerror})")
    if code == errno.EADDRNOTAVAIL:
        return AddressNotAvailable(f"{action} {where}: address not available ({exc.strerror})")
    return NetworkError(f"{action} {where} failed: {exc.strerror or exc}")
