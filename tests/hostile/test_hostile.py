"""Hostile inputs: each ends in a clear one-line error or in rejects with reasons, never in a
traceback or an internal error, with the exit code DESIGN.md gives and bounded memory.

The corpus lives in ``tests/hostile/corpus/`` (``python -m tests.hostile.make_corpus`` writes
it); the files too big to commit are made by the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from tests.hostile.make_corpus import (
    CORPUS,
    write_huge_single_line,
    write_many_identity_columns,
    write_ten_thousand_columns,
)
from tests.privacy import scan as privacy

REPO = Path(__file__).resolve().parents[2]
MAX_RSS_MB = 400  # the client's memory budget (issue 5)

# file -> the words the one-line error must contain (exit 3 from validate and run)
UNREADABLE = {
    "binary_garbage.bin": "binary data",
    "binary_garbage.csv": "binary data",
    "gzip_csv_without_extension": "gzip",
    "gzip_csv_named.csv": "gzip",
    "zip_archive_named.csv": "ZIP archive",
    "pdf_named.csv": "PDF",
    "utf16_with_bom.csv": "UTF-16",
    "html_error_page.csv": "required column",
    "empty.csv": "empty",
    "whitespace_only.csv": "empty",
    "bom_only.csv": "empty",
    "header_only.csv": "no data rows",
    "empty.parquet": "no data rows",
    "no_columns.parquet": "required column",
    "truncated.parquet": "not a readable Parquet file",
    "csv_named.parquet": "not a readable Parquet file",
    "nested_types.parquet": "not a readable Parquet file",
    "malformed.json": "not a readable JSON file",
    "array_top_level.json": "'users' array",
    "users_not_objects.json": "not an object",
    "nul_bytes.csv": "not a readable CSV file",
    "mixed_encodings.csv": "not valid UTF-8",
    "invalid_utf8_in_header.csv": "required column",
    "duplicate_headers.csv": "more than once",
    "ragged_rows.csv": "wrong number of fields",
    "unterminated_quote.csv": "not a readable CSV file",
    "no_identity_columns.csv": "required column",
    "only_empty_cells.csv": "no valid row",
    "long_header_names.csv": "header row cannot be read",
}
# file -> {input row: reason code} of the rows it must reject (the others are valid)
REJECTS = {
    "formula_injection.csv": {4: "BAD_EMAIL", 5: "UNKNOWN_ACTION"},
    "control_characters.csv": {0: "BAD_EMAIL", 1: "BAD_EMAIL"},
    "very_long_cell.csv": {0: "VALUE_TOO_LONG"},
    "unknown_actions_and_bad_ids.csv": {0: "UNKNOWN_ACTION", 1: "BAD_EMAIL"},
    "conflicting_rows.csv": {0: "CONFLICTING_ROWS", 1: "CONFLICTING_ROWS"},
}
CLEAN = (
    "parquet_named.csv",
    "sql_and_path_keys.csv",
    "semicolon_crlf_mixed_newlines.csv",
)
_EMAILS = re.compile(rb"[A-Za-z0-9._\x00-\x1f-]{1,64}@example\.org")


def test_the_corpus_holds_at_least_30_files_each_with_an_expected_outcome() -> None:
    files = {p.name for p in CORPUS.iterdir()}
    assert len(files) >= 30
    assert files == set(UNREADABLE) | set(REJECTS) | set(CLEAN)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials and no target: ``dsar run`` uses its embedded emulator."""
    for key in list(os.environ):
        if key.startswith(("ADOBE_", "DSAR_")):
            monkeypatch.delenv(key)


def _register_identities(path: Path) -> None:
    privacy.register(m.decode("latin-1") for m in _EMAILS.findall(path.read_bytes()))


def _dsar(argv: list[str], capsys: Any) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code != 6, f"internal error: {err.strip()[-300:]}"
    return code, err


def _assert_one_line_error(err: str, words: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("dsar: ")]
    assert len(lines) == 1, err[-500:]
    assert words in lines[0]
    assert len(lines[0]) < 400, "the error line is not short"


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_input_gives_one_clear_line_and_exit_3(
    name: str, tmp_path: Path, capsys: Any, clean_env: None
) -> None:
    path = CORPUS / name
    _register_identities(path)
    code, err = _dsar(["validate", str(path), "--out", str(tmp_path / "v")], capsys)
    assert code == 3
    assert len(err.strip().splitlines()) == 1, "validate printed more than one line"
    _assert_one_line_error(err, UNREADABLE[name])
    ws = tmp_path / "ws"
    code, err = _dsar(["run", str(path), "--workspace", str(ws), "--no-wait"], capsys)
    assert code == 3
    _assert_one_line_error(err, UNREADABLE[name])
    runs = list(ws.glob("*/journal.sqlite")) if ws.exists() else []
    if UNREADABLE[name] == "no valid row":
        # the run is kept so that the rejects it names exist; it holds no job
        (journal,) = runs
        assert (journal.parent / "rejects.parquet").exists()
        assert str(journal.parent / "rejects.parquet") in err
        assert pq.read_table(journal.parent / "status.parquet").num_rows == 0
    else:
        assert not runs, "a run was planned from an unreadable file"


