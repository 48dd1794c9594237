"""``dsar export``: a run's tables as CSV or JSON Lines, for people who do not read Parquet.

The tables are ``status`` (the default), ``rejects`` and ``products``: the run directory's
status.parquet, rejects.parquet and products.parquet. Rows stream in record batches
(bounded memory for any run size), every column in file order, converted column-wise with
pyarrow (150,000 rows in about a second).
Times are ISO-8601 UTC with microseconds (``2026-03-10T12:00:00.000000Z``); nulls are empty
CSV cells or JSON ``null``; a list (``input_rows``) is ``1, 2`` in CSV and an array in JSON.

CSV cells are defused against formula injection (a spreadsheet would run ``=HYPERLINK(...)``):
a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading apostrophe, which spreadsheets show as text. A text cell that already begins with an
apostrophe gets one more, so :func:`unescape_cell` (drop one leading apostrophe) restores
every value exactly. Numbers are written as numbers (a negative ``days_left`` stays ``-3``).
JSON Lines is not escaped: it is read by programs, not spreadsheets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..errors import ConfigError, InputError
from ..reports.files import PRODUCTS_FILE, REJECTS_FILE, STATUS_FILE, atomic_file, damaged

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
TABLES = {"status": STATUS_FILE, "rejects": REJECTS_FILE, "products": PRODUCTS_FILE}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_APOSTROPHE = r"^[=+\-@\t\r']"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # Arrow prints the microseconds of %S
_BATCH_ROWS = 50_000


def escape_cell(value: str) -> str:
    """``value`` made safe for a spreadsheet: an apostrophe before a formula trigger."""
    if value.startswith((*FORMULA_PREFIXES, "'")):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """The original text of a cell :func:`escape_cell` wrote."""
    return value[1:] if value.startswith("'") else value


def escape_column(values: pa.Array) -> pa.Array:
    """:func:`escape_cell` over a string array (nulls stay null)."""
    risky = pc.match_substring_regex(values, _NEEDS_APOSTROPHE)
    return pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'"), values, ""), values)


def _plain(column: pa.Array, *, for_csv: bool) -> pa.Array:
    """A column as exported: times as ISO strings; for CSV also lists joined and text escaped."""
    kind = column.type
    if pa.types.is_dictionary(kind):  # a dictionary of strings is text all the same
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_timestamp(kind):
        return pc.strftime(column.cast(pa.timestamp("us", tz="UTC")), format=TIME_FORMAT)
    if not for_csv:
        return column
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pc.binary_join(column.cast(pa.list_(pa.string())), ", ")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return escape_column(column)
    return column


def _batches(path: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if not path.is_file():
        raise InputError(f"{path}: missing (has the run written its reports?)")
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise damaged(path, f"not a readable Parquet file: {exc}") from None
    return pf.schema_arrow, pf.iter_batches(batch_size=_BATCH_ROWS)


def _converted(batch: pa.RecordBatch, *, for_csv: bool) -> pa.RecordBatch:
    columns = [_plain(batch.column(i), for_csv=for_csv) for i in range(batch.num_columns)]
    names = [escape_cell(n) for n in batch.schema.names] if for_csv else batch.schema.names
    return pa.RecordBatch.from_arrays(columns, names=names)


def _write_csv(fh: IO[bytes], schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    header = _converted(pa.RecordBatch.from_pylist([], schema=schema), for_csv=True).schema
    rows = 0
    with pcsv.CSVWriter(fh, header) as writer:  # the header even when there is no row
        for batch in batches:
            writer.write_batch(_converted(batch, for_csv=True))
            rows += batch.num_rows
    return rows


def _write_jsonl(fh: IO[bytes], schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    rows = 0
    for batch in batches:
        records = _converted(batch, for_csv=False).to_pylist()
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
        rows += batch.num_rows
    return rows


def export_table(run_dir: Path, *, table: str = "status", fmt: str, out: Path) -> int:
    """Write one of RUN_DIR's tables (:data:`TABLES`) to ``out`` as ``csv`` or ``jsonl``;
    returns the row count.

    The file is written beside ``out`` and renamed into place (0600: it holds subject keys),
    so a reader never sees half of it. :class:`ConfigError` for an unknown table or format,
    :class:`InputError` when the table's Parquet file is missing or unreadable.
    """
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r} (choose {', '.join(TABLES)})")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (choose csv or jsonl)")
    schema, batches = _batches(run_dir / TABLES[table])
    write = _write_csv if fmt == "csv" else _write_jsonl
    with atomic_file(out) as fh:
        return write(fh, schema, batches)


def export_status(run_dir: Path, *, fmt: str, out: Path) -> int:
    """:func:`export_table` of the status table."""
    return export_table(run_dir, table="status", fmt=fmt, out=out)
