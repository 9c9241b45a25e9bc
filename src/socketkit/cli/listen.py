"""``socketkit listen [HOST:]PORT``: nc -l, the relay's listening side."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

from socketkit.cli.common import add_loop_option, add_verbose_option, configure_logging
from socketkit.cli.send import (
    HexObserver,
    add_ending_options,
    add_idle_options,
    relay_options,
    stdout_writer,
)
from socketkit.client import read_fd_chunks
from socketkit.client.listen import listen
from socketkit.endpoints import Endpoint, parse_endpoint
from socketkit.errors import SocketkitError, UsageError
from socketkit.runtime import run

__all__ = ["register"]

EXAMPLES = """\
examples:
  socketkit listen 9000                      wait on 127.0.0.1:9000 for one connection
  socketkit listen 0                         any free port: the address is printed on stderr
  socketkit listen 0.0.0.0:9000              all interfaces (only when you name them)
  socketkit listen [::1]:9000 -k             IPv6 loopback, one connection after another
  socketkit listen -u 9000                   UDP: replies go to the last sender
  socketkit listen --unix /tmp/nc.sock       a Unix stream socket (removed at the end)
  socketkit listen 9000 > file               receive a file: socketkit send 127.0.0.1:9000 < file

stdin goes to the peer and the peer's bytes to stdout, both at once, with the
same half-close model as `socketkit send` (see its --help): input ends -> FIN;
the peer closes -> the connection ends. Without -k the listening socket is
closed once a peer connects (like nc -l). A program is never run for a peer
(there is no --exec). The bound address is printed on stderr first.
UDP: every datagram from anyone is printed; input goes to the last sender
(waiting for one); after input ends, -q S stops S seconds later (default: never).
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "listen",
        help="netcat -l: wait for a peer, stdin to it and its bytes to stdout",
        description="Bind [HOST:]PORT (loopback unless you name another address), accept "
        "one connection and relay stdin and stdout with it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "address",
        nargs="?",
        metavar="[HOST:]PORT",
        help="where to listen: PORT (127.0.0.1), HOST:PORT, [v6]:PORT; 0 for any free port",
    )
    p.add_argument("-l", dest="listen_flag", action="store_true", help=argparse.SUPPRESS)
    how = p.add_mutually_exclusive_group()
    how.add_argument("-u", "--udp", action="store_true", help="UDP: replies go to the last sender")
    how.add_argument("--unix", metavar="PATH", help="listen on a Unix stream socket at PATH")
    p.add_argument(
        "-k",
        "--keep-open",
        action="store_true",
        help="after a connection ends, accept the next (one at a time; Ctrl-C stops)",
    )
    p.add_argument(
        "--lines",
        action="store_true",
        help="UDP: one datagram per input line (default: one per read of input)",
    )
    fam = p.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="family", action="store_const", const=socket.AF_INET,
                     default=socket.AF_UNSPEC, help="IPv4 (default host 127.0.0.1)")  # fmt: skip
    fam.add_argument("-6", dest="family", action="store_const", const=socket.AF_INET6,
                     help="IPv6 (default host ::1)")  # fmt: skip
    p.add_argument(
        "-n", "--numeric", action="store_true", help="no DNS: HOST must be an IP address"
    )
    add_ending_options(p)
    add_idle_options(p)
    p.add_argument("--hex", action="store_true", help="hex dump of each direction on stderr")
    add_verbose_option(p, "binding, accepting, FIN and close")
    add_loop_option(p)
    p.set_defaults(handler=_run)


def _endpoint(args: argparse.Namespace) -> Endpoint:
    if args.unix:
        if args.address is not None:
            raise UsageError(f"--unix {args.unix} and {args.address} name two places - give one")
        if args.family != socket.AF_UNSPEC or args.numeric:
            raise UsageError("-4/-6/-n apply to IP addresses, not a Unix socket")
        return Endpoint(path=args.unix)
    if args.address is None:
        raise UsageError("listen needs a PORT or HOST:PORT, e.g. socketkit listen 9000")
    default = "::1" if args.family == socket.AF_INET6 else "127.0.0.1"
    endpoint = parse_endpoint(args.address, default_host=default)
    if endpoint.is_unix:
        return endpoint
    if args.peer_idle_timeout is not None and args.udp:
        raise UsageError("--peer-idle-timeout is for streams; UDP listens use -i")
    return endpoint


async def _stdin() -> AsyncIterator[bytes]:
    """stdin, opened only once a peer may want it (after the bind succeeded)."""
    async for chunk in read_fd_chunks(sys.stdin.fileno()):
        yield chunk


def _exposed(host: str | None) -> bool:
    try:
        return not ipaddress.ip_address((host or "127.0.0.1").split("%", 1)[0]).is_loopback
    except ValueError:
        return host != "localhost"


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint = _endpoint(args)
    if args.lines and not args.udp:
        raise UsageError("--lines frames UDP datagrams; add -u (streams have no datagrams)")
    if args.udp and endpoint.is_unix:
        raise UsageError("-u needs [HOST:]PORT, not a Unix socket")
    options = relay_options(args)
    kind = "udp" if args.udp else ("unix" if endpoint.is_unix else "tcp")

    def bound(address: str) -> None:
        note = (
            " - reachable from other machines"
            if not endpoint.is_unix and _exposed(endpoint.host)
            else ""
        )
        print(f"socketkit: listening on {address} ({kind}){note}", file=sys.stderr, flush=True)

    async def main() -> None:
        out = stdout_writer()
        try:
            await listen(
                endpoint,
                _stdin(),
                out.write,
                udp=args.udp,
                keep=args.keep_open,
                family=args.family,
                numeric_only=args.numeric,
                options=options,
                observer=HexObserver() if args.hex else None,
                on_bound=bound,
                drain=out.drain,
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
