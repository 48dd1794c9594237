"""dsar command line: a thin skin over the library.

Parses arguments, loads settings, calls one library function per command, and maps
:class:`~pipeline.errors.PipelineError` subclasses to the exit codes of DESIGN.md section 3.
No traceback reaches a user: unexpected errors print one line and exit 6 (``DSAR_DEBUG=1``
shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .. import __version__
from ..api.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError, PipelineError, one_line
from ..logs import configure_logging, say
from .common import (
    USER_PATH_ERRNOS,
    Registrar,
    add_common,
    check_out_flag,
    os_error_line,
    port_number,
    settings_from_args,
)
from .handoff import HANDOFF_COMMANDS
from .lifecycle import LIFECYCLE_COMMANDS
from .purge import PURGE_COMMANDS
from .run import RUN_COMMANDS

log = logging.getLogger("dsar")

Handler = Callable[[argparse.Namespace], int]


_add_common = add_common


class _Parser(argparse.ArgumentParser):
    """argparse with dsar's error line: ``dsar: <what is wrong> (see --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dsar: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``dsar`` parser; every command has ``--help``."""
    # subparsers are made of the parent's class, so every command shares the error line
    parser: argparse.ArgumentParser = _Parser(
        prog="dsar",
        description="Bulk data subject requests for the Adobe Privacy Service, "
        "with a local emulator.",
    )
    parser.add_argument("--version", action="version", version=f"dsar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(sub)
    return parser


# Each command adds itself here: a function that registers its subparser and handler.
_COMMANDS: list[Registrar] = [*RUN_COMMANDS, *LIFECYCLE_COMMANDS]


def _register_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help="check an input file offline: rejects file and batch plan",
        description="Read, validate and batch INPUT without any API call. Writes "
        "OUT/rejects.parquet and prints rows, subjects, users, requests, jobs and the days the "
        "daily cap makes the run take. Exit 0: no rejects; 1: rows rejected; 3: unreadable.",
    )
    p.add_argument("input", type=Path, help="CSV, Parquet, or JSON (Privacy Service UI upload)")
    p.add_argument(
        "--out", type=Path, default=Path("."), help="directory for rejects.parquet (default: .)"
    )
    p.add_argument(
        "--no-dedupe",
        action="store_true",
        help="do not count the jobs an earlier run of the workspace already submitted",
    )
    _add_common(p)
    p.set_defaults(handler=_cmd_validate)


def _cmd_validate(args: argparse.Namespace) -> int:
    from ..input.planning import render_summary
    from ..run.recurring import validate_in_workspace

    check_out_flag(args.out, directory=True)
    summary = validate_in_workspace(
        args.input,
        settings_from_args(args),
        out_dir=args.out,
        env=os.environ,
        now=args.clock.utc_now(),
        dedupe=not args.no_dedupe,
    )
    print(render_summary(summary))
    print(f"rejects: {args.out / 'rejects.parquet'}")
    return 1 if summary.rejected_rows else 0


def _register_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..bench import SECTIONS

    p = sub.add_parser(
        "bench",
        help="measure this machine: each figure beside a baseline from the same run",
        description="Run benchmark sections and print a table; also write the figures as JSON.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test in seconds")
    p.add_argument(
        "--only", default="", help=f"comma-separated sections (default all: {','.join(SECTIONS)})"
    )
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON output file")
    _add_common(p)
    p.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import run_bench

    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    return run_bench(quick=args.quick, only=only, out=args.out)


_COMMANDS.extend([_register_validate, _register_bench])


def main(argv: Sequence[str] | None = None, *, clock: Clock = SYSTEM_CLOCK) -> int:
    """Entry point of the ``dsar`` console script; returns the exit code.

    ``clock`` is where every command reads time and waits (the real one; tests pass a virtual
    one): the handlers find it as ``args.clock``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.clock = clock
    configure_logging(fmt=args.log_format, verbose=args.verbose)
    # Everything dsar writes (journal, reports, results) is personal data: private by default.
    os.umask(0o077)
    handler: Handler = args.handler
    fmt = args.log_format
    try:
        return handler(args)
    except PipelineError as exc:
        say(fmt, f"dsar: {exc}", level="error", exit_code=exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        say(fmt, "dsar: interrupted", level="error", exit_code=4)
        return 4
    except OSError as exc:  # a path the user gave that cannot be used, or a failing disk
        code = 2 if exc.errno in USER_PATH_ERRNOS else 6
        say(fmt, f"dsar: {os_error_line(exc)}", level="error", exit_code=code)
        return code
    except Exception as exc:  # the last line of defence: no traceback reaches a user
        if os.environ.get("DSAR_DEBUG"):
            raise
        name = type(exc).__name__
        say(
            fmt,
            f"dsar: internal error ({name}); rerun with DSAR_DEBUG=1 for details",
            level="error",
            exit_code=6,
        )
        return 6


def _register_emulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "emulator",
        help="serve the Privacy Service emulator (for tests, demos, other tools)",
        description="Serve a local emulator of the Privacy Service API until interrupted. The "
        "default client comes from ADOBE_CLIENT_ID / ADOBE_CLIENT_SECRET / ADOBE_ORG_ID when "
        "set; control endpoints live under /_emulator/.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=port_number, default=8765, help="port to bind (default 8765; 0: any free)"
    )
    _add_common(p)
    p.set_defaults(handler=_cmd_emulator)


def _cmd_emulator(args: argparse.Namespace) -> int:
    import tomllib

    from ..emulator.config import ConfigValueError
    from ..emulator.server import serve_forever

    try:
        serve_forever(args.host, args.port, args.config, os.environ)
    except (ConfigValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"emulator config {args.config}: {one_line(str(exc))}") from None
    return 0


_COMMANDS.append(_register_emulator)
_COMMANDS.extend(HANDOFF_COMMANDS)
_COMMANDS.extend(PURGE_COMMANDS)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
