"""Each batch is journalled with its org; a journal from before orgs reads as the default org."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.journal.schema import JOURNAL_FILE, open_database
from pipeline.journal.store import Journal
from pipeline.models import PlannedBatch
from tests.helpers.plans import OPTIONS, at, iter_plan, meta, user


def test_a_batch_keeps_its_org_through_the_journal(tmp_path: Path) -> None:
    eu = dataclasses.replace(OPTIONS, org="eu")
    batches = [
        *iter_plan(2, per_batch=1),
        PlannedBatch(batch_id="b-eu", options=eu, users=(user(5),)),
    ]
    with Journal.open(tmp_path / "run") as j:
        j.write_plan(meta(), batches, rejects_count=0)
        assert j.load_batch("b-eu").options.org == "eu"
        assert j.batch_info("b-eu").org == "eu"
        assert j.load_batch("b00001").options.org == "default"
        assert j.batch_info("b00002").org == "default"


def test_a_version_6_journal_migrates_with_every_batch_in_the_default_org(
    tmp_path: Path,
) -> None:
    path = tmp_path / JOURNAL_FILE
    open_database(path, target=6).close()
    conn = open_database(path)
    assert ("org", "TEXT", "'default'") in {
        (r[1], r[2], r[4]) for r in conn.execute("PRAGMA table_info(batch)")
    }
    conn.close()


def _two_org_journal(path: Path) -> Journal:
    eu = dataclasses.replace(OPTIONS, org="eu")
    batches = [
        *iter_plan(2, per_batch=1),
        PlannedBatch(batch_id="b-eu", options=eu, users=(user(5),)),
        PlannedBatch(batch_id="b-eu2", options=eu, users=(user(6),)),
    ]
    j = Journal.open(path)
    j.write_plan(meta(), batches, rejects_count=0)
    return j


def test_the_batches_to_submit_can_be_read_for_one_org(tmp_path: Path) -> None:
    with _two_org_journal(tmp_path / "run") as j:
        assert j.batches_to_submit(org="eu") == ["b-eu", "b-eu2"]
        assert j.batches_to_submit(org="default") == ["b00001", "b00002"]
        assert j.batches_to_submit(org="eu", limit=1) == ["b-eu"]
        assert j.batches_to_submit() == ["b00001", "b00002", "b-eu", "b-eu2"]


def test_one_orgs_recovery_leaves_another_orgs_post_in_flight_alone(tmp_path: Path) -> None:
    with _two_org_journal(tmp_path / "run") as j:
        j.record_intent("b00001", "d", at(1))
        j.record_intent("b-eu", "d", at(1))
        assert j.recover_submitting(at(2), org="eu") == ["b-eu"]
        assert [i.batch_id for i in j.unresolved_batches(org="eu")] == ["b-eu"]
        assert j.unresolved_batches(org="default")[0].state.value == "submitting"
        assert j.recover_submitting(at(3)) == ["b00001"]
        assert [i.batch_id for i in j.unresolved_batches()] == ["b00001", "b-eu"]
