"""The run commands of the CLI: run, resume, status, retry, and jobs list|get|download.

Thin: parse, load settings, call :mod:`pipeline.run.runner` / :mod:`pipeline.run.jobs`, print.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import orjson

from .. import constants
from ..errors import ConfigError, InputError
from ..keys import key_labeller, key_secret
from ..logs import say
from ..run.context import RunOptions
from ..run.damage import before_resume
from ..run.jobs import (
    JobQuery,
    details_dict,
    download_job,
    list_jobs,
    locate_job,
    write_jobs_parquet,
)
from ..run.runner import RunOutcome, resume_all, resume_run, start_run
from ..run.status import outcome_line, render_outcome, run_status
from .common import Registrar, SubParsers, add_common, check_out_flag, settings_from_args
from .lifecycle import confirm_prompt

log = logging.getLogger("dsar")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def parse_duration(text: str) -> float:
    """``"2h"``, ``"90m"``, ``"45s"``, ``"1d"`` or plain seconds, as seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text[:20]!r} (use e.g. 90m, 2h, 1d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a duration must be above 0 (e.g. 90m, 2h, 1d)")
    return seconds


def job_id(text: str) -> str:
    """A job id as the service spells them (letters, digits, ``-``, ``_``, ``.``, ``:``)."""
    if not _JOB_ID.match(text):
        raise argparse.ArgumentTypeError(
            "JOB_ID must be 1-128 letters, digits, '-', '_', '.' or ':' (as `dsar jobs list` shows)"
        )
    return text


def _add_drive_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-wait", action="store_true", help="return once everything is submitted (exit 4)"
    )
    p.add_argument(
        "--max-runtime",
        type=parse_duration,
        metavar="DURATION",
        help="stop after this long (e.g. 2h), write the reports, exit 4",
    )
    p.add_argument(
        "--redact-keys",
        action="store_true",
        help="report.html shows keyed hashes (DSAR_KEY_SECRET) instead of subject keys",
    )
    p.add_argument(
        "--progress-every",
        type=parse_duration,
        default=30.0,
        metavar="DURATION",
        help="off a terminal, one progress line this often, whatever the run is doing "
        "(default 30s)",
    )
    p.add_argument(
        "--max-jobs",
        type=positive_int,
        metavar="N",
        help="refuse (exit 2, before any API call) when this would create more than N jobs "
        "(default: [limits] max_jobs, none)",
    )


def positive_int(text: str) -> int:
    """An integer above 0 (``--canary``, ``--max-jobs``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:20]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def share(text: str) -> float:
    """A share from 0 to 1 (``--canary-max-error``); ``5%`` reads as 0.05."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a share: {text[:20]!r} (use e.g. 0.05 or 5%)"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a share is from 0 to 1 (e.g. 0.05 or 5%)")
    return value


def _options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        no_wait=args.no_wait,
        max_runtime_s=args.max_runtime,
        redact_keys=args.redact_keys,
        max_jobs=args.max_jobs,
        plain_progress=args.log_format == "json",
        progress_every_s=max(0.1, args.progress_every),
        env=dict(os.environ),
        reconcile=os.environ.get("DSAR_UNSAFE_NO_RECONCILE") != "1",
        clock=args.clock,
    )


def say_damage(run_dir: Path) -> None:
    """Before a resume: stop on a damaged journal; one warning per damaged file."""
    for line in before_resume(run_dir):
        log.warning("%s", line)


def _print_outcome(outcome: RunOutcome, args: argparse.Namespace) -> int:
    if args.log_format == "json":  # one JSON line, like every other line dsar writes
        print(outcome_line(outcome))
        return outcome.exit_code
    print(render_outcome(outcome, color=sys.stdout.isatty()))
    # no valid row ends like every other input error: one ``dsar:`` line, exit 3
    prefix = "dsar: " if outcome.exit_code == InputError.exit_code else ""
    print(prefix + outcome.message, file=sys.stderr)
    return outcome.exit_code


