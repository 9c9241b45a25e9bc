from __future__ import annotations

import errno
import socket

import pytest

from socketkit import errors
from socketkit.errors import EXIT_CODES, translate_os_error


def os_error(code: int) -> OSError:
    return OSError(code, errno.errorcode[code])


@pytest.mark.parametrize(
    ("exc", "action", "cls", "words"),
    [
        (os_error(errno.EADDRINUSE), "bind", errors.AddressInUse, "already in use"),
        (os_error(errno.EACCES), "bind", errors.PermissionDenied, "below 1024"),
        (os_error(errno.EADDRNOTAVAIL), "bind", errors.AddressNotAvailable, "not on this machine"),
        (
            os_error(errno.ECONNREFUSED),
            "connect",
            errors.ConnectionRefused,
            "is the server running",
        ),
        (os_error(errno.ENETUNREACH), "connect", errors.Unreachable, "routes"),
        (os_error(errno.EHOSTUNREACH), "connect", errors.Unreachable, "routes"),
        (os_error(errno.ETIMEDOUT), "connect", errors.TimedOut, "timed out"),
        (os_error(errno.ECONNRESET), "send", errors.ConnectionLost, "is the server still running"),
        (os_error(errno.EMSGSIZE), "send to", errors.DataError, "use TCP"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "connect",
            errors.ResolveError,
            "cannot resolve",
        ),
        (TimeoutError(), "connect", errors.TimedOut, "timed out"),
        (os_error(errno.EIO), "send", errors.NetworkError, "failed"),
    ],
)
def test_translate_os_error(exc: OSError, action: str, cls: type, words: str) -> None:
    translated = translate_os_error(exc, action=action, where="127.0.0.1:7")
    assert type(translated) is cls
    assert words in str(translated)
    assert "\n" not in str(translated)


def test_exit_codes_are_distinct() -> None:
    codes = list(EXIT_CODES.values())
    assert len(codes) == len(set(codes))


def test_every_error_class_has_a_listed_exit_code() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.SocketkitError)
    ]
    listed = set(EXIT_CODES.values())
    for cls in classes:
        assert cls.exit_code in listed, cls
