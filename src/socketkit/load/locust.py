"""socketkit's verified requests as Locust users: ``locust -f`` across many machines.

Needs the extra: ``pip install 'socketkit[locust]'``. Nothing in the core
imports this module (importing Locust patches the standard library for
gevent), so plain socketkit never pulls Locust in.

Two users, each holding one connection for its lifetime and making one
request at a time (closed loop, like ``socketkit bench --mode rr``):

- :class:`EchoUser`: sends ``--echo-size`` bytes (default 64) and checks that
  every byte comes back; request_type ``ECHO``, name ``echo 64 B``.
- :class:`SumUser`: sends two random numbers and checks the exact sum;
  request_type ``SUM``, name ``sum``.

Hosts are written ``tcp://HOST:PORT``, ``udp://HOST:PORT`` or ``unix:/path``
(a bare ``HOST:PORT`` is TCP). ``--host`` sets it for both users;
``--echo-host`` and ``--sum-host`` set one each, since ``socketkit serve``
puts echo and sum on different ports (10007 and 10100). A reply that differs
is a failure with the reason; a lost connection is a failure too, and the
user reconnects for its next request.
"""

from __future__ import annotations

import random
from time import perf_counter
from typing import Any

try:
    from locust import User, constant, events, task
except ImportError as exc:  # the extra is not installed: say how to get it
    raise ImportError(
        "socketkit.load.locust needs Locust: pip install 'socketkit[locust]'"
    ) from exc

from socketkit.load.verified import Mismatch, VerifiedConnection, parse_target

__all__ = ["EchoUser", "Mismatch", "SumUser"]


def _options(parser: Any) -> None:
    group = parser.add_argument_group("socketkit")
    group.add_argument(
        "--echo-host",
        default="",
        help="echo server, tcp://HOST:PORT, udp://HOST:PORT or unix:/path (default: --host)",
    )
    group.add_argument(
        "--sum-host", default="", help="sum server, in the same forms (default: --host)"
    )
    group.add_argument(
        "--echo-size", type=int, default=64, help="bytes per echo request (default 64)"
    )
    group.add_argument(
        "--socket-timeout",
        type=float,
        default=10.0,
        help="seconds a request may take before it fails (default 10)",
    )


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]


class _VerifiedUser(User):
    """One connection per user; every request reported to Locust's request event."""

    abstract = True
    wait_time = constant(0)
    request_type = ""
    option = ""
    """The command-line option that names this user's server (beside --host)."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._conn: VerifiedConnection | None = None
        self.rng = random.Random()

    def _option(self, name: str, default: Any) -> Any:
        options = self.environment.parsed_options
        return getattr(options, name, default) if options is not None else default

    def _target_text(self) -> str:
        text = self._option(self.option, "") or self.host
        if not text:
            raise ValueError(
                f"{type(self).__name__} needs a server: --host or --{self.option.replace('_', '-')}"
                " tcp://HOST:PORT"
            )
        return str(text)

    def on_stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _exchange(self, conn: VerifiedConnection) -> int:
        raise NotImplementedError

    def _name(self) -> str:
        raise NotImplementedError

    def _request(self) -> None:
        started = perf_counter()
        length = 0
        error: BaseException | None = None
        try:
            if self._conn is None:
                timeout = float(self._option("socket_timeout", 10.0))
                self._conn = VerifiedConnection(parse_target(self._target_text()), timeout=timeout)
            length = self._exchange(self._conn)
        except (OSError, Mismatch, ValueError) as exc:
            error = exc
            if self._conn is not None:  # a stream out of step is no use: start afresh
                self._conn.close()
                self._conn = None
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=self._name(),
            response_time=(perf_counter() - started) * 1000.0,
            response_length=length,
            exception=error,
            context={},
        )


class EchoUser(_VerifiedUser):
    """Echo requests of ``--echo-size`` bytes, every byte checked."""

    request_type = "ECHO"
    option = "echo_host"

    def _size(self) -> int:
        return max(1, int(self._option("echo_size", 64)))

    def _name(self) -> str:
        return f"echo {self._size()} B"

    def _exchange(self, conn: VerifiedConnection) -> int:
        return conn.echo(self._size())

    @task
    def echo(self) -> None:
        self._request()


class SumUser(_VerifiedUser):
    """Sum requests with random operands, each reply checked against the exact sum."""

    request_type = "SUM"
    option = "sum_host"

    def _name(self) -> str:
        return "sum"

    def _exchange(self, conn: VerifiedConnection) -> int:
        return conn.sum(self.rng)

    @task
    def sum(self) -> None:
        self._request()
