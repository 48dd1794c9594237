"""Test data for journal and report tests: plans built from the request-side models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from pipeline.journal.models import RunMeta
from pipeline.models import Action, Identity, PlannedBatch, PlannedUser, RequestOptions, UserRequest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPTIONS = RequestOptions(regulation="gdpr", include=("aepDataLake", "profileService"))


def at(seconds: float) -> datetime:
    """A test time ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def email(i: int) -> str:
    """The identity value of subject ``i``: unique, so a scan can look for it."""
    return f"person{i:07d}@example.org"


def user(i: int, actions: tuple[Action, ...] = (Action.ACCESS, Action.DELETE)) -> PlannedUser:
    """Subject ``i`` as one planned user with an email and an ECID."""
    request = UserRequest(
        key=f"uk-{i:07d}",
        actions=actions,
        identities=(Identity("email", email(i)), Identity("ECID", f"{i:038d}")),
    )
    return PlannedUser(f"subj-{i:07d}", 0, request, (i,), None)


def iter_plan(
    subjects: int,
    *,
    per_batch: int = 1000,
    actions: tuple[Action, ...] = (Action.ACCESS, Action.DELETE),
    options: RequestOptions = OPTIONS,
) -> Iterator[PlannedBatch]:
    """``subjects`` users in batches of ``per_batch``, ids ``b00001``..., streamed."""
    for n, start in enumerate(range(0, subjects, per_batch), start=1):
        users = tuple(user(i, actions) for i in range(start, min(start + per_batch, subjects)))
        yield PlannedBatch(batch_id=f"b{n:05d}", options=options, users=users)


def meta(run_id: str = "run-1", rows: int = 0) -> RunMeta:
    """Run metadata for tests."""
    return RunMeta(
        run_id=run_id,
        created_at=T0,
        input_path="subjects.csv",
        input_sha256="ab" * 32,
        input_rows=rows,
        config_digest="cd" * 32,
        tool_version="0.1.0",
        settings={"job": {"regulation": "gdpr"}, "credentials": {"client_secret": None}},
        org_id="ORG@AdobeOrg",
    )
