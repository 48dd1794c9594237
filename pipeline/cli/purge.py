"""``dsar purge``: remove a finished run's result ZIPs and scrub its identity values.

Thin: parse, call :func:`pipeline.run.purge.purge_run` or
:func:`pipeline.run.purge.purge_workspace`, print one line per run.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path

from ..errors import ConfigError
from ..logs import say
from ..run.context import RunOptions
from ..run.purge import PAUSE_ENV, purge_run, purge_workspace
from .common import Registrar, SubParsers, add_common
from .run import parse_duration


def _register_purge(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "purge",
        help="remove a finished run's result ZIPs and scrub its identity values",
        description="Data minimisation for a finished run: --results removes RUN_DIR/results/ "
        "(the access results), --identities scrubs the identity values from journal.sqlite "
        "and rewrites it so their bytes are gone from the file and its WAL; neither flag means "
        "both. Keys, statuses, product outcomes, checksums and times are kept, the reports and "
        "manifest.json are rewritten (the manifest records each purge with the sha256 and size "
        "of every removed file). An unfinished run is refused unless --force. With --all, "
        "every finished run of WORKSPACE (with --older-than, those finished that long ago).",
    )
    p.add_argument("path", type=Path, metavar="RUN_DIR", help="the run (with --all: WORKSPACE)")
    p.add_argument("--all", action="store_true", help="purge every finished run of WORKSPACE")
    p.add_argument("--results", action="store_true", help="remove the result ZIPs")
    p.add_argument("--identities", action="store_true", help="scrub the journal's identities")
    p.add_argument(
        "--force",
        action="store_true",
        help="purge an unfinished run too (an identity purge cancels it: nothing more is sent)",
    )
    p.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="DURATION",
        help="with --all: only runs finished at least this long ago (e.g. 30d)",
    )
    add_common(p)
    p.set_defaults(handler=_cmd_purge)


def _cmd_purge(args: argparse.Namespace) -> int:
    if args.older_than is not None and not args.all:
        raise ConfigError("--older-than: only with --all WORKSPACE")
    if args.force and args.all:
        raise ConfigError("--force: one run at a time (dsar purge --force RUN_DIR)")
    both = not (args.results or args.identities)
    results, identities = args.results or both, args.identities or both
    options = RunOptions(env=dict(os.environ), clock=args.clock)
    pause_at = os.environ.get(PAUSE_ENV) or None
    if not args.all:
        done = purge_run(
            args.path, results=results, identities=identities, force=args.force,
            options=options, pause_at=pause_at,
        )  # fmt: skip
        print(done.message)
        return 0

    def notice(line: str) -> None:
        say(args.log_format, line, level="warning")

    older = timedelta(seconds=args.older_than) if args.older_than is not None else None
    summary = purge_workspace(
        args.path, results=results, identities=identities, older_than=older,
        options=options, notice=notice, pause_at=pause_at,
    )  # fmt: skip
    for outcome in summary.outcomes:
        print(outcome.message)
    print(f"purge: {len(summary.outcomes)} runs purged, {summary.skipped} left as they are")
    return summary.exit_code


PURGE_COMMANDS: list[Registrar] = [_register_purge]
