"""A run journal in every interesting state, for report tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.journal.models import JobObservation
from pipeline.journal.store import Journal
from pipeline.models import Action, ProductResponse
from tests.helpers.plans import at, email, iter_plan, meta

A, D = Action.ACCESS, Action.DELETE


def _jobs(*keys: str) -> dict[tuple[str, Action], str]:
    return {(k, a): f"{k}-{a.value}" for k in keys for a in (A, D)}


def populate(journal: Journal) -> None:
    """8 subjects in 4 batches: complete + downloaded, error, rejected batch, pending."""
    journal.write_plan(meta(rows=9), iter_plan(8, per_batch=2), rejects_count=1)
    journal.activate(at(0))
    for n, keys in ((1, ("uk-0000000", "uk-0000001")), (2, ("uk-0000002", "uk-0000003"))):
        journal.record_intent(f"b0000{n}", "d", at(n))
        journal.mark_submitted(f"b0000{n}", f"req-{n}", _jobs(*keys), at(n + 1))
    journal.observe(
        [
            JobObservation(job_id="uk-0000000-access", status="complete", updated_at=at(50)),
            JobObservation(job_id="uk-0000000-delete", status="complete", updated_at=at(51)),
            JobObservation(job_id="uk-0000001-access", status="error", updated_at=at(52)),
            JobObservation(job_id="uk-0000002-access", status="processing", updated_at=at(53)),
        ],
        at(60),
    )
    journal.record_details(
        "uk-0000000-access",
        [
            ProductResponse(product="Profile", status="complete", response_code="PRVCY-6000-200",
                           message="Success", processed_at=at(49)),
            ProductResponse(product="AudienceManager", status="complete",
                           response_code="PRVCY-6052-200", message=f"not found: {email(0)}"),
        ],
        at(61),
        has_result=True,
    )  # fmt: skip
    journal.mark_downloaded("uk-0000000-access", "results/uk-0000000-access.zip", "e" * 64, at(62))
    journal.record_details(
        "uk-0000001-access",
        [ProductResponse(product="Profile", status="error", response_code="PRVCY-1022-400",
                        message="data access failure", retry_count=3)],
        at(63),
        has_result=False,
        error_code="PRVCY-1022-400",
    )  # fmt: skip
    journal.record_intent("b00003", "d", at(70))
    journal.mark_failed("b00003", "PRVCY-1000-400", f"bad identity {email(5)}", at(71))
    journal.add_api_calls({("POST jobs", 200): 2, ("POST jobs", 400): 1, ("GET jobs", 200): 3})


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Journal, Path]]:
    """A populated journal and its run directory."""
    run_dir = tmp_path / "run"
    with Journal.open(run_dir) as journal:
        populate(journal)
        yield journal, run_dir
