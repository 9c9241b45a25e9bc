"""Robustness checks: abuse, bounded in count and time, then "is a fresh client still served?".

Each check misbehaves the way real clients do (tiny writes, binary garbage,
a client that never reads, a storm of resets, many idle connections) and
then asks the question that matters to an operator: does the next ordinary
client still get its answer? ``--gentle`` leaves all of them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket

from socketkit.errors import SocketkitError
from socketkit.probe.model import Outcome, ProbeOptions, Target, Verdict
from socketkit.probe.wire import abort, ask, datagram, exchange, recv_until, send, show, stream
from socketkit.protocols.sum import MAX_LINE

TINY_PACE = 0.003
"""Seconds between the 1-byte writes: each reaches the server as its own segment."""

__all__ = [
    "fresh_client",
    "garbage",
    "idle_connections",
    "long_line",
    "never_reads",
    "reset_storm",
    "tiny_writes",
]


RESET_RETRIES = 3
"""Extra fresh clients after an RST storm, each after a tenth of the timeout."""


async def fresh_client(target: Target, options: ProbeOptions) -> str | None:
    """None when an ordinary client gets an ordinary answer now; else what went wrong."""
    try:
        async with asyncio.timeout(options.timeout * 2):
            return await _ordinary(target, options)
    except TimeoutError:
        return f"a fresh client got no answer within {options.timeout * 2:g} s"
    except SocketkitError as exc:
        return f"a fresh client failed: {exc}"


async def _ordinary(target: Target, options: ProbeOptions) -> str | None:
    service = target.service
    if target.transport == "udp":
        with await datagram(target, options) as sock:
            replies = await ask(sock, b"1 2\n" if service == "sum" else b"\n", options)
        return None if replies or service == "discard" else "a fresh datagram got no reply"
    async with stream(target, options) as sock:
        if service == "echo":
            got = await exchange(sock, [b"ping\r\n"], expect=6, timeout=options.timeout)
            return None if got.data == b"ping\r\n" else "a fresh client got no echo"
        if service == "sum":
            got = await exchange(sock, [b"1 2\n"], expect=2, timeout=options.timeout)
            return None if got.data == b"3\n" else "a fresh client got no sum"
        if service == "discard":
            await send(sock, b"x", options.timeout)
            sock.shutdown(socket.SHUT_WR)
            got = await recv_until(sock, limit=4096, timeout=options.timeout)
            return None if got.eof and not got.reset else "a fresh client was not served"
        got = await recv_until(sock, limit=74, timeout=options.timeout)
        return None if got.data else "a fresh client got no answer"


def _served(sent: str, why: str | None, what: str) -> Outcome:
    if why is None:
        return Outcome(Verdict.PASS, sent, "a fresh client is served", what)
    return Outcome(Verdict.FAIL, sent, why, what)


async def tiny_writes(target: Target, options: ProbeOptions) -> Outcome:
    """A request split into 1-byte writes must be answered as if sent at once."""
    if target.service == "sum":
        request, expected = b"12 30\n1.5 1\n", b"42\n2.5\n"
    else:
        request = random.Random(7).randbytes(64)
        expected = request
    async with stream(target, options) as sock:
        chunks = [request[i : i + 1] for i in range(len(request))]
        got = await exchange(
            sock, chunks, expect=len(expected), timeout=options.timeout * 2, pace=TINY_PACE
        )
    sent = f"{len(request)} B in 1-byte writes"
    if got.data == expected:
        return Outcome(Verdict.PASS, sent, "the same answer as one write")
    return Outcome(Verdict.FAIL, sent, show(got.data), "split input was answered differently")


async def long_line(target: Target, options: ProbeOptions) -> Outcome:
    """sum: a line over 8 KiB is refused with ERR and close; echo/discard: 1 MiB, one line."""
    if target.service == "sum":
        line = b"1" * (MAX_LINE + 1024) + b" 1\n"
        async with stream(target, options) as sock:
            got = await exchange(sock, [line], expect=4096, timeout=options.timeout)
        sent = f"a {len(line)} B line"
        if not got.data.startswith(b"ERR"):
            return Outcome(
                Verdict.FAIL,
                sent,
                show(got.data),
                "a line over 8 KiB must get an ERR line (ERR line too long)",
            )
        return _served(sent, await fresh_client(target, options), "")
    size = 1 << 20
    async with stream(target, options) as sock:
        expect = size if target.service == "echo" else 1
        got = await exchange(sock, [b"a" * size], expect=expect, timeout=options.timeout * 2)
    if target.service == "echo" and len(got.data) != size:
        return Outcome(Verdict.FAIL, "1 MiB, no line end", f"{len(got.data)} B back", "")
    return _served("1 MiB, no line end", await fresh_client(target, options), "")


async def garbage(target: Target, options: ProbeOptions) -> Outcome:
    """Binary garbage; a fresh client is tried while the garbage client is still connected."""
    data = random.Random(0xBAD).randbytes(4096) + b"\xff\xfe\x00\r\n"
    sent = "4 KiB of binary garbage"
    async with stream(target, options) as sock:
        await send(sock, data, options.timeout)
        got = await recv_until(sock, limit=1 << 16, timeout=options.quiet_wait)
        if target.service == "sum":
            lines = got.data.split(b"\n")[:-1]
            if not lines or any(not line.startswith(b"ERR") for line in lines):
                return Outcome(Verdict.FAIL, sent, show(got.data), "garbage must get ERR lines")
        why = await fresh_client(target, options)
    return _served(sent, why, "")


async def never_reads(target: Target, options: ProbeOptions) -> Outcome:
    """A client that writes (echo) or is written to (chargen) and never reads."""
    async with stream(target, options) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer = None
        if target.service == "echo":
            blob = b"z" * (4 << 20)
            writer = asyncio.ensure_future(send(sock, blob, options.timeout))
        try:
            await asyncio.sleep(0)  # let the writer start before a fresh client comes
            why = await fresh_client(target, options)
        finally:
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
    sent = "4 MiB, never reading" if target.service == "echo" else "connect, never reading"
    return _served(sent, why, "")


async def reset_storm(target: Target, options: ProbeOptions) -> Outcome:
    count = options.connections
    for _ in range(count):
        async with stream(target, options) as sock:
            if target.service in ("echo", "sum", "discard"):
                await send(sock, b"1 2\n", options.timeout)
            abort(sock)
    # The server handles the resets asynchronously: give it a tenth of the
    # timeout first (so one that dies of them is dead by then), then a few
    # short chances (bounded), since one with a connection cap may not have
    # freed every slot yet. One that died or stays full still fails.
    await asyncio.sleep(options.timeout / 10)
    why = await fresh_client(target, options)
    for _ in range(RESET_RETRIES):
        if why is None:
            break
        await asyncio.sleep(options.timeout / 10)
        why = await fresh_client(target, options)
    return _served(f"{count} connections closed by RST", why, "")


async def idle_connections(target: Target, options: ProbeOptions) -> Outcome:
    count = options.connections
    async with contextlib.AsyncExitStack() as held:
        opened = 0
        for _ in range(count):
            try:
                await held.enter_async_context(stream(target, options))
            except SocketkitError:
                break
            opened += 1
        why = await fresh_client(target, options)
    return _served(f"{opened} idle connections held open", why, "")
