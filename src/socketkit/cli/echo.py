"""``socketkit echo``: the lab's echo client."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from socketkit.cli.common import (
    add_loop_option,
    add_verbose_option,
    configure_logging,
    positive_float,
    positive_int,
)
from socketkit.client import echo
from socketkit.display import escape_payload
from socketkit.endpoints import Endpoint, parse_endpoint
from socketkit.errors import EchoMismatch, UsageError
from socketkit.protocols import get_service
from socketkit.runtime import run

__all__ = ["register"]

DEFAULT_TO = f"127.0.0.1:{get_service('echo').default_port()}"

EXAMPLES = f"""\
examples:
  socketkit echo hello                          TCP to {DEFAULT_TO} (socketkit serve's echo)
  socketkit echo "a longer message" -v --chunk 16   narrate connect, send and each 16-byte recv
  socketkit echo hello --udp                    one datagram, one reply
  socketkit echo hello --unix /tmp/echo.sock    over a Unix socket
  socketkit echo hello --to [::1]:10007         over IPv6 (serve echo --host ::1)

It prints the reply once exactly as many bytes came back as were sent, and
exits 1 if the reply differs from the message.
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "echo",
        help="send a message to an echo server and print the reply",
        description="The lab's echo client: connect, sendall, recv until every byte is back, close.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("message", metavar="MESSAGE", help="the text to send (UTF-8)")
    p.add_argument(
        "--to",
        default=DEFAULT_TO,
        metavar="HOST:PORT",
        help=f"the server (default {DEFAULT_TO}; [v6]:PORT for IPv6, unix:/path for Unix)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--udp", action="store_true", help="send one UDP datagram instead of TCP")
    how.add_argument("--unix", metavar="PATH", help="connect to a Unix stream socket at PATH")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up after this long, connecting included (default 10)",
    )
    p.add_argument(
        "--chunk",
        type=positive_int,
        default=65536,
        metavar="BYTES",
        help="bytes asked of each recv() (default 65536; the lab used 16)",
    )
    add_verbose_option(p, "connect, send and each chunk received")
    add_loop_option(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint = Endpoint(path=args.unix) if args.unix else parse_endpoint(args.to)
    if args.udp and endpoint.is_unix:
        raise UsageError("--udp needs HOST:PORT, not a Unix socket")
    message = args.message.encode("utf-8", errors="surrogateescape")
    result = run(
        echo(message, endpoint, udp=args.udp, timeout=args.timeout, chunk=args.chunk),
        loop=args.loop,
    )
    text = result.received.decode("utf-8", errors="backslashreplace")
    printable = text if text.isprintable() else escape_payload(result.received, limit=None)
    print(printable)
    if not result.matches:
        raise EchoMismatch(
            f"the reply differs from the message: sent {len(result.sent)} bytes "
            f"{escape_payload(result.sent)}, got {len(result.received)} bytes "
            f"{escape_payload(result.received)}"
        )
    if args.verbose:
        print(
            f"echoed {len(result.received)} bytes in {len(result.chunks)} chunk(s) "
            f"{result.chunks} over {result.connection} in {result.seconds * 1000:.1f} ms",
            file=sys.stderr,
        )
    return 0
