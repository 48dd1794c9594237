"""The workspace registry: derived from the run journals, idempotent, cooldown-aware."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from pipeline.journal.models import JobObservation, RunIntent
from pipeline.journal.registry import Registry, journal_jobs
from pipeline.journal.store import Journal
from pipeline.keys import fingerprints, key_secret
from pipeline.models import Action
from tests.helpers.plans import at, iter_plan, meta

A, D = Action.ACCESS, Action.DELETE
SECRET = key_secret({})


def _submit_first(journal: Journal) -> None:
    journal.record_intent("b00001", "d", at(1))
    jobs = {(k, a): f"{k}-{a.value}" for k in ("uk-0000000", "uk-0000001") for a in (A, D)}
    journal.mark_submitted("b00001", "req-1", jobs, at(2))


def test_committed_jobs_are_registered_by_id_and_a_second_sync_is_free(
    journal: Journal, tmp_path: Path
) -> None:
    with Registry.open(tmp_path) as registry:
        assert registry.catch_up(SECRET) == 10  # the live plan's 10 jobs, none sent yet
        assert registry.jobs() == set()
        assert len(registry.pending()) == 10
        _submit_first(journal)
        assert registry.catch_up(SECRET) == 8  # 4 sent: their pending rows go, their ids come
        assert registry.jobs() == journal_jobs(tmp_path / "run")
        assert len(registry.pending()) == 6
        assert registry.catch_up(SECRET) == 0  # the high-water mark did not move


def test_jobs_a_live_run_has_not_sent_block_until_it_sends_or_cancels_them(
    journal: Journal, tmp_path: Path
) -> None:
    # a run paused at the daily cap submits its pending jobs on its next resume: a run of
    # tonight's cumulative export must not plan them again
    with Registry.open(tmp_path) as registry:
        registry.catch_up(SECRET)
        blocking = registry.blocklist(org=None, now=at(5), cooldown_days=30, secret=SECRET)
        assert len(blocking) == 10
        assert blocking.job_ids.null_count == 10  # not sent: no job id to name, only the run
        journal.cancel(at(6), stop_polling=False)
        assert registry.catch_up(SECRET) == 10
        assert registry.pending() == set()
        assert len(registry.blocklist(org=None, now=at(6), cooldown_days=30, secret=SECRET)) == 0


def test_a_preview_registers_nothing_until_it_is_submitted(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run") as journal:
        journal.write_plan(
            meta(rows=5), iter_plan(5, per_batch=2), rejects_count=0, intent=RunIntent.PREVIEW
        )
        with Registry.open(tmp_path) as registry:
            assert registry.catch_up(SECRET) == 0  # a dry run is only ever sent by a new act
            journal.go_live(at(1), org_id=None)
            assert registry.catch_up(SECRET) == 10


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
        assert registry.catch_up(SECRET) == 10
        fresh = registry.blocklist(org=None, now=at(10), cooldown_days=30, secret=SECRET)
        later = at(10) + timedelta(days=31)
        old = registry.blocklist(org=None, now=later, cooldown_days=30, secret=SECRET)
        elsewhere = registry.blocklist(org="other", now=at(10), cooldown_days=30, secret=SECRET)
    # access of subject 0 complete, both of subject 1 open, 6 jobs not sent yet; the delete in
    # error never blocks
    assert len(fresh) == 9
    assert len(old) == 8  # the complete one aged out; open ones block whatever their age
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
        assert not snapshot.exists()
        registry.catch_up(SECRET)
        assert snapshot.exists()  # the plan's pending jobs
        _submit_first(journal)
        registry.catch_up(SECRET)
        assert len(registry.blocklist(org=None, now=at(5), cooldown_days=30, secret=SECRET)) == 10
        journal.observe(
            [JobObservation(job_id="uk-0000000-access", status="error", updated_at=at(10))],
            at(10),
        )
        registry.catch_up(SECRET)  # the error no longer blocks: the snapshot says so too
        assert len(registry.blocklist(org=None, now=at(11), cooldown_days=30, secret=SECRET)) == 9
        snapshot.write_bytes(b"garbage")
        assert len(registry.blocklist(org=None, now=at(11), cooldown_days=30, secret=SECRET)) == 9


def test_a_version_1_registry_is_rebuilt_from_the_journals_with_each_jobs_own_org(
    journal: Journal, tmp_path: Path
) -> None:
    import sqlite3

    from pipeline.journal import registry as reg
    from pipeline.journal.schema import open_database

    _submit_first(journal)
    path = tmp_path / reg.REGISTRY_FILE
    open_database(path, target=1, migrations=reg._MIGRATIONS).close()  # what dsar 1 made
    with sqlite3.connect(path) as conn:  # a row of the run's org, as version 1 recorded it
        conn.execute(
            "INSERT INTO submission VALUES ('r', 'stale', 1, 'access', 'gdpr', 'x', 0, NULL,"
            " 'open')"
        )
        conn.execute("INSERT INTO synced VALUES ('r', ?, 4, 0, 6)", (str(tmp_path / "run"),))
    with Registry.open(tmp_path) as registry:
        assert registry.jobs() == set()  # the derived rows went with the migration
        assert registry.catch_up(SECRET) == 10  # and the journal records them again
        assert registry.jobs() == journal_jobs(tmp_path / "run")
