"""``socketkit send``: the netcat-like client."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from typing import Any

from socketkit.cli.common import (
    add_loop_option,
    add_verbose_option,
    configure_logging,
    positive_float,
    seconds_or_zero,
)
from socketkit.client import RelayOptions, read_fd_chunks, relay
from socketkit.display import hexdump
from socketkit.endpoints import Endpoint, parse_endpoint
from socketkit.errors import UsageError
from socketkit.runtime import run

__all__ = ["register"]

EXAMPLES = """\
examples:
  socketkit send 127.0.0.1:10007 hello            send "hello\\n", print the reply
  cat big.iso | socketkit send 127.0.0.1:10007 > copy.iso
  socketkit send [::1]:10100                      type lines to sum (serve --host ::1)
  socketkit send 127.0.0.1:10007 --udp -q 2       one datagram per line, wait 2 s for replies
  socketkit send unix:/tmp/echo.sock --hex hi     hex dump of both directions on stderr

when does it stop? (the half-close model)
  input ends          -> send FIN (shutdown SHUT_WR) and keep reading until the peer closes
    --no-shutdown        ... but do not send FIN (for peers that take FIN as "hang up")
    -q S                 ... but give the peer at most S more seconds
  the peer closes     -> stop at once, even if input remains (ncat >= 7.96, socat, nc)
    --no-exit-on-peer-close  ... keep sending input until it ends, then stop
                             (a peer that closes fully, not half, ends it: exit 74)
  UDP has no FIN: each read of input is one datagram; after input ends,
  replies are awaited for -q seconds (default 1).
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "send",
        help="netcat-like: stdin (or MESSAGE) to the peer, the peer to stdout",
        description="Stream stdin (or MESSAGE) to HOST:PORT and the peer's bytes to stdout, "
        "both at once.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="HOST:PORT",
        help="the peer: HOST:PORT, [v6]:PORT or unix:/path",
    )
    p.add_argument(
        "message",
        nargs="?",
        metavar="MESSAGE",
        help="send this text plus a newline instead of reading stdin",
    )
    p.add_argument(
        "-n", "--no-newline", action="store_true", help="send MESSAGE without the newline"
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--udp", action="store_true", help="UDP: one datagram per read of input")
    how.add_argument("--unix", metavar="PATH", help="connect to a Unix stream socket at PATH")
    ends = p.add_argument_group("ending (see below)")
    ends.add_argument(
        "--no-shutdown",
        dest="half_close",
        action="store_false",
        help="do not send FIN when input ends",
    )
    ends.add_argument(
        "-q",
        "--quit-after-eof",
        type=seconds_or_zero,
        default=None,
        metavar="SECONDS",
        help="after input ends, wait at most this long for the peer (0: at once; UDP default 1)",
    )
    ends.add_argument(
        "--exit-on-peer-close",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop when the peer closes, even if input remains (default: yes)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default 10)",
    )
    p.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="fail when the peer sends nothing for this long (default: wait forever)",
    )
    p.add_argument(
        "--hex",
        action="store_true",
        help="hex dump of each direction on stderr (> sent, < received)",
    )
    add_verbose_option(p, "resolving, connecting, FIN and close")
    add_loop_option(p)
    p.set_defaults(handler=_run)


class _HexObserver:
    def __init__(self) -> None:
        self._offsets = {"sent": 0, "received": 0}

    def __call__(self, direction: str, data: bytes) -> None:
        mark = "> " if direction == "sent" else "< "
        for line in hexdump(data, offset=self._offsets[direction], prefix=mark):
            print(line, file=sys.stderr)
        self._offsets[direction] += len(data)


async def _message_source(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def _endpoint(args: argparse.Namespace) -> tuple[Endpoint, str | None]:
    message = args.message
    if args.unix:
        if args.target is not None and message is not None:
            raise UsageError("with --unix PATH give at most one MESSAGE, no HOST:PORT")
        return Endpoint(path=args.unix), args.target if message is None else message
    if args.target is None:
        raise UsageError(
            "send needs HOST:PORT (or --unix PATH), e.g. socketkit send 127.0.0.1:10007"
        )
    return parse_endpoint(args.target), message


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint, message = _endpoint(args)
    if args.udp and endpoint.is_unix:
        raise UsageError("--udp needs HOST:PORT, not a Unix socket")
    options = RelayOptions(
        half_close=args.half_close,
        quit_after_eof=args.quit_after_eof,
        exit_on_peer_close=args.exit_on_peer_close,
        idle_timeout=args.idle_timeout,
        connect_timeout=args.timeout,
    )
    out = sys.stdout.buffer

    def sink(data: bytes) -> None:
        out.write(data)
        out.flush()

    async def main() -> None:
        if message is not None:
            text = message if args.no_newline else message + "\n"
            source = _message_source(text.encode("utf-8", errors="surrogateescape"))
        else:
            source = read_fd_chunks(sys.stdin.fileno())
        await relay(
            endpoint,
            source,
            sink,
            udp=args.udp,
            options=options,
            observer=_HexObserver() if args.hex else None,
        )

    run(main(), loop=args.loop)
    return 0
