"""dsar export: CSV and JSON Lines round trips of every table, formula-injection escaping, no
identities."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.errors import ConfigError, InputError
from pipeline.handoff.export import escape_cell, export_status, export_table, unescape_cell

from .rundir import HOSTILE_KEYS, SyntheticRun


def _expected(run: SyntheticRun) -> list[dict[str, Any]]:
    return pq.read_table(run.run_dir / "status.parquet").to_pylist()


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("\rx", "'\rx"), ("'quoted", "''quoted"), ("plain", "plain"),
     ("a=b", "a=b"), ("", "")],
)  # fmt: skip
def test_formula_triggers_get_an_apostrophe_and_unescape_restores_them(
    cell: str, escaped: str
) -> None:
    assert escape_cell(cell) == escaped
    assert unescape_cell(escape_cell(cell)) == cell


def test_csv_round_trips_the_status_table(run: SyntheticRun, tmp_path: Path) -> None:
    out = tmp_path / "status.csv"
    assert export_status(run.run_dir, fmt="csv", out=out) == len(_expected(run))
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [dict(zip(header, map(unescape_cell, r), strict=True)) for r in reader]
    expected = _expected(run)
    assert header == list(expected[0])
    assert rows == [{k: _as_text(v) for k, v in r.items()} for r in expected]
    assert out.stat().st_mode & 0o777 == 0o600


def test_csv_defuses_hostile_subject_keys(run: SyntheticRun, tmp_path: Path) -> None:
    out = tmp_path / "status.csv"
    export_status(run.run_dir, fmt="csv", out=out)
    with out.open(newline="", encoding="utf-8") as fh:
        keys = {r["subject_key"] for r in csv.DictReader(fh)}
    for key in HOSTILE_KEYS[1:]:  # =..., +..., @...
        assert key not in keys
        assert "'" + key in keys
    assert HOSTILE_KEYS[0] in keys  # "<script>" is no formula: left alone in CSV
    for cell in (c for k in keys for c in [k]):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_negative_numbers_stay_numbers(run: SyntheticRun, tmp_path: Path) -> None:
    out = tmp_path / "status.csv"
    export_status(run.run_dir, fmt="csv", out=out)
    with out.open(newline="", encoding="utf-8") as fh:
        days = [r["days_left"] for r in csv.DictReader(fh)]
    assert any(d.startswith("-") for d in days)
    assert all(int(d) is not None for d in days if d)


def test_jsonl_round_trips_the_status_table(run: SyntheticRun, tmp_path: Path) -> None:
    out = tmp_path / "status.jsonl"
    assert main(["export", str(run.run_dir), "--format", "jsonl", "--out", str(out)]) == 0
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    expected = [
        {k: _as_text(v) if isinstance(v, datetime) else v for k, v in r.items()}
        for r in _expected(run)
    ]
    assert rows == expected


def test_exports_hold_no_identity_value(run: SyntheticRun, tmp_path: Path) -> None:
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"status.{fmt}"
        assert main(["export", str(run.run_dir), "--format", fmt, "--out", str(out)]) == 0
        text = out.read_text(encoding="utf-8")
        assert not [i for i in run.identities if i in text]
        assert "@example.org" not in text


def test_export_errors_map_to_exit_codes(
    run: SyntheticRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError):
        export_status(run.run_dir, fmt="xlsx", out=tmp_path / "x")
    with pytest.raises(InputError, match=r"status\.parquet: missing"):
        export_status(tmp_path / "nowhere", fmt="csv", out=tmp_path / "x.csv")
    argv = ["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.csv")]
    assert main(argv) == 3
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def _plant_hostile_text(run_dir: Path) -> None:
    """Formula triggers in the text columns of rejects.parquet and products.parquet (the
    products' message column dictionary-encoded, as other Parquet writers store text)."""
    for name in ("rejects.parquet", "products.parquet"):
        table = pq.read_table(run_dir / name)
        assert table.num_rows >= len(HOSTILE_KEYS)
        keys = table.column("subject_key").to_pylist()
        messages = table.column("message").to_pylist()
        for i, hostile in enumerate(HOSTILE_KEYS):
            keys[i], messages[i] = hostile, "-" + hostile
        message = pa.array(messages, pa.string())
        if name == "products.parquet":
            message = message.dictionary_encode()
        table = table.set_column(table.schema.get_field_index("subject_key"), "subject_key",
                                 pa.array(keys, pa.string()))  # fmt: skip
        table = table.set_column(table.schema.get_field_index("message"), "message", message)
        pq.write_table(table, run_dir / name)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("table", ["status", "rejects", "products"])
def test_every_table_round_trips_in_both_formats_and_csv_is_formula_safe(
    run: SyntheticRun, tmp_path: Path, table: str, fmt: str
) -> None:
    _plant_hostile_text(run.run_dir)
    out = tmp_path / f"{table}.{fmt}"
    argv = ["export", str(run.run_dir), "--table", table, "--format", fmt, "--out", str(out)]
    assert main(argv) == 0
    expected = pq.read_table(run.run_dir / f"{table}.parquet").to_pylist()
    assert expected
    if fmt == "jsonl":
        rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert rows == [
            {k: _as_text(v) if isinstance(v, datetime) else v for k, v in r.items()}
            for r in expected
        ]
        return
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cells = list(reader)
    assert header == list(expected[0])
    assert not [c for r in cells for c in r if c.startswith(("=", "+", "@", "\t", "\r"))]
    if table != "status":  # the planted "-..." messages are text: defused, not numbers
        messages = {r[header.index("message")] for r in cells}
        assert {"'-" + hostile for hostile in HOSTILE_KEYS} <= messages
    rows = [dict(zip(header, map(unescape_cell, r), strict=True)) for r in cells]
    assert rows == [{k: _as_text(v) for k, v in r.items()} for r in expected]


def test_an_unknown_table_is_a_usage_error(run: SyntheticRun, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown table"):
        export_table(run.run_dir, table="journal", fmt="csv", out=tmp_path / "x.csv")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run.run_dir), "--table", "journal", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    with pytest.raises(InputError, match=r"rejects\.parquet: missing"):
        export_table(tmp_path / "nowhere", table="rejects", fmt="jsonl", out=tmp_path / "x")
