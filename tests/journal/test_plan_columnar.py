"""The plan written from columnar batches holds, row for row and byte for byte, what the typed
writer stores: readers cannot tell which way a journal was planned."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.errors import JournalError
from pipeline.input.batching import USER_SCHEMA, BatchFrame, stored_json
from pipeline.input.dedupe import BlockingChunk, Blocklist
from pipeline.input.planning import Plan, plan_input
from pipeline.journal.blobs import materialise_all
from pipeline.journal.schema import JOURNAL_FILE, SCHEMA_VERSION
from pipeline.journal.store import Journal
from pipeline.keys import fingerprints, key_secret
from pipeline.models import PlannedBatch
from pipeline.run.canary import cut_canary
from pipeline.settings import Settings
from tests.helpers.input import org_table, settings_with
from tests.helpers.plans import iter_plan, meta, old_plan

TABLES = ("run", "batch", "user", "job", "skipped", "plan_users")
CRM = {"namespace": "crmId", "type": "custom"}


def _settings(users_per_request: int = 3) -> Settings:
    return settings_with(
        orgs=[org_table("eu"), org_table("us", ["analytics"]), org_table("apac")],  # type: ignore[arg-type]
        job={"org": "eu"},
        input={"columns": {"crm_id": CRM}},
        limits={"users_per_request": users_per_request},
    )


def _mixed_file(path: Path) -> Path:
    """Multi-identity subjects, access+delete, three orgs and the default one, repeated rows
    that merge, a subject split over parts, received times, a reject, and identity values that
    JSON must escape."""
    header = "subject_key,email,ecid,phone,crm_id,action,regulation,received_at,org\n"
    rows = [
        "s01,a@x.org,,,,access,gdpr,2026-09-01,eu",
        "s02,b@x.org,12345678901234567890123456789012345678,,,access+delete,gdpr,,us",
        "s03,c@x.org,,+15551234567,CRM-1,delete,ccpa,2026-09-03,apac",
        's04,d@x.org,,,"CR""M\\2 é",access+delete,gdpr,2026-09-04,',
        "s05,e@x.org,,,,access,gdpr,,us",
        "s01,a2@x.org,,,,access,gdpr,2026-09-01,eu",  # merges into s01: two identities
        "s06,f@x.org,,,,opt-out-of-sale,ccpa,,eu",
        "s07,not-an-email,,,,access,gdpr,,eu",  # rejected
        "s08,h@x.org,,,,access+delete,lgpd_bra,2026-09-08,apac",
        "s09,i@x.org,,,,access+delete,gdpr,,us",
        "s10,j@x.org,,,,access,gdpr,,eu",
        "s11,k@x.org,,,,access+delete,gdpr,,eu",
        "s12,l@x.org,,,,delete,gdpr,,us",
    ]
    rows += [f"s13,m{i}@x.org,,,,access+delete,gdpr,,apac" for i in range(12)]  # split
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _blocklist() -> Blocklist:
    """Earlier jobs: s02's access, s09's access and delete, s05's access: skipped by dedupe."""

    def chunk(action: str, keys: list[str]) -> BlockingChunk:
        return BlockingChunk(
            action=action,
            regulation="gdpr",
            run_id="earlier",
            fingerprints=fingerprints(pa.array(keys), key_secret({})),
            job_ids=pa.array([f"job-{k}-{action}" for k in keys]),
        )

    return Blocklist.build(
        [chunk("access", ["s02", "s09", "s05"]), chunk("delete", ["s09"])], secret=key_secret({})
    )


def _journal_of(
    tmp_path: Path,
    name: str,
    source: Path,
    batches: Callable[[Plan], Iterable[BatchFrame | PlannedBatch]],
    settings: Settings | None = None,
) -> dict[str, list[tuple[Any, ...]]]:
    settings = settings or _settings()
    run_dir = tmp_path / name
    with (
        plan_input(
            source,
            settings,
            run_id="run-7",
            rejects_path=run_dir / "rejects.parquet",
            env={},
            blocklist=_blocklist(),
        ) as plan,
        Journal.open(run_dir) as journal,
    ):
        journal.write_plan(meta(rows=plan.summary.rows), batches(plan), rejects_count=1,
                           skipped=plan.skipped)  # fmt: skip
        deferred = _deferred(journal)
        with journal._tx() as c:
            materialise_all(c)
    conn = sqlite3.connect(run_dir / JOURNAL_FILE)
    try:
        tables = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}
    finally:
        conn.close()
    return {**tables, "deferred": [deferred]}


