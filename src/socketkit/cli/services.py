"""Client commands for the small services: ``daytime``, ``time``, ``qotd``, ``chargen``,
``discard`` and ``sum``. Each takes ``--to HOST:PORT`` (default: ``socketkit serve``'s
port on 127.0.0.1) and ``--udp``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from socketkit.cli.common import (
    add_loop_option,
    add_verbose_option,
    configure_logging,
    positive_float,
    positive_int,
)
from socketkit.cli.render import print_json
from socketkit.client.netcat import read_fd_chunks
from socketkit.client.services import (
    DEFAULT_REQUEST_SIZE,
    chargen,
    discard,
    fetch,
    query_time,
    repeat_bytes,
    sum_lines,
    sum_numbers,
)
from socketkit.display import escape_payload
from socketkit.endpoints import Endpoint, parse_endpoint
from socketkit.errors import DataError, UsageError
from socketkit.protocols import get_service
from socketkit.runtime import run

__all__ = ["register"]

# Printable ASCII, tab, CR and LF pass; every other byte is shown as "." (one byte for one).
_SAFE = bytes(b if 32 <= b < 127 or b in (9, 10, 13) else ord(".") for b in range(256))


def _default_to(service: str) -> str:
    return f"127.0.0.1:{get_service(service).default_port()}"


def _parser(sub: Any, name: str, help_text: str, description: str, examples: str) -> Any:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    to = _default_to(name)
    p.add_argument(
        "--to",
        default=to,
        metavar="HOST:PORT",
        help=f"the server (default {to}; [v6]:PORT for IPv6, unix:/path for a Unix socket)",
    )
    p.add_argument("--udp", action="store_true", help="use UDP instead of TCP")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up after this long without an answer (default 10)",
    )
    add_verbose_option(p, "connect, send and each chunk received")
    add_loop_option(p)
    return p


def _request_size_option(p: argparse.ArgumentParser, service: str) -> None:
    size = DEFAULT_REQUEST_SIZE[service]
    p.add_argument(
        "--request-size",
        type=int,
        default=size,
        metavar="BYTES",
        help=f"UDP: pad the request to this many bytes (default {size}) so a server with "
        "a 1x amplification budget can answer in full; 0 sends an empty datagram",
    )


def register(sub: Any) -> None:
    p = _parser(
        sub,
        "daytime",
        "ask a daytime server (RFC 867) for the date and time",
        "Connect to a daytime server and print the line it sends before closing.",
        "  socketkit daytime                       TCP to socketkit serve's daytime\n"
        "  socketkit daytime --udp                 one datagram, one reply\n"
        "  socketkit daytime --to [::1]:10013 -v   over IPv6, narrating each step\n",
    )
    _request_size_option(p, "daytime")
    p.set_defaults(handler=_run_text, service="daytime")

    p = _parser(
        sub,
        "qotd",
        "get the quote of the day (RFC 865)",
        "Connect to a quote-of-the-day server and print the quote it sends before closing.",
        "  socketkit qotd\n"
        "  socketkit qotd --udp --request-size 0   an empty request: a guarded server\n"
        "                                          sends only what fits (nothing)\n",
    )
    _request_size_option(p, "qotd")
    p.set_defaults(handler=_run_text, service="qotd")

    p = _parser(
        sub,
        "time",
        "ask a time server (RFC 868); print UTC and the offset from this clock",
        "Read the 4-byte RFC 868 time (seconds since 1900-01-01 UTC, big-endian), decode "
        "it in the 2**32-second era closest to the local clock (so it works past the "
        "2036 wrap), and print it with its offset from the local clock.",
        "  socketkit time\n"
        "  socketkit time --udp --json\n"
        "  socketkit time --to time.example.net:37   a real server (port 37)\n",
    )
    _request_size_option(p, "time")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_run_time)

    p = _parser(
        sub,
        "chargen",
        "receive the character generator's stream (RFC 864)",
        "Print what a chargen server sends: 72-character lines of the rotating printable "
        "ASCII pattern. Without --lines or --bytes it runs until Ctrl-C or the server "
        "closes. Bytes other than printable ASCII, tab, CR and LF are shown as '.'.",
        "  socketkit chargen --lines 5\n"
        "  socketkit chargen --bytes 1000000 > /dev/null -v\n"
        "  socketkit chargen --udp                 one reply of 0-512 characters\n",
    )
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--lines", type=positive_int, metavar="N", help="stop after N lines")
    limit.add_argument("--bytes", type=positive_int, metavar="N", help="stop after N bytes")
    _request_size_option(p, "chargen")
    p.set_defaults(handler=_run_chargen)

    p = _parser(
        sub,
        "discard",
        "send stdin (or --bytes N) to a discard server (RFC 863) and report the throughput",
        "Send stdin, or N generated bytes, to a discard server and report how fast. Over "
        "TCP the time runs until the server has read everything and closed; over UDP it "
        "only measures sending (nothing confirms delivery).",
        "  socketkit discard --bytes 100000000\n"
        "  cat big.iso | socketkit discard --json\n"
        "  socketkit discard --bytes 1000000 --udp --datagram-size 1400\n",
    )
    p.add_argument("--bytes", type=positive_int, metavar="N", help="send N bytes instead of stdin")
    p.add_argument(
        "--datagram-size",
        type=positive_int,
        default=1400,
        metavar="BYTES",
        help="UDP: bytes per datagram (default 1400, within an Ethernet frame)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_run_discard)

    p = _parser(
        sub,
        "sum",
        "add two numbers on a sum server (the lecture's homework)",
        "Send 'A B' and print the exact sum the server returns. With no numbers, send "
        "each line of stdin as a request and print each reply as it comes (pipelined "
        "over TCP; one datagram per line over UDP). Put -- before a number such as "
        "-1e3 that looks like an option. Exits 65 when any reply is ERR, 74 when the "
        "server closes with requests unanswered, 76 when a reply is not a sum reply; "
        "odd characters in replies are shown escaped.",
        "  socketkit sum 2 3                       prints 5\n"
        "  socketkit sum 0.1 0.2                   prints 0.3 (exact decimal, not 0.30000000000000004)\n"
        "  socketkit sum -- -1e3 1                 prints -999\n"
        "  printf '1 2\\n3 4\\n' | socketkit sum    prints 3 and 7\n"
        "  socketkit sum 2 3 --udp --to [::1]:10100\n",
    )
    p.add_argument("numbers", nargs="*", metavar="NUMBER", help="two numbers (none: read stdin)")
    p.set_defaults(handler=_run_sum)


# -- handlers ----------------------------------------------------------------------


def _endpoint(args: argparse.Namespace) -> Endpoint:
    endpoint = parse_endpoint(args.to)
    if args.udp and endpoint.is_unix:
        raise UsageError("--udp needs HOST:PORT, not a Unix socket")
    return endpoint


def _safe_line(text: str) -> str:
    """A line from the network (or echoing the user's input) safe for a terminal."""
    if text.isprintable():
        return text
    return escape_payload(text.encode("utf-8", errors="surrogateescape"), limit=None)


def _printable(data: bytes) -> str:
    """Reply text for a terminal: CR LF as newlines, anything odd escaped."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if all(c.isprintable() or c in "\n\t" for c in text):
        return text.rstrip("\n")
    return escape_payload(data, limit=None)


def _run_text(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint = _endpoint(args)
    reply = run(
        fetch(
            args.service,
            endpoint,
            udp=args.udp,
            timeout=args.timeout,
            request_size=args.request_size,
        ),
        loop=args.loop,
    )
    if not reply.data:
        raise DataError(f"{endpoint} sent nothing")
    print(_printable(reply.data))
    if args.verbose:
        print(
            f"{len(reply.data)} bytes over {reply.connection} in {reply.seconds * 1000:.1f} ms",
            file=sys.stderr,
        )
    return 0


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _run_time(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint = _endpoint(args)
    result = run(
        query_time(endpoint, udp=args.udp, timeout=args.timeout, request_size=args.request_size),
        loop=args.loop,
    )
    if args.json:
        print_json(
            {
                "server": str(endpoint),
                "seconds_since_1900": result.seconds_since_1900,
                "unix_time": result.server_time,
                "utc": _utc(result.server_time),
                "offset_seconds": round(result.offset, 3),
                "round_trip_seconds": round(result.round_trip, 6),
            }
        )
        return 0
    offset = result.offset
    if abs(offset) < 1:
        how = "agrees with this machine's clock (within RFC 868's 1-second resolution)"
    else:
        how = f"is {abs(offset):.1f} s {'ahead of' if offset > 0 else 'behind'} this machine"
    print(_utc(result.server_time))
    print(
        f"the server's clock {how} (offset {offset:+.1f} s; "
        f"{result.seconds_since_1900} s since 1900)"
    )
    return 0


def _stdout_writer() -> Callable[[bytes], None]:
    out = sys.stdout

    def write(data: bytes) -> None:
        out.write(data.translate(_SAFE).decode("ascii"))
        out.flush()

    return write


def _run_chargen(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint = _endpoint(args)
    result = run(
        chargen(
            endpoint,
            _stdout_writer(),
            lines=args.lines,
            nbytes=args.bytes,
            udp=args.udp,
            timeout=args.timeout,
            request_size=args.request_size,
        ),
        loop=args.loop,
    )
    if args.verbose:
        print(
            f"received {result.bytes_received} bytes ({result.lines} lines) over "
            f"{result.connection} in {result.seconds:.3f} s",
            file=sys.stderr,
        )
    return 0


def _stdin_chunks() -> AsyncIterator[bytes]:
    """stdin without blocking the loop; a stdin with no descriptor (tests) is read at once."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return _all_at_once(_read_stdin())
    return read_fd_chunks(fd)


def _read_stdin() -> bytes:
    stream = sys.stdin
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return stream.read().encode("utf-8", errors="surrogateescape")


async def _all_at_once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def _rate(bytes_per_second: float) -> str:
    """Throughput in MiB/s (2**20 bytes per second), the one unit every command prints."""
    return f"{bytes_per_second / (1024 * 1024):.2f} MiB/s"


def _run_discard(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint = _endpoint(args)
    source = repeat_bytes(args.bytes) if args.bytes else _stdin_chunks()
    result = run(
        discard(
            endpoint,
            source,
            udp=args.udp,
            timeout=args.timeout,
            datagram_size=args.datagram_size,
        ),
        loop=args.loop,
    )
    if args.json:
        print_json(
            {
                "server": str(endpoint),
                "transport": "udp" if args.udp else "stream",
                "bytes_sent": result.bytes_sent,
                "datagrams": result.datagrams,
                "seconds": round(result.seconds, 6),
                "bytes_per_second": round(result.throughput, 1),
                "confirmed": result.confirmed,
            }
        )
        return 0
    what = (
        "the server read them all and closed"
        if result.confirmed
        else f"{result.datagrams} datagrams; UDP does not confirm delivery"
    )
    print(
        f"sent {result.bytes_sent} bytes in {result.seconds:.3f} s: "
        f"{_rate(result.throughput)} ({what})"
    )
    return 0


def _run_sum(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    endpoint = _endpoint(args)
    if args.numbers:
        if len(args.numbers) != 2:
            raise UsageError(
                f"sum takes two numbers, not {len(args.numbers)} (or none, to read stdin)"
            )
        a, b = args.numbers
        reply = run(
            sum_numbers(a, b, endpoint, udp=args.udp, timeout=args.timeout),
            loop=args.loop,
        )
        if reply.startswith("ERR"):
            raise DataError(f"the server answered: {_safe_line(reply)}")
        print(reply)
        return 0

    def show(reply: str) -> None:
        print(_safe_line(reply), flush=True)

    session = run(
        sum_lines(endpoint, _stdin_chunks(), show, udp=args.udp, timeout=args.timeout),
        loop=args.loop,
    )
    errors = sum(1 for reply in session.replies if reply.startswith("ERR"))
    if errors:
        raise DataError(
            f"the server answered ERR to {errors} of {len(session.replies)} "
            f"request{'s' if len(session.replies) != 1 else ''} (shown above)"
        )
    return 0
