"""summary.json's ``orgs`` section: each org of a run, reported on its own.

For every org of the run (its ``[[orgs]]`` name; ``default`` without ``[[orgs]]``):

- ``status`` and ``error_codes``: its rows of status.parquet counted by ``status`` and by
  ``error_code``, taken from the same pass that writes the file (so they equal a groupby of
  status.parquet by ``org``);
- ``cap_timeline``: per UTC day, the jobs the service created for the run in that org (every
  attempt with a job id, by its submission day), the jobs the workspace's ledger booked for the
  org that day (every run of the workspace; null without a ledger), the day's limit (the org's
  daily cap, or the lower ceiling the service's refusals set) and whether the day reached it;
- ``pauses``: each day the org reached its limit and went on submitting on a later day, with
  the time it could go on (the next UTC midnight), and the run's current pause when the org
  waits for its next day now;
- ``paused_until``: that resume time while the run is paused at the daily cap with jobs of this
  org not yet submitted, else null.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..constants import DEFAULT_ORG
from ..journal.ledger import Ledger
from ..journal.models import JobState, RunInfo
from ..journal.queries import JournalQueries

# one status.parquet row as the org figures count it: (org, status, error_code)
OrgRowKey = tuple[str | None, str, str | None]


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def _next_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def org_pauses(info: RunInfo, states: Mapping[str, Mapping[str, int]]) -> dict[str, datetime]:
    """Each org waiting for its next day -> when it may submit again: while the run is paused
    at the daily cap, every org with jobs not yet submitted (``states``: journal job states
    by org, :meth:`~pipeline.journal.queries.JournalQueries.states_by_org`). An org at its
    cap is the only one left with unsubmitted jobs when a run pauses so."""
    if info.pause_reason != "daily_cap" or info.resume_after is None:
        return {}
    at = info.resume_after
    return {org: at for org, by in states.items() if by.get(JobState.PENDING, 0) > 0}


def configured_orgs(settings: Mapping[str, Any], org_id: str | None) -> dict[str, dict[str, Any]]:
    """Each org of a run's journalled settings -> its ``org_id`` and ``daily_job_cap`` (an
    ``[[orgs]]`` table without a cap has ``[limits] daily_job_cap``)."""
    cap = settings.get("limits", {}).get("daily_job_cap")
    tables = settings.get("orgs") or []
    if not tables:
        return {DEFAULT_ORG: {"org_id": org_id, "daily_job_cap": cap}}
    return {
        str(t["name"]): {"org_id": t.get("org_id"), "daily_job_cap": t.get("daily_job_cap") or cap}
        for t in tables
    }


def org_sections(
    journal: JournalQueries,
    rows: Mapping[OrgRowKey, int],
    states: Mapping[str, Mapping[str, int]],
    *,
    ledger: Ledger | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``orgs`` section of summary.json (see the module docstring): ``rows`` counted by
    the status pass, ``states`` the journal's job states by org."""
    info = journal.run_info()
    orgs = configured_orgs(info.meta.settings, info.meta.org_id)
    created = journal.jobs_created_by_org()
    status: dict[str, dict[str, int]] = {}
    errors: dict[str, dict[str, int]] = {}
    for (org, state, code), n in rows.items():
        if org is None:  # a row dedupe skipped: no org, no job
            continue
        by_status = status.setdefault(org, {})
        by_status[state] = by_status.get(state, 0) + n
        if code:
            by_code = errors.setdefault(org, {})
            by_code[code] = by_code.get(code, 0) + n
    waiting = org_pauses(info, states)
    out: dict[str, dict[str, Any]] = {}
    for name in [*orgs, *sorted((set(status) | set(created)) - set(orgs))]:
        conf = orgs.get(name, {"org_id": None, "daily_job_cap": None})
        cap = conf["daily_job_cap"]
        timeline, pauses = [], []
        days = created.get(name, {})
        for i, (day_text, jobs) in enumerate(days.items()):
            day = date.fromisoformat(day_text)
            booked: int | None = None
            limit = cap
            if ledger is not None and conf["org_id"] is not None and cap:
                usage = ledger.usage(str(conf["org_id"]), day)
                booked, limit = usage.used, usage.limit(int(cap))
            at_cap = bool(limit) and (jobs if booked is None else booked) >= int(limit or 0)
            timeline.append(
                {
                    "day": day_text,
                    "jobs": jobs,
                    "workspace_jobs": booked,
                    "limit": limit,
                    "at_cap": at_cap,
                }
            )
            if at_cap and i < len(days) - 1:  # it went on a later day: it waited for that
                pauses.append({"day": day_text, "resume_after": _iso(_next_day(day))})
        resume = waiting.get(name)
        paused_until = _iso(resume)
        if resume is not None and all(p["resume_after"] != paused_until for p in pauses):
            before = (resume - timedelta(days=1)).date().isoformat()
            pauses.append({"day": before, "resume_after": paused_until})
        out[name] = {
            "org_id": conf["org_id"],
            "daily_job_cap": cap,
            "status": dict(sorted(status.get(name, {}).items())),
            "error_codes": dict(sorted(errors.get(name, {}).items())),
            "cap_timeline": timeline,
            "pauses": pauses,
            "paused_until": paused_until,
        }
    return out
