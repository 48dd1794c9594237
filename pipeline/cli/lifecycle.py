"""The CLI commands at a run's edges: submit (a preview) and cancel; and the one prompt.

Thin: parse, call :mod:`pipeline.run.submit` / :mod:`pipeline.run.lifecycle`, print.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..run.canary import describe
from ..run.context import RunOptions
from ..run.lifecycle import cancel_run
from ..run.target import Target
from .common import Registrar, SubParsers, add_common


class ConfirmPrompt:
    """The confirmation before anything is submitted: ``[y/N]`` on a terminal; ``--yes`` or
    no terminal (cron, pipes) answers yes. The embedded emulator is never asked about.
    :attr:`asks` says whether it will ask at all (a run killed while planning is planned
    again as a preview when its command would have asked: nobody has answered)."""

    def __init__(self, yes: bool) -> None:
        self.asks = not yes and sys.stdin.isatty()

    def __call__(self, target: Target, jobs: int, input_sha256: str) -> bool:
        if not self.asks:
            return True
        what = f"input sha256 {input_sha256[:12]}"
        canary = describe(target.settings.job)
        if canary:
            what += f"; {canary}"
        answer = input(f"Submit {jobs:,} jobs ({what}) to the Privacy Service? [y/N] ")
        return answer.strip().lower() in ("y", "yes")


def confirm_prompt(yes: bool) -> Callable[[Target, int, str], bool]:
    """The :class:`ConfirmPrompt` of a command with (or without) ``--yes``."""
    return ConfirmPrompt(yes)


def _register_submit(sub: SubParsers[argparse.ArgumentParser]) -> None:
    from .run import _add_drive_flags

    p = sub.add_parser(
        "submit",
        help="submit the plan of a dry run (a preview), or the rest of a run held by its "
        "canary, then drive it like `dsar run`",
        description="A dry run leaves a preview that nothing else submits (not resume, not "
        "resume --all, not retry); a failed or timed-out canary holds the rest of its run the "
        "same way. This is the explicit act that submits it: the same confirmation as "
        "`dsar run`, then the run is driven to the end.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the dry run's directory")
    p.add_argument("--yes", action="store_true", help="do not ask before submitting")
    add_common(p)
    _add_drive_flags(p)
    p.set_defaults(handler=_cmd_submit)


def _cmd_submit(args: argparse.Namespace) -> int:
    from ..run.submit import submit_run
    from .run import _options, _print_outcome

    outcome = submit_run(
        args.run_dir, env=os.environ, options=_options(args), confirm=confirm_prompt(args.yes)
    )
    return _print_outcome(outcome, args)


def _register_cancel(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cancel",
        help="abandon a run on purpose: nothing more of it is ever submitted",
        description="Cancel RUN_DIR: every batch not yet submitted ends as `cancelled` in the "
        "reports (no row is lost) and nothing is ever submitted again. A POST whose outcome is "
        "unknown is still reconciled by the next resume (the jobs it made are adopted and "
        "reported; nothing is re-sent). By default the jobs already at the service are still "
        "polled to the end by `dsar resume` / `resume --all` and reported; --stop-polling "
        "stops that too and reports them as last seen.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument(
        "--stop-polling",
        action="store_true",
        help="also stop following the jobs already at the service (reported as last seen)",
    )
    add_common(p)
    p.set_defaults(handler=_cmd_cancel)


def _cmd_cancel(args: argparse.Namespace) -> int:
    options = RunOptions(env=dict(os.environ), clock=args.clock)
    done = cancel_run(args.run_dir, stop_polling=args.stop_polling, options=options)
    print(done.message, file=sys.stderr)
    return 0


LIFECYCLE_COMMANDS: list[Registrar] = [_register_submit, _register_cancel]
