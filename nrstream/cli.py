"""The ``nrstream`` command line.

Each sub-command lives in its own module under :mod:`nrstream.commands` and exposes
``add_parser(subparsers)``, which registers the parser and sets ``func(args) -> int``.
User errors (:class:`~nrstream.errors.NrstreamError`) print one line and exit with
code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from nrstream import __version__
from nrstream.errors import NrstreamError
from nrstream.log import configure as configure_logging

__all__ = ["main", "build_parser", "add_global_flags", "COMMANDS"]

log = logging.getLogger("nrstream.cli")

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = ("train", "evaluate", "prequential", "data", "plugins", "configs", "listen", "export")


def add_global_flags(parser: argparse.ArgumentParser, default: object = False) -> None:
    """``--debug``, ``-v``/``-q`` and ``--strict``: on ``nrstream`` itself and on every sub-command.

    On the sub-commands their default is ``argparse.SUPPRESS``, so a flag given before the
    sub-command (``nrstream -v evaluate toy``) is not reset by the sub-parser, and one given
    after it (``nrstream evaluate toy -v``) works too.
    """
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks for errors")
    # issue 15 (J): verbosity of the nrstream.* loggers (nrstream.log)
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true", default=default, help="also log details (DEBUG)")
    loud.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="only notices and errors: no progress lines"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=default,
        help="a plugin that fails to load is an error (NRSTREAM_STRICT_PLUGINS=1)",
    )


def _sub_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every sub-command's parser, nested ones (``data info``) included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found += [sub, *_sub_parsers(sub)]
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nrstream", description="Continual (reset-free) inference in recurrent networks."
    )
    parser.add_argument("--version", action="version", version=f"nrstream {__version__}")
    add_global_flags(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nrstream.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"nrstream.commands.{name}":
                raise
            continue  # a command not built yet
        module.add_parser(subparsers)
    for sub in _sub_parsers(parser):  # issue 26: the global flags after the sub-command as well
        add_global_flags(sub, default=argparse.SUPPRESS)
    return parser


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"nrstream: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Run one command; Ctrl-C at any moment (the sub-command imports included) is one line and 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        try:
            print("nrstream: interrupted", file=sys.stderr)
        except KeyboardInterrupt:  # a second Ctrl-C while saying so
            pass
        return 130


def _main(argv: list[str] | None) -> int:
    parser = build_parser()  # the sub-command imports take a while
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:  # one before the sub-command, the other after it
        parser.error("argument -q/--quiet: not allowed with argument -v/--verbose")
    if args.strict:
        os.environ["NRSTREAM_STRICT_PLUGINS"] = "1"
    if not args.debug:
        warnings.showwarning = _one_line_warnings
    configure_logging(1 if args.verbose else -1 if args.quiet else 0)  # issue 15 (J)
    log.debug("nrstream %s, Python %s, command line: %s", __version__, sys.version.split()[0], argv or sys.argv[1:])
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NrstreamError as exc:
        if args.debug:
            raise
        print(f"nrstream: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