def _deferred(journal: Journal) -> tuple[int, ...]:
    """(user rows, job rows, deferred records, batches) as the plan left them."""
    return tuple(
        journal._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("user", "job", "plan_users", "batch")
    )


def test_a_plan_written_from_columns_equals_the_typed_plan_byte_for_byte(tmp_path: Path) -> None:
    source = _mixed_file(tmp_path / "mixed.csv")
    typed = _journal_of(tmp_path, "typed", source, lambda p: p.batches())
    stored = _journal_of(tmp_path, "stored", source, lambda p: p.frames(stored=True))
    frames = _journal_of(tmp_path, "frames", source, lambda p: p.frames())
    # a columnar plan writes no user or job row, one deferred record per batch; its records
    # materialised are the typed plan's rows
    batches = len(typed["batch"])
    assert typed.pop("deferred") == [(len(typed["user"]), len(typed["job"]), 0, batches)]
    assert stored.pop("deferred") == [(0, 0, batches, batches)]
    assert frames.pop("deferred") == [(0, 0, batches, batches)]
    assert stored == typed
    assert frames == typed
    # the file holds what the test is about
    conn = sqlite3.connect(tmp_path / "typed" / JOURNAL_FILE)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(batch)")]
    finally:
        conn.close()
    orgs = {row[columns.index("org")] for row in typed["batch"]}
    assert orgs == {"eu", "us", "apac"}
    identities = [row[5] for row in typed["user"]]
    assert any(ids.count("],[") >= 1 for ids in identities)  # several identities
    assert any('\\"' in ids and "é" in ids for ids in identities)  # escaped by JSON
    assert any(row[3] > 0 for row in typed["user"])  # a split subject's second part
    assert {row[2] for row in typed["job"]} == {"access", "delete", "opt-out-of-sale"}
    assert len(typed["skipped"]) == 4
    assert len(typed["job"]) > len(typed["user"])  # access+delete users


def test_a_canary_cut_of_columnar_batches_writes_what_the_typed_cut_writes(
    tmp_path: Path,
) -> None:
    source = _mixed_file(tmp_path / "mixed.csv")
    settings = _settings(users_per_request=4)
    typed = _journal_of(tmp_path, "typed", source, lambda p: cut_canary(p.batches(), 2), settings)
    stored = _journal_of(
        tmp_path, "stored", source, lambda p: cut_canary(p.frames(stored=True), 2), settings
    )
    assert stored.pop("deferred") == [(0, 0, len(typed["batch"]), len(typed["batch"]))]
    typed.pop("deferred")
    assert stored == typed
    assert any(row[1].endswith("r") for row in typed["batch"])  # the cut happened


def test_the_stored_json_of_an_empty_table_is_empty() -> None:
    identities, input_rows = stored_json(USER_SCHEMA.empty_table())
    assert len(identities) == len(input_rows) == 0


def test_a_version_8_journal_keeps_its_plan_and_its_unique_user_keys_at_version_9(
    tmp_path: Path,
) -> None:
    before = old_plan(tmp_path, 8, 5, "user")
    with Journal.open(tmp_path) as j:
        assert j._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        assert j._conn.execute("SELECT * FROM user ORDER BY uid").fetchall() == before
        with pytest.raises(sqlite3.IntegrityError, match=r"user\.user_key"):
            j._conn.execute(
                "INSERT INTO user SELECT uid + 100, user_key, subject_key, part, batch_seq,"
                " identities, input_rows, received_at FROM user"
            )


def test_a_repeated_user_key_fails_the_plan_whole_though_the_index_is_built_at_the_end(
    tmp_path: Path,
) -> None:
    plan = list(iter_plan(4, per_batch=2))
    again = dataclasses.replace(plan[0], batch_id="b00009")
    with Journal.open(tmp_path) as j:
        with pytest.raises(JournalError, match=r"user\.user_key"):
            j.write_plan(meta(), [*plan, again], rejects_count=0)
        assert not j.has_plan
        names = {r[0] for r in j._conn.execute("SELECT name FROM sqlite_master")}
        assert {"user_by_key", "user_by_batch", "job_by_state"} <= names
