"""``socketkit send``: the netcat-like client (nc's flags where they mean the same)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import re
import socket
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
from socketkit.client.netcat import OutputWriter
from socketkit.display import hexdump
from socketkit.endpoints import Endpoint, join_host_port, parse_endpoint, parse_port
from socketkit.errors import SocketkitError, UsageError
from socketkit.runtime import run

__all__ = [
    "HexObserver",
    "add_ending_options",
    "add_idle_options",
    "register",
    "relay_options",
    "stdout_writer",
]

EXAMPLES = """\
examples:
  socketkit send 127.0.0.1:10007 hello            send "hello\\n", print the reply
  socketkit send 127.0.0.1 10007 hello            the same, nc's HOST PORT form
  cat big.iso | socketkit send 127.0.0.1:10007 > copy.iso
  socketkit send [::1]:10100                      type lines to sum (serve --host ::1)
  socketkit send [fe80::1%eth0]:10007 hi          IPv6 link-local: the zone is kept
  socketkit send -u 127.0.0.1:10007 -q 2          UDP: one datagram per read, wait 2 s
  printf '1 2\\n3 4\\n' | socketkit send -u 127.0.0.1:10100 --lines   two datagrams
  socketkit send unix:/tmp/echo.sock --hex hi     hex dump of both directions on stderr

when does it stop? (the half-close model)
  input ends          -> send FIN (shutdown SHUT_WR) and keep reading until the peer closes
                         (what `nc -N` and `ncat` do; -N is accepted and changes nothing)
    --no-shutdown        ... but do not send FIN (for peers that take FIN as "hang up")
    -q S                 ... but give the peer at most S more seconds
  the peer closes     -> stop at once, even if input remains (ncat >= 7.96, socat, nc)
    --no-exit-on-peer-close  ... keep sending input until it ends, then stop
                             (a peer that closes fully, not half, ends it: exit 74)
  -i S                -> stop (exit 75) after S seconds with no traffic either way (ncat -i)
  UDP has no FIN: each read of input is one datagram (--lines: one per line);
  after input ends, replies are awaited for -q seconds (default 1).

netcat users: -u -4 -6 -n -s -p -w -q -i -N mean what they mean in nc/ncat;
the old `-n` (no newline after MESSAGE) is now --no-newline.
"""

_LOOKS_LIKE_ENDPOINT = re.compile(r"^(unix:.+|\[[^\]]+\]:\d+|[^\s:\[\]]+:\d+)$")


def add_ending_options(p: argparse.ArgumentParser) -> None:
    """The half-close model's options, the same for ``send`` and ``listen``."""
    ends = p.add_argument_group("ending (see below)")
    ends.add_argument(
        "--no-shutdown",
        dest="half_close",
        action="store_false",
        help="do not send FIN when input ends",
    )
    ends.add_argument(
        "-N",
        "--shutdown",
        dest="shutdown_flag",
        action="store_true",
        help="send FIN when input ends (the default already; accepted for nc -N users)",
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


def add_idle_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i",
        "--idle-timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop (exit 75) when no traffic passes either way for this long, as ncat -i "
        "(default: wait forever)",
    )
    p.add_argument(
        "--peer-idle-timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop (exit 75) when the peer sends nothing for this long, even while we send",
    )


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
        help="the peer: HOST:PORT, [v6]:PORT, [fe80::1%%eth0]:PORT, unix:/path, or HOST PORT",
    )
    p.add_argument(
        "message",
        nargs="?",
        metavar="MESSAGE",
        help="send this text plus a newline instead of reading stdin",
    )
    p.add_argument("more", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--no-newline", action="store_true", help="send MESSAGE without the newline")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "-u",
        "--udp",
        action="store_true",
        help="UDP: one datagram per read of input (see --lines)",
    )
    how.add_argument("--unix", metavar="PATH", help="connect to a Unix stream socket at PATH")
    p.add_argument(
        "--lines",
        action="store_true",
        help="UDP: one datagram per input line (a line keeps its newline)",
    )
    fam = p.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=socket.AF_INET,
                     default=socket.AF_UNSPEC, help="IPv4 only")  # fmt: skip
    fam.add_argument("-6", dest="family", action="store_const", const=socket.AF_INET6,
                     help="IPv6 only")  # fmt: skip
    p.add_argument(
        "-n",
        "--numeric",
        action="store_true",
        help="no DNS: HOST must be an IP address (a name is an error)",
    )
    p.add_argument("-s", "--source", metavar="ADDR", help="local address to send from")
    p.add_argument("-p", "--source-port", metavar="PORT", help="local port to send from")
    add_ending_options(p)
    p.add_argument(
        "-w",
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default 10)",
    )
    add_idle_options(p)
    p.add_argument(
        "--hex",
        action="store_true",
        help="hex dump of each direction on stderr (> sent, < received)",
    )
    add_verbose_option(p, "resolving, connecting, FIN and close")
    add_loop_option(p)
    p.set_defaults(handler=_run)