def _rejects(path: Path) -> dict[int, str]:
    table = pq.read_table(path, columns=["input_row", "reason_code"]).to_pylist()
    return {r["input_row"]: r["reason_code"] for r in table}


@pytest.mark.parametrize("name", sorted(REJECTS))
def test_bad_rows_are_rejected_with_reasons_and_the_rest_is_run(
    name: str, tmp_path: Path, capsys: Any, clean_env: None
) -> None:
    path = CORPUS / name
    _register_identities(path)
    code, _ = _dsar(["validate", str(path), "--out", str(tmp_path / "v")], capsys)
    assert code == 1
    assert _rejects(tmp_path / "v" / "rejects.parquet") == REJECTS[name]
    ws = tmp_path / "ws"
    code, err = _dsar(["run", str(path), "--workspace", str(ws), "--no-wait"], capsys)
    assert code == 4, err[-300:]  # submitted, not waited for
    (run_dir,) = [p.parent for p in ws.glob("*/journal.sqlite")]
    assert _rejects(run_dir / "rejects.parquet") == REJECTS[name]


@pytest.mark.parametrize("name", CLEAN)
def test_odd_but_valid_input_is_accepted_whole(
    name: str, tmp_path: Path, capsys: Any, clean_env: None
) -> None:
    path = CORPUS / name
    _register_identities(path)
    code, _ = _dsar(["validate", str(path), "--out", str(tmp_path / "v")], capsys)
    assert code == 0


def test_formula_cells_stay_data_in_reports_and_are_defused_in_the_export(
    tmp_path: Path, capsys: Any, clean_env: None
) -> None:
    path = CORPUS / "formula_injection.csv"
    _register_identities(path)
    ws = tmp_path / "ws"
    _dsar(["run", str(path), "--workspace", str(ws), "--no-wait"], capsys)
    (run_dir,) = [p.parent for p in ws.glob("*/journal.sqlite")]
    keys = set(pq.read_table(run_dir / "status.parquet", columns=["subject_key"])[0].to_pylist())
    assert {"=cmd|' /C calc'!A0", "+SUM(1+1)", "@SUM(A1)", "-2+3"} <= keys
    out = tmp_path / "export.csv"
    code, _ = _dsar(["export", str(run_dir), "--out", str(out)], capsys)
    assert code == 0
    for line in out.read_text(encoding="utf-8").splitlines()[1:]:
        first = line.lstrip('"')
        assert not first.startswith(("=", "+", "@", "-")), "a formula reached the export"


def _measured(argv: list[str], tmp_path: Path) -> tuple[int, str, float]:
    """``dsar ARGV`` in a child process: (exit code, stderr, its own peak RSS in MB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADOBE_", "DSAR_"))}
    out = tmp_path / "peak_rss_kib"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.helpers.peak_rss", str(out), *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=100,
        check=False,
    )
    return proc.returncode, proc.stderr, int(out.read_text()) / 1024


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_64_mib_single_line_is_refused_in_one_line_with_bounded_memory(
    tmp_path: Path,
) -> None:
    path = write_huge_single_line(tmp_path / "huge.csv")
    for argv in (
        ["validate", str(path), "--out", str(tmp_path / "v")],
        ["run", str(path), "--workspace", str(tmp_path / "ws"), "--no-wait"],
    ):
        code, err, rss_mb = _measured(argv, tmp_path)
        assert code == 3
        assert "Traceback" not in err
        _assert_one_line_error(err, "no line break")
        assert rss_mb < MAX_RSS_MB, f"{argv[0]}: peak RSS {rss_mb:.0f} MB"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ten_thousand_columns_are_read_with_bounded_memory(tmp_path: Path) -> None:
    wide = write_ten_thousand_columns(tmp_path / "wide.csv", rows=1000)
    code, err, rss_mb = _measured(["validate", str(wide), "--out", str(tmp_path / "v")], tmp_path)
    assert "Traceback" not in err
    assert code == 0, err[-300:]  # 9,998 unmapped columns are ignored (with a warning)
    assert rss_mb < MAX_RSS_MB, f"peak RSS {rss_mb:.0f} MB"
    same = write_many_identity_columns(tmp_path / "ecids.csv")
    code, err, rss_mb = _measured(["validate", str(same), "--out", str(tmp_path / "v2")], tmp_path)
    assert code == 3
    _assert_one_line_error(err, "more than once")
    assert rss_mb < MAX_RSS_MB, f"peak RSS {rss_mb:.0f} MB"
