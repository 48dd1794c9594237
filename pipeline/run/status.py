"""Where a run stands, from its journal alone (``dsar status``), and the end-of-run table.

Counts only: no identity value and no user key is ever shown.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ..api.clock import SYSTEM_CLOCK, Clock
from ..constants import DEFAULT_ORG
from ..errors import ConfigError, DamagedRunFile, JournalError
from ..journal.ledger import LEDGER_FILE, Ledger
from ..journal.models import RunIntent, RunState
from ..journal.schema import JOURNAL_FILE
from ..journal.store import Journal
from ..logs import json_line
from ..reports.deadlines import DeadlineWatch, deadline_watch
from ..reports.orgs import configured_orgs, org_pauses
from ..reports.writers import REJECTS_FILE, report_counts
from .damage import check_journal, findings
from .lock import Holder, lock_holder

if TYPE_CHECKING:
    from .runner import RunOutcome


def run_status(
    run_dir: Path, *, key_label: Callable[[str], str] = str, clock: Clock = SYSTEM_CLOCK
) -> dict[str, Any]:
    """The run's state, jobs and batches by state, rejects, API calls, today's budget use,
    the subjects overdue or due within 7 days, and the next action. Makes no API call: reads
    the journal, the workspace ledger and the run's status.parquet; today and the deadlines
    are counted on ``clock``."""
    if not (run_dir / JOURNAL_FILE).exists():
        raise ConfigError(f"{run_dir} holds no run journal")
    check_journal(run_dir)
    with Journal.open(run_dir) as journal:
        if not journal.has_plan:
            raise JournalError(
                f"{run_dir}: the run was killed while planning: `dsar resume {run_dir}` plans it"
                " again"
            )
        info = journal.run_info()
        counts = journal.counts()
        skipped = journal.skipped_count()
        calls = journal.api_calls()
        canary = journal.canary()
        purges = journal.purges()
        by_org = journal.states_by_org()
    meta = info.meta
    paused = org_pauses(info, by_org)
    workspace = Path(str(meta.settings.get("output", {}).get("workspace", run_dir.parent)))
    orgs = configured_orgs(meta.settings, meta.org_id)
    budgets: dict[str, dict[str, Any]] = {}
    if (workspace / LEDGER_FILE).exists():
        today = clock.utc_now().date()
        with Ledger.open(workspace) as ledger:
            for name, conf in orgs.items():
                if conf["org_id"]:
                    cap = int(conf["daily_job_cap"] or 0)
                    budgets[name] = _budget(ledger, str(conf["org_id"]), today, cap)
    # one org: the run's budget; several: each org's (org_budget_today)
    budget = next(iter(budgets.values()), None) if len(orgs) == 1 else None
    now = clock.utc_now()
    damaged = findings(run_dir)
    try:
        watch = deadline_watch(run_dir, now=now, key_label=key_label)
    except DamagedRunFile:  # listed in ``damaged``; the journal's counts still stand
        watch = DeadlineWatch(overdue=0, due_soon=0, rows=())
    deadlines = {
        "overdue": watch.overdue,
        "due_within_7_days": watch.due_soon,
        "closest": [
            {
                "subject_key": r.subject_key,
                "action": r.action,
                "regulation": r.regulation,
                "status": r.status,
                "due_at": r.due_at.isoformat(),
                "days_left": r.days_left,
                "overdue": r.overdue,
            }
            for r in watch.rows
        ],
    }
    holder = lock_holder(run_dir)
    return {
        "run_id": meta.run_id,
        "run_dir": str(run_dir),
        "state": info.state.value,
        "intent": info.intent.value,
        "stop_polling": info.stop_polling,
        "driven_by": {"pid": holder.pid, "since": holder.since} if holder else None,
        "pause_reason": info.pause_reason,
        "canary": None if canary is None else canary.as_dict(),
        "resume_after": info.resume_after.isoformat() if info.resume_after else None,
        "input_rows": meta.input_rows,
        "rejected_rows": info.rejects_count,
        "skipped_jobs": skipped,  # dedupe: an earlier run of the workspace submitted them
        "jobs": counts.jobs,
        "batches": counts.batches,
        "users": counts.users,
        "api_calls": calls,
        "daily_budget": budget,
        # per org, its status.parquet rows by status (skipped rows have no org)
        "orgs": {org: report_counts(states) for org, states in by_org.items()},
        # per org, when it may submit again while it waits for its next day at the cap
        "org_paused_until": {org: _iso(paused.get(org)) for org in by_org},
        # several orgs: each org's use of its daily cap today (the shape of daily_budget)
        "org_budget_today": budgets if len(orgs) > 1 else {},
        "deadlines": deadlines,
        "next": _next_action(
            info.state,
            info.pause_reason,
            run_dir,
            counts.jobs,
            rejected=info.rejects_count,
            intent=info.intent,
            identities_purged=info.identities_purged_at is not None,
        ),
        "damaged": [str(finding) for finding in damaged],
        "purges": [{"what": p.what, "at": p.at.isoformat(), "files": len(p.files)} for p in purges],
    }


def _budget(ledger: Ledger, org_id: str, today: date, cap: int) -> dict[str, Any]:
    """One org's use of its daily cap ``today``, as the workspace's ledger booked it."""
    usage = ledger.usage(org_id, today)
    observed = ledger.observed_cap(org_id)
    return {
        "day": today.isoformat(),
        "used": usage.used,
        "reserved": usage.reserved,
        "cap": cap,
        "exhausted": usage.left(cap) == 0,
        # what the service accepted on the latest day it refused more (None: never)
        "observed_cap": observed.accepted if observed else None,
        "observed_on": observed.day.isoformat() if observed else None,
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _next_action(
    state: RunState,
    reason: str | None,
    run_dir: Path,
    jobs: dict[str, int],
    *,
    rejected: int = 0,
    intent: RunIntent | None = None,
    identities_purged: bool = False,
) -> str:
    if intent == RunIntent.PREVIEW and sum(jobs.values()) > 0:
        return f"`dsar submit {run_dir}` submits this preview (a dry run)"
    if intent == RunIntent.DECLINED:
        return "nothing: declined at the prompt; `dsar run INPUT` again to submit"
    if intent == RunIntent.CANCELLED and state != RunState.FINISHED:
        return f"`dsar resume {run_dir}` follows the jobs already at the service (cancelled)"
    if state == RunState.FINISHED:
        if jobs.get("error", 0) and identities_purged:
            return (
                f"nothing: {jobs['error']} jobs ended in error and the identities were purged;"
                " start a new run from the input to resubmit them"
            )
        if jobs.get("error", 0):
            return f"`dsar retry {run_dir}` resubmits the {jobs['error']} jobs in error"
        if rejected and not sum(jobs.values()):
            return f"no valid row: fix the rows listed in {run_dir / REJECTS_FILE} and run again"
        if rejected:
            where = run_dir / REJECTS_FILE
            return f"nothing: the run is finished ({rejected:,} rows rejected, see {where})"
        return "nothing: the run is finished"
    if reason == "daily_cap":
        return f"`dsar resume {run_dir}` after the next UTC midnight"
    if reason == "canary":  # held by a failed or timed-out canary: only an explicit act
        return (
            f"held by its canary (see status.parquet): `dsar submit {run_dir}` submits the "
            f"rest, `dsar cancel {run_dir}` abandons it"
        )
    return f"`dsar resume {run_dir}`"


def _state_line(status: dict[str, Any]) -> str:
    """``paused (dry_run), preview``; ``active, driven by pid 1234 since ...`` while driven."""
    driver = status["driven_by"]
    reason = None if driver and status["state"] == RunState.ACTIVE else status["pause_reason"]
    line = _state(status["state"], reason)  # a driven run is not interrupted, whatever it was
    if status["intent"] not in (RunIntent.LIVE, reason):
        line += f", {status['intent']}"
    if driver:
        line += ", driven by " + Holder(pid=driver["pid"], since=driver["since"]).describe()
    return line


def _caps(budget: dict[str, Any]) -> str:
    text = f"{budget['cap']:,} configured"
    if budget["observed_cap"] is not None:
        text += f", {budget['observed_cap']:,} observed on {budget['observed_on']}"
    return text


def _state(state: str, reason: str | None) -> str:
    return f"{state} ({reason})" if reason else state


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in rows:
        table.add_row(what, count)
    return table


def _render(tables: list[Table], color: bool) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, width=100, color_system=None)
    for table in tables:
        console.print(table)
    return buf.getvalue().rstrip()


def render_status(status: dict[str, Any]) -> str:
    """``dsar status`` as readable text."""
    head = [
        ("run", status["run_id"]),
        ("state", _state_line(status)),
        ("input rows", f"{status['input_rows']:,}"),
        ("rejected rows", f"{status['rejected_rows']:,}"),
        ("users", f"{status['users']:,}"),
    ]
    if status.get("skipped_jobs"):
        head.append(("jobs skipped (dedupe)", f"{status['skipped_jobs']:,}"))
    if status["resume_after"]:
        head.append(("resume after", status["resume_after"]))
    canary = status["canary"]
    if canary:
        share = canary["errors"] / canary["jobs"] if canary["jobs"] else 0.0
        verdict = f"{canary['state']}: {canary['users']:,} users"
        if canary["decided_at"]:
            verdict += f", {canary['errors']:,} of {canary['jobs']:,} jobs in error ({share:.1%})"
        head.append(("canary", f"{verdict}; at most {canary['max_error']:.1%} passes"))
    budget = status["daily_budget"]
    if budget:
        # the ledger is the workspace's: another workspace of the same org is not counted
        used = f"{budget['used']:,} / {budget['cap']:,} jobs (this workspace)"
        head.append(("budget today", used))
        head.append(("daily cap", _caps(budget)))
    orgs = status.get("orgs", {})
    if set(orgs) - {DEFAULT_ORG}:  # one line per org of a run with [[orgs]]
        for org, body in orgs.items():
            states = ", ".join(f"{state} {n:,}" for state, n in body.items() if n) or "no jobs"
            today = status.get("org_budget_today", {}).get(org)
            if today:
                states += f"; today {today['used']:,} / {today['cap']:,}"
            until = status.get("org_paused_until", {}).get(org)
            if until:
                states += f"; paused until {until[:16].replace('T', ' ')} UTC"
            head.append((f"org {org}", states))
    for purge in status.get("purges", []):
        files = f", {purge['files']:,} files" if purge["files"] else ""
        head.append((f"purged {purge['what']}", f"{purge['at'][:19]}Z{files}"))
    jobs = [(state, f"{n:,}") for state, n in status["jobs"].items() if n]
    tables = [_table("run", head)] + ([_table("jobs", jobs)] if jobs else [])
    deadlines = status["deadlines"]
    if deadlines["closest"]:
        table = Table(
            title=f"deadlines: {deadlines['overdue']:,} overdue, "
            f"{deadlines['due_within_7_days']:,} due within 7 days",
            title_justify="left",
        )
        for column in ("subject_key", "action", "regulation", "status", "due", "days left"):
            table.add_column(column)
        for r in deadlines["closest"]:
            left = "overdue" if r["overdue"] else str(r["days_left"])
            row = (r["subject_key"], r["action"], r["regulation"], r["status"], r["due_at"][:10])
            table.add_row(*row, left)
        tables.append(table)
    text = _render(tables, color=False)
    return f"{text}\nnext: {status['next']}"


def render_outcome(outcome: RunOutcome, *, color: bool = False) -> str:
    """The summary table printed at the end of ``dsar run`` / ``resume``."""
    rows = [
        ("run", outcome.run_id),
        ("run dir", str(outcome.run_dir)),
        ("state", _state(outcome.state, outcome.pause_reason)),
        ("rejected rows", f"{outcome.rejected_rows:,}"),
    ]
    if outcome.skipped:
        rows.append(("jobs skipped (dedupe)", f"{outcome.skipped:,}"))
    jobs = dict(outcome.jobs)
    downloaded = jobs.pop("downloaded", 0)
    jobs["complete"] = jobs.get("complete", 0) + downloaded  # downloaded jobs are complete
    jobs["error"] = jobs.get("error", 0) + jobs.pop("failed", 0)  # refused by the service
    rows += [(f"jobs {state}", f"{n:,}") for state, n in jobs.items() if n]
    if downloaded:
        rows.append(("results downloaded", f"{downloaded:,}"))
    calls = sum(sum(by.values()) for by in outcome.api_calls.values())
    rows.append(("API calls", f"{calls:,}"))
    rows.append(("exit code", str(outcome.exit_code)))
    return _render([_table("dsar run summary", rows)], color=color)


def outcome_line(outcome: RunOutcome) -> str:
    """The end of ``dsar run`` / ``resume`` / ``retry`` under ``--log-format json``: one JSON
    object (shaped like a log record) with the message, the counts, the exit code, the run
    directory and the next action, instead of the table and the status line."""
    fields: dict[str, Any] = {
        "event": "summary",
        "run_id": outcome.run_id,
        "run_dir": str(outcome.run_dir),
        "state": outcome.state,
        "pause_reason": outcome.pause_reason,
        "resume_after": outcome.resume_after.isoformat() if outcome.resume_after else None,
        "exit_code": outcome.exit_code,
        "jobs": outcome.jobs,
        "rejected_rows": outcome.rejected_rows,
        "skipped_jobs": outcome.skipped,
        "api_calls": sum(sum(by.values()) for by in outcome.api_calls.values()),
        "next": _next_action(
            RunState(outcome.state),
            outcome.pause_reason,
            outcome.run_dir,
            outcome.jobs,
            rejected=outcome.rejected_rows,
        ),
    }
    level = "info" if outcome.exit_code in (0, 4) else "warning"
    return json_line(outcome.message, level=level, logger="dsar.summary", fields=fields)
