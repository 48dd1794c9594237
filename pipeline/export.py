"""``dsar export``: the status table as CSV or JSON Lines, for people who do not read Parquet.

Rows stream from status.parquet in record batches (bounded memory for any run size), every
column in file order. Times are ISO-8601 UTC (``2026-03-10T12:00:00Z``), nulls are empty CSV
cells or JSON ``null``.

CSV cells are defused against formula injection (a spreadsheet would run ``=HYPERLINK(...)``):
a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading apostrophe, which spreadsheets show as text. A text cell that already begins with an
apostrophe gets one more, so :func:`unescape_cell` (drop one leading apostrophe) restores
every value exactly. Numbers are written as numbers (a negative ``days_left`` stays ``-3``).
JSON Lines is not escaped: it is read by programs, not spreadsheets.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ConfigError, InputError
from .runfiles import STATUS_FILE, atomic_text

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_BATCH_ROWS = 20_000


def escape_cell(value: str) -> str:
    """``value`` made safe for a spreadsheet: an apostrophe before a formula trigger."""
    if value.startswith((*FORMULA_PREFIXES, "'")):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """The original text of a cell :func:`escape_cell` wrote."""
    return value[1:] if value.startswith("'") else value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return escape_cell(value)
    return str(value)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _batches(run_dir: Path) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    path = run_dir / STATUS_FILE
    if not path.is_file():
        raise InputError(f"{path}: missing (has the run written its reports?)")
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: unreadable Parquet ({exc})") from None
    return list(pf.schema_arrow.names), pf.iter_batches(batch_size=_BATCH_ROWS)


def _write_csv(fh: IO[str], names: list[str], batches: Iterator[pa.RecordBatch]) -> int:
    writer = csv.writer(fh, lineterminator="\r\n")
    writer.writerow([escape_cell(n) for n in names])
    rows = 0
    for batch in batches:
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for row in zip(*columns, strict=True):
            writer.writerow([_text(v) for v in row])
        rows += batch.num_rows
    return rows


def _write_jsonl(fh: IO[str], names: list[str], batches: Iterator[pa.RecordBatch]) -> int:
    rows = 0
    for batch in batches:
        for record in batch.to_pylist():
            fh.write(orjson.dumps(record, option=orjson.OPT_UTC_Z).decode())
            fh.write("\n")
        rows += batch.num_rows
    return rows


def export_status(run_dir: Path, *, fmt: str, out: Path) -> int:
    """Write RUN_DIR's status table to ``out`` as ``csv`` or ``jsonl``; returns the row count.

    The file is written beside ``out`` and renamed into place (0600: it holds subject keys),
    so a reader never sees half of it. :class:`ConfigError` for an unknown format,
    :class:`InputError` when status.parquet is missing or unreadable.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (choose csv or jsonl)")
    names, batches = _batches(run_dir)
    write = _write_csv if fmt == "csv" else _write_jsonl
    with atomic_text(out) as fh:
        return write(fh, names, batches)
