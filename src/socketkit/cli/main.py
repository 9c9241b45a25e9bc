"""``socketkit``: the entry point. Each command lives in its own module under
``cli/`` and registers itself through ``register(subparsers)``; this module
owns the one place where errors become a line and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from socketkit import __version__
from socketkit.cli.common import silence_broken_output
from socketkit.errors import EXIT_CODES, OutputClosed, SocketkitError, UsageError

__all__ = ["entry", "main"]

COMMANDS = (
    "socketkit.cli.serve",
    "socketkit.cli.echo",
    "socketkit.cli.send",
    "socketkit.cli.listen",
    "socketkit.cli.services",
    "socketkit.cli.layers",
    "socketkit.cli.explore",
    "socketkit.cli.bench",
    "socketkit.cli.probe",
    "socketkit.cli.completion",
)
"""Command modules, in the order ``--help`` lists them."""

INTERNAL_ERROR = 70
INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is our UsageError (exit 64, one line)."""

    def error(self, message: str) -> NoReturn:
        # main() prints "socketkit: " first; name the command only after it.
        command = self.prog.removeprefix("socketkit").strip()
        where = f"{command}: " if command else ""
        raise UsageError(f"{where}{message} (see {self.prog} --help)")


class _CommandParser(_Parser):
    """A command's parser: options may come between its positionals.

    Why: plain argparse binds an optional positional (``send HOST:PORT
    [MESSAGE]``) as empty at the first positional, so ``send HOST:PORT
    --hex hi`` fails with "unrecognized arguments: hi"; netcat users write
    options anywhere. ``parse_known_intermixed_args`` parses options
    first, then positionals; it calls ``parse_known_args`` itself, hence
    the guard. After ``--`` (``sum -- -1e3 1``) the plain parse is kept: on
    Python 3.11 the intermixed one loses the ``--`` and reads ``-1e3`` as an
    option.
    """

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing or (args is not None and "--" in args):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _exit_code_epilog() -> str:
    lines = ["exit codes:"]
    lines += [f"  {code:>3}  {what}" for what, code in EXIT_CODES.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="socketkit",
        description="A hands-on sockets toolkit: small internet services, clients and explorers.",
        epilog=_exit_code_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an internal error"
    )
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"socketkit {__version__}",
        help="print socketkit's version (from the installed package) and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code. Never raises for expected failures."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    args_list = [a for a in args_list if a != "--debug"]
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(args_list)
        if extra:  # name the command and its --help, unless the stray word came before it
            before = args_list[: args_list.index(args.command)] if args.command else args_list
            mine = bool(args.command) and not any(word in before for word in extra)
            where = f"{args.command}: " if mine else ""
            command = f" {args.command}" if mine else ""
            raise UsageError(
                f"{where}unrecognized arguments: {' '.join(extra)} (see socketkit{command} --help)"
            )
        if args.command is None:
            parser.print_help()
            return UsageError.exit_code
        code: int = args.handler(args)
        return code
    except OutputClosed:
        return 0
    except SocketkitError as exc:
        print(f"socketkit: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("socketkit: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (| head): not an error worth a line.
        return 0
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"socketkit: internal error: {type(exc).__name__}: {exc} - this is a bug; "
            "rerun with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def entry() -> NoReturn:
    """Console-script entry point."""
    _open_missing_std_streams()
    code = main()
    sys.exit(_flush_output(code))


def _open_missing_std_streams() -> None:
    """Give a closed standard descriptor (``>&-``, ``<&-``, ``2>&-``) /dev/null.

    Why: a daemon started with its streams closed would otherwise have its
    first socket take descriptor 1, and a print() would then write into a
    client's connection; Python also leaves ``sys.stdout`` as None then.
    Reading /dev/null is an empty input; writing it loses output nobody could see.
    """
    for fd, name, mode in (
        (0, "stdin", os.O_RDONLY),
        (1, "stdout", os.O_WRONLY),
        (2, "stderr", os.O_WRONLY),
    ):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


def _flush_output(code: int) -> int:
    """Flush stdout and stderr now, so a reader that left (``2>&1 | head``) is not status 120.

    Why: Python flushes both streams at exit and turns a broken pipe there into
    status 120; output nobody reads is not a failure of the command.
    """
    silence_broken_output()
    return code