def _register_run(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="the main job: validate, batch, submit, poll to the end, download, report",
        description="Plan INPUT into a new run directory and drive it to the end. Without "
        "credentials and api.base_url the embedded emulator is used.",
    )
    p.add_argument("input", type=Path, help="CSV, Parquet, or JSON (Privacy Service UI upload)")
    add_common(p)
    p.add_argument("--workspace", type=Path, help="workspace directory (default ./dsar-runs)")
    p.add_argument("--run-dir", type=Path, help="run directory (default WORKSPACE/RUN_ID)")
    _add_drive_flags(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="plan and report; submit nothing (a preview: only `dsar submit` submits it)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask before submitting")
    p.add_argument(
        "--canary",
        type=positive_int,
        metavar="N",
        help="submit the first N users alone, wait for their jobs, and go on only if few "
        "enough ended in error (default: [job] canary_users, none)",
    )
    p.add_argument(
        "--canary-wait",
        type=parse_duration,
        metavar="DURATION",
        help="how long the canary's jobs may take before the run pauses (default 2h)",
    )
    p.add_argument(
        "--canary-max-error",
        type=share,
        metavar="SHARE",
        help="the largest share of canary jobs in error that lets the rest go (default 0.05)",
    )
    p.add_argument(
        "--no-dedupe",
        action="store_true",
        help="submit every subject, even those an earlier run of the workspace submitted",
    )
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    outcome = start_run(
        args.input,
        settings,
        env=os.environ,
        run_dir=args.run_dir,
        options=dataclasses.replace(_options(args), dedupe=not args.no_dedupe),
        dry_run=args.dry_run,
        confirm=confirm_prompt(args.yes),
    )
    return _print_outcome(outcome, args)


def _register_resume(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "resume",
        help="continue a run from its journal (after a crash, the daily cap, --no-wait)",
        description="Continue RUN_DIR; with --all, advance every unfinished run of WORKSPACE "
        "(the one line a cron job needs). The run keeps the settings it was planned with; "
        "--config F may change how it is driven (api timeouts and retries, limits other than "
        "users_per_request, poll) for this invocation, and is refused (exit 2) when it "
        "changes anything that shaped the plan (job, input, limits.users_per_request, "
        "api.base_url, output). A preview (dry run) or a declined run is never "
        "resumed: `dsar submit` submits a preview. A run held by its canary is followed "
        "(polled, reported) but submits nothing more until `dsar submit` releases it. "
        "Exit 7 when another dsar process drives the run (or, with --all, the workspace).",
    )
    p.add_argument("path", type=Path, metavar="RUN_DIR", help="run directory (or WORKSPACE)")
    p.add_argument("--all", action="store_true", help="PATH is a workspace: resume every run")
    add_common(p)
    _add_drive_flags(p)
    p.set_defaults(handler=_cmd_resume)


def _cmd_resume(args: argparse.Namespace) -> int:
    options = _options(args)
    if not args.all:
        say_damage(args.path)
    if args.all:
        if not args.path.is_dir():
            raise ConfigError(f"{args.path}: not a workspace directory")
        done = resume_all(
            args.path, env=os.environ, options=options, config=args.config, notice=_notice(args)
        )
        if not done.outcomes and not done.busy and not done.damaged and not done.refused:
            say(args.log_format, "no unfinished run in the workspace")
        for outcome in done.outcomes:
            _print_outcome(outcome, args)
        for purged in done.purged:
            say(args.log_format, f"retention: {purged.message}")
        return done.exit_code
    outcome = resume_run(args.path, env=os.environ, options=options, config=args.config)
    return _print_outcome(outcome, args)


def _notice(args: argparse.Namespace) -> Callable[[str], None]:
    def notice(line: str) -> None:
        say(args.log_format, line, level="warning")

    return notice


