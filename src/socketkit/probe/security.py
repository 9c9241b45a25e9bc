"""UDP security audit: what an attacker who spoofs source addresses could do with the server.

UDP has no handshake, so a datagram's source is whatever its sender wrote.
Three questions (CERT CA-1996-01, US-CERT TA14-017A): how many bytes does
one request byte draw (amplification); does the server answer datagrams
"from" another service's port (echo/chargen ping-pong loops); does it
rate-limit one source. Findings are WARN, never FAIL: the RFCs predate the
attacks, and the line says what an attacker could do.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from socketkit.probe.model import Outcome, ProbeOptions, Target, Verdict
from socketkit.probe.wire import SourcePortUnavailable, ask, datagram, datagram_from_port

__all__ = ["LOOP_PORTS", "amplification", "loop_ports", "rate_limit"]

LOOP_PORTS = (7, 9, 13, 17, 19, 37, 1023)
"""The small services' own ports, and the top privileged port (inetds drop all below 1024)."""
REQUEST = b"\n"
"""The smallest request worth sending: one byte."""


async def amplification(target: Target, options: ProbeOptions) -> Outcome:
    """Reply bytes / request bytes, for a 1-byte request (UDP payload, headers left out)."""
    with await datagram(target, options) as sock:
        replies = await ask(sock, REQUEST, options, expect_reply=target.service != "discard")
    total = sum(len(r) for r in replies)
    factor = total / len(REQUEST)
    got = f"{len(replies)} datagram(s), {total} B: {factor:g}x"
    if factor <= 1:
        return Outcome(Verdict.PASS, "1 B", got, "", factor)
    return Outcome(
        Verdict.WARN,
        "1 B",
        got,
        f"a spoofer sending 1 Mbit/s at this service floods the victim with {factor:g} Mbit/s",
        factor,
    )


async def loop_ports(target: Target, options: ProbeOptions) -> Outcome:
    """A datagram "from" port 7, 19... : does the server answer (an endless loop if so)?"""
    answered: list[int] = []
    skipped: list[str] = []
    tried: list[int] = []
    # One port at a time: xinetd, for one, answers only the first of datagrams that
    # arrive together, which would hide the answers to the others.
    for port in LOOP_PORTS:
        try:
            sock = await datagram_from_port(target, port, options)
        except SourcePortUnavailable as exc:
            skipped.append(str(exc))
            continue
        with sock:
            tried.append(port)
            if await ask(sock, REQUEST, options, max_replies=1, expect_reply=False):
                answered.append(port)
    if not tried:
        return Outcome(Verdict.SKIP, "from ports 7-37, 1023", "", skipped[0])
    sent = "from ports " + ",".join(map(str, tried))
    note = f" (not tried: {'; '.join(skipped)})" if skipped else ""
    if answered:
        return Outcome(
            Verdict.WARN,
            sent,
            "answered from " + ",".join(map(str, answered)),
            "a spoofed datagram from another host's echo or chargen port starts a loop "
            f"between the two that never ends (CERT CA-1996-01){note}",
        )
    return Outcome(Verdict.PASS, sent, "no reply to any", note.strip())


async def rate_limit(target: Target, options: ProbeOptions) -> Outcome:
    """``burst`` datagrams at most ``rate`` per second from one source: how many answered?"""
    loop = asyncio.get_running_loop()
    count, gap = options.burst, 1.0 / options.rate
    with await datagram(target, options) as sock:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        replies = 0

        async def reader() -> None:
            nonlocal replies
            while True:
                await loop.sock_recv(sock, 65536)
                replies += 1

        task = asyncio.ensure_future(reader())
        closed_after = None
        try:
            start = loop.time()
            for i in range(count):
                try:
                    sock.send(REQUEST)
                except BlockingIOError:
                    await loop.sock_sendall(sock, REQUEST)
                except ConnectionRefusedError:
                    closed_after = i  # "port unreachable": the service was switched off
                    break
                delay = start + (i + 1) * gap - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elapsed = max(loop.time() - start, 1e-3)  # the sending, not the wait after it
            await asyncio.sleep(options.quiet_wait)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
    sent = f"{count} x 1 B in {elapsed:.2f} s"
    got = f"{replies} replies"
    if closed_after is not None:
        return Outcome(
            Verdict.WARN,
            f"{closed_after + 1} x 1 B in {elapsed:.2f} s",
            f"{replies} replies, then port unreachable",
            "the service shut its port for everyone after the burst: a spoofed burst "
            "switches it off for all clients (denial of service)",
            float(replies),
        )
    if replies >= count:
        return Outcome(
            Verdict.WARN,
            sent,
            got,
            f"no per-source limit up to {count / elapsed:.0f}/s: a spoofer can aim that "
            "many replies a second at one victim",
            float(replies),
        )
    return Outcome(
        Verdict.PASS,
        sent,
        f"{replies} of {count} answered",
        "not every datagram of a burst is answered (a rate limit, or losses under load)",
        float(replies),
    )
