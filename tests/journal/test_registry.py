"""The workspace registry: derived from the run journals, idempotent, cooldown-aware."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from pipeline.journal.models import JobObservation
from pipeline.journal.registry import Registry, journal_jobs
from pipeline.journal.store import Journal
from pipeline.keys import fingerprints, key_secret
from pipeline.models import Action
from tests.helpers.plans import at

A, D = Action.ACCESS, Action.DELETE
SECRET = key_secret({})


def _submit_first(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    jobs = {(k, a): f"{k}-{a.value}" for k in ("uk-0000000", "uk-0000001") for a in (A, D)}
    journal.mark_submitted("b00001", "req-1", jobs, at(2))


def test_only_committed_jobs_with_an_id_are_registered_and_a_second_sync_is_free(
    journal: Journal, tmp_path: Path
) -> None:
    with Registry.open(tmp_path) as registry:
        assert registry.catch_up(SECRET) == 0
        assert registry.jobs() == set()
        _submit_first(journal)
        assert registry.catch_up(SECRET) == 4
        assert registry.jobs() == journal_jobs(tmp_path / "run")
        assert registry.catch_up(SECRET) == 0  # the high-water mark did not move


def test_a_finished_job_updates_its_row_and_the_cooldown_counts_from_its_completion(
    journal: Journal, tmp_path: Path
) -> None:
    _submit_first(journal)
    journal.observe(
        [
            JobObservation(job_id="uk-0000000-access", status="complete", updated_at=at(10)),
            JobObservation(job_id="uk-0000000-delete", status="error", updated_at=at(10)),
        ],
        at(10),
    )
    with Registry.open(tmp_path) as registry:
        assert registry.catch_up(SECRET) == 4
        fresh = registry.blocklist(org=None, now=at(10), cooldown_days=30, secret=SECRET)
        later = at(10) + timedelta(days=31)
        old = registry.blocklist(org=None, now=later, cooldown_days=30, secret=SECRET)
        elsewhere = registry.blocklist(org="other", now=at(10), cooldown_days=30, secret=SECRET)
    # access of subject 0 complete, both of subject 1 open; the delete in error never blocks
    assert len(fresh) == 3
    assert len(old) == 2  # the complete one aged out; open ones block whatever their age
    assert len(elsewhere) == 0


def test_the_registry_holds_fingerprints_never_subject_keys(
    journal: Journal, tmp_path: Path
) -> None:
    _submit_first(journal)
    with Registry.open(tmp_path) as registry:
        registry.catch_up(SECRET)
    raw = (tmp_path / "registry.sqlite").read_bytes()
    wal = tmp_path / "registry.sqlite-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert b"subj-0000000" not in raw
    expected = fingerprints(pa.array(["subj-0000000"]), SECRET)
    assert expected.dtype.name == "int64"


def test_the_planning_record_keeps_a_no_dedupe_choice_for_a_planning_done_again(
    tmp_path: Path,
) -> None:
    with Journal.open(tmp_path / "r") as journal:
        journal.begin_planning(
            run_id="r", input_path="in.csv", input_sha256="0", settings={}, at=at(0), dedupe=False
        )
        planning = journal.planning()
    assert planning is not None
    assert planning.dedupe is False


def test_the_blocking_snapshot_follows_every_change_and_a_damaged_one_is_rebuilt(
    journal: Journal, tmp_path: Path
) -> None:
    snapshot = tmp_path / "registry.blocking.arrow"
    with Registry.open(tmp_path) as registry:
        registry.catch_up(SECRET)
        assert not snapshot.exists()  # nothing registered, nothing written
        _submit_first(journal)
        registry.catch_up(SECRET)
        assert snapshot.exists()
        assert len(registry.blocklist(org=None, now=at(5), cooldown_days=30, secret=SECRET)) == 4
        journal.observe(
            [JobObservation(job_id="uk-0000000-access", status="error", updated_at=at(10))],
            at(10),
        )
        registry.catch_up(SECRET)  # the error no longer blocks: the snapshot says so too
        assert len(registry.blocklist(org=None, now=at(11), cooldown_days=30, secret=SECRET)) == 3
        snapshot.write_bytes(b"garbage")
        assert len(registry.blocklist(org=None, now=at(11), cooldown_days=30, secret=SECRET)) == 3