def _register_retry(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "retry",
        help="resubmit the subjects whose jobs ended in error (a new attempt)",
        description="Plan a new attempt, with a new user key, for every job of RUN_DIR that "
        "ended in error, linked to it in the journal; then drive the run. With no job in "
        "error it says so and exits 0 (4 when the run has work pending) without any API "
        "call. --config is checked as for resume.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    add_common(p)
    _add_drive_flags(p)
    p.set_defaults(handler=_cmd_retry)


def _cmd_retry(args: argparse.Namespace) -> int:
    options = _options(args)
    say_damage(args.run_dir)
    outcome = resume_run(
        args.run_dir, env=os.environ, options=options, retry_errors=True, config=args.config
    )
    return _print_outcome(outcome, args)


def _register_status(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="counts by state, budget used, next actions (reads only the journal)",
        description="Show where RUN_DIR stands. Makes no API call.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--redact-keys", action="store_true", help="show keyed hashes instead of subject keys"
    )
    add_common(p)
    p.set_defaults(handler=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    label = key_labeller(key_secret(os.environ)) if args.redact_keys else str
    status = run_status(args.run_dir, key_label=label, clock=args.clock)
    if args.json:
        sys.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        from ..run.status import render_status

        print(render_status(status))
    for line in status["damaged"]:  # one line per damaged file, and what to do
        print(f"dsar: {line}", file=sys.stderr)
    return 3 if status["damaged"] else 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def _register_jobs(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "jobs",
        help="the service's jobs: list (all pages, 30-day windows), get one, download results",
        description="Direct access to the Privacy Service's jobs (the embedded emulator "
        "without credentials).",
    )
    jobs = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    ls = jobs.add_parser("list", help="every job of a regulation, all pages")
    ls.add_argument("--regulation", required=True, help="e.g. gdpr, ccpa, cpra_ca_usa")
    ls.add_argument("--status", choices=("submitted", "processing", "complete", "error"))
    ls.add_argument(
        "--from",
        dest="from_date",
        type=_iso_date,
        help=(
            "first day (YYYY-MM-DD); the service looks back at most "
            f"{constants.MAX_LOOKBACK_DAYS} days"
        ),
    )
    ls.add_argument("--to", dest="to_date", type=_iso_date, help="last day (YYYY-MM-DD)")
    ls.add_argument("--out", type=Path, help="write the jobs to this Parquet file")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    get = jobs.add_parser("get", help="one job with its product responses")
    get.add_argument("job_id", metavar="JOB_ID", type=job_id)
    get.add_argument("--json", action="store_true", help="machine-readable output")
    dl = jobs.add_parser("download", help="a job's access results ZIP")
    dl.add_argument("job_id", metavar="JOB_ID", type=job_id)
    dl.add_argument("--out", type=Path, default=Path("."), help="directory (default: .)")
    for child in (ls, get, dl):
        add_common(child)
        child.add_argument("--workspace", type=Path, help="workspace (embedded emulator state)")
        child.add_argument(
            "--org",
            metavar="NAME",
            help="talk to this [[orgs]] table's org only (default: every org of the config; "
            "get and download ask each org for the job)",
        )
    p.set_defaults(handler=_cmd_jobs)
    for child in (ls, get, dl):
        child.set_defaults(handler=_cmd_jobs)


def _cmd_jobs(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    workspace = Path(settings.output.workspace)
    check_out_flag(getattr(args, "out", None), directory=args.jobs_command == "download")
    if args.jobs_command == "list":
        query = JobQuery(
            regulation=args.regulation,
            status=args.status,
            from_date=args.from_date,
            to_date=args.to_date,
        )
        rows = list_jobs(
            query, settings, workspace=workspace, env=os.environ, clock=args.clock, org=args.org
        )
        if args.out:
            write_jobs_parquet(rows, args.out)
            print(f"{len(rows):,} jobs written to {args.out}", file=sys.stderr)
        elif args.json:
            for row in rows:
                sys.stdout.write(orjson.dumps(row).decode() + "\n")
        else:
            for row in rows:
                org = f"{row['org']}  " if settings.multi_org else ""
                print(
                    f"{org}{row['job_id']}  {row['status']:<10}  {row['action']:<8}  "
                    f"{row['created_at']}"
                )
            print(f"{len(rows):,} jobs", file=sys.stderr)
        return 0
    if args.jobs_command == "get":
        org, job = locate_job(
            args.job_id, settings, workspace=workspace, env=os.environ, clock=args.clock,
            org=args.org,
        )  # fmt: skip
        data = {**details_dict(job), "org": org}
        if args.json:
            sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            print(
                f"{data['job_id']}  {data['action']}  {data['status']}  {data['regulation']}"
                + (f"  org {org}" if settings.multi_org else "")
            )
            for prod in data["products"]:
                print(f"  {prod['product']:<18} {prod['status']:<10} {prod['response_code'] or ''}")
        return 0
    path, digest = download_job(
        args.job_id, args.out, settings, workspace=workspace, env=os.environ, clock=args.clock,
        org=args.org,
    )  # fmt: skip
    print(f"{path}  sha256 {digest}")
    return 0


RUN_COMMANDS: list[Registrar] = [
    _register_run,
    _register_resume,
    _register_status,
    _register_retry,
    _register_jobs,
]