class _PlainOutput:
    """For a stdout without a descriptor (``main()`` called in-process under capture)."""

    async def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def stdout_writer() -> OutputWriter | _PlainOutput:
    """Output that never blocks the loop: a writer thread on fd 1's descriptor."""
    try:
        return OutputWriter(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return _PlainOutput()


class HexObserver:
    """``--hex``: a hex dump of each direction on stderr, offsets counted per direction."""

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


def _is_ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _host_port_form(args: argparse.Namespace) -> bool:
    """``send HOST PORT`` (nc): a target that is no HOST:PORT, then a port number."""
    target, second = args.target, args.message
    if target is None or second is None or not second.isdigit():
        return False
    if target.startswith(("unix:", "[")) or target.isdigit():
        return False
    return ":" not in target or _is_ip_literal(target)


def _endpoint(args: argparse.Namespace) -> tuple[Endpoint, str | None]:
    if args.unix:
        if args.target is not None and _LOOKS_LIKE_ENDPOINT.match(args.target):
            raise UsageError(
                f"--unix {args.unix} and {args.target} name two peers - give one "
                "(to send that text to the Unix socket, pipe it on stdin)"
            )
        if args.message is not None:
            raise UsageError("with --unix PATH give at most one MESSAGE, no HOST:PORT")
        return Endpoint(path=args.unix), args.target
    if args.target is None:
        raise UsageError(
            "send needs HOST:PORT (or --unix PATH), e.g. socketkit send 127.0.0.1:10007"
        )
    if _host_port_form(args):
        port = parse_port(args.message)
        return Endpoint(host=args.target, port=port), args.more
    if args.more is not None:
        raise UsageError(
            f"send takes HOST:PORT and one MESSAGE; {args.more!r} is one word too many "
            "(quote the message)"
        )
    try:
        return parse_endpoint(args.target), args.message
    except UsageError:
        if ":" not in args.target and args.message is None:
            raise UsageError(
                f"bad address {args.target!r}: expected HOST:PORT or HOST PORT, "
                f"e.g. socketkit send {join_host_port(args.target, 10007)}"
            ) from None
        raise


def relay_options(args: argparse.Namespace, **extra: Any) -> RelayOptions:
    """The options ``send`` and ``listen`` share, checked for contradictions."""
    if args.shutdown_flag and not args.half_close:
        raise UsageError("-N (send FIN at end of input) and --no-shutdown contradict each other")
    return RelayOptions(
        half_close=args.half_close,
        quit_after_eof=args.quit_after_eof,
        exit_on_peer_close=args.exit_on_peer_close,
        idle_timeout=args.idle_timeout,
        peer_idle_timeout=args.peer_idle_timeout,
        lines=args.lines,
        **extra,
    )


def _source(args: argparse.Namespace) -> tuple[str | None, int] | None:
    if args.source is None and args.source_port is None:
        return None
    port = 0 if args.source_port is None else parse_port(args.source_port, what="source port")
    if args.source is not None and not _is_ip_literal(args.source):
        raise UsageError(f"-s needs a local IP address, not {args.source!r}")
    return args.source, port


def _check(args: argparse.Namespace, endpoint: Endpoint) -> None:
    if endpoint.is_unix:
        if args.udp:
            raise UsageError("--udp needs HOST:PORT, not a Unix socket")
        for flag, used in (
            ("-4/-6", args.family != socket.AF_UNSPEC),
            ("-s/-p", args.source is not None or args.source_port is not None),
            ("-n", args.numeric),
        ):
            if used:
                raise UsageError(f"{flag} applies to IP addresses, not a Unix socket")
    if args.lines and not args.udp:
        raise UsageError("--lines frames UDP datagrams; add -u (streams have no datagrams)")


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint, message = _endpoint(args)
    _check(args, endpoint)
    options = relay_options(
        args,
        connect_timeout=args.timeout,
        family=args.family,
        numeric_only=args.numeric,
        source=_source(args),
    )

    async def main() -> None:
        if message is not None:
            text = message if args.no_newline else message + "\n"
            source = _message_source(text.encode("utf-8", errors="surrogateescape"))
        else:
            source = read_fd_chunks(sys.stdin.fileno())
        out = stdout_writer()
        try:
            await relay(
                endpoint,
                source,
                out.write,
                udp=args.udp,
                options=options,
                observer=HexObserver() if args.hex else None,
            )
        except SocketkitError:
            with contextlib.suppress(SocketkitError):
                await out.drain()  # what arrived before the failure still reaches stdout
            raise
        else:
            await out.drain()
        finally:
            out.close()

    run(main(), loop=args.loop)
    return 0
