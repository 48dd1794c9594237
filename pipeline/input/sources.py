"""Stage 1: stream the rows of an input file as Arrow record batches of strings.

Reads CSV (pyarrow's streaming reader: UTF-8 with or without BOM, delimiter detected or
configured, CRLF, quoted newlines), Parquet (``ParquetFile.iter_batches``) and the JSON upload
format of the Privacy Service UI (:mod:`pipeline.input.upload`). Every column arrives as a string
column, so that later stages see one type. Memory is bounded by the batch size, not the file
size (JSON upload files, small by nature, are read whole when opened).

Row numbers (``input_row``) are 0-based data rows: the header is not a row, a quoted newline
does not start one. For the JSON upload format a row is one ``userIDs`` entry in file order (a
user without identities is one row with no identity).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..errors import InputError
from .upload import JSON_COLUMNS, Upload, read_upload

_DELIMITERS = ",;\t|"
# The streaming CSV reader reads ahead about 30 blocks on its threads: a small block keeps that
# bounded (~40 MB); small batches are then joined up to ``batch_rows`` rows.
CSV_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Source:
    """An opened input: its format, its column names and a way to stream its batches."""

    path: Path
    format: str  # "csv" | "parquet" | "json"
    columns: tuple[str, ...]
    delimiter: str | None = None
    estimated_rows: int = 0  # exact for Parquet and JSON, from the first 64 KiB for CSV
    upload: Upload | None = field(default=None, repr=False, compare=False)  # JSON: parsed whole

    def batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Record batches whose columns are all strings, in file order."""
        if self.format == "parquet":
            return _parquet_batches(self.path, batch_rows)
        if self.upload is not None:
            return iter(self.upload.rows.to_batches(max_chunksize=batch_rows))
        return _csv_batches(self, batch_rows)


def open_source(path: Path, *, delimiter: str | None = None) -> Source:
    """Open ``path``, detect its format and read its column names.

    Raises :class:`InputError` when the file is missing, empty or not a readable table.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if not head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise InputError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if head.startswith(b"PAR1") or suffix in (".parquet", ".pq"):
        try:
            pfile = pq.ParquetFile(path)
            names, rows = tuple(pfile.schema_arrow.names), int(pfile.metadata.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
        return _named_once(Source(path, "parquet", names, estimated_rows=rows))
    if suffix == ".json" or head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        upload = read_upload(path)
        rows = upload.rows.num_rows
        return Source(path, "json", JSON_COLUMNS, estimated_rows=rows, upload=upload)
    kind = _not_text(head)
    if kind:
        raise InputError(f"{path}: {kind}, not a CSV, Parquet or JSON table")
    if b"\n" not in head and len(head) == HEAD_BYTES:
        head = _long_header(path)
    return _named_once(_open_csv(path, head, delimiter))


HEAD_BYTES = 65_536
MAX_HEADER_BYTES = 8 * 1024**2


def _long_header(path: Path) -> bytes:
    """The start of ``path`` up to its first line break (a header of many columns), read in
    blocks; an :class:`InputError` when there is none in the first ``MAX_HEADER_BYTES``."""
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
        while b"\n" not in head and len(head) < MAX_HEADER_BYTES:
            block = fh.read(1 << 20)
            if not block:
                return head
            head += block
    if b"\n" not in head:
        raise InputError(f"{path}: no line break in the first 8 MiB: not a table of rows")
    return head


# Magic numbers of what people save by mistake instead of a table, and what to do about it.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook? export the sheet as CSV)"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
    (b"%PDF", "a PDF document"),
)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x1b")


def _not_text(head: bytes) -> str | None:
    """What ``head`` is when it is plainly not delimited text (binary, compressed...)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return "binary data" if control > len(head) // 20 else None


def _named_once(source: Source) -> Source:
    """``source``, or an :class:`InputError` when two columns share a name."""
    twice = sorted(n for n, count in Counter(source.columns).items() if count > 1)
    if twice:
        names = ", ".join(repr(n[:64]) for n in twice[:5])
        raise InputError(f"{source.path}: column names used more than once: {names}")
    return source


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _open_csv(path: Path, head: bytes, delimiter: str | None) -> Source:
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    header_line = text.splitlines()[0] if text else ""
    if delimiter is None:
        counts = {d: header_line.count(d) for d in _DELIMITERS}
        delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    try:
        names = next(csv.reader([header_line], delimiter=delimiter), [])
    except csv.Error as exc:  # e.g. a column name longer than the csv module's 128 KiB limit
        raise InputError(f"{path}: the header row cannot be read ({exc})") from None
    names = [n.strip() for n in names]
    if not any(names):
        raise InputError(f"{path}: no header row")
    lines = max(1, head.count(b"\n"))
    rows = path.stat().st_size * lines // max(1, len(head))
    return Source(path, "csv", tuple(names), delimiter, estimated_rows=rows)


def _csv_batches(source: Source, batch_rows: int) -> Iterator[pa.RecordBatch]:
    read = pcsv.ReadOptions(
        column_names=list(source.columns),
        skip_rows=1,
        block_size=CSV_BLOCK_BYTES,
    )
    parse = pcsv.ParseOptions(delimiter=source.delimiter or ",", newlines_in_values=True)
    convert = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in source.columns},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=True,
    )
    try:
        reader = pcsv.open_csv(
            source.path, read_options=read, parse_options=parse, convert_options=convert
        )
        yield from rebatch(reader, rows_per_batch(batch_rows, len(source.columns)))
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "utf8" in message.lower():
            row = find_invalid_utf8_row(source.path, source.delimiter or ",")
            where = f"data row {row}" if row is not None else "a data row"
            raise InputError(
                f"{source.path}: {where} is not valid UTF-8 (0-based, header excluded)"
            ) from None
        raise InputError(
            f"{source.path}: not a readable CSV file ({_csv_reason(message)})"
        ) from None


def _csv_reason(message: str) -> str:
    """The parser's complaint without the row text it quotes (the row may hold identities)."""
    found = re.search(r"Expected \d+ columns?, got \d+", message)
    if found:
        return f"a row has the wrong number of fields: {found.group(0).lower()}"
    return "the CSV parser refused it"


# A batch holds at most this many cells: a file of 10,000 columns gets short batches, so that
# memory follows the batch size in cells rather than in rows.
MAX_BATCH_CELLS = 1_000_000


def rows_per_batch(batch_rows: int, columns: int) -> int:
    """``batch_rows``, fewer for a wide input (at most :data:`MAX_BATCH_CELLS` cells)."""
    return max(1, min(batch_rows, MAX_BATCH_CELLS // max(1, columns)))


def rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Join small batches into batches of about ``rows`` rows (never more than one extra)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield _joined(pending)
            pending, count = [], 0
    if pending:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def find_invalid_utf8_row(path: Path, delimiter: str) -> int | None:
    """The 0-based data row holding the first invalid UTF-8 byte (slow path, errors only)."""
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        for index, record in enumerate(reader):
            if any(_has_escape(cell) for cell in record):
                return index - 1 if index > 0 else 0
    return None


def _has_escape(cell: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in cell)


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        # no pre-buffering of whole row groups: memory follows the batch, not the row group
        pfile = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        for batch in pfile.iter_batches(batch_size=batch_rows):
            if batch.num_rows:
                yield pa.RecordBatch.from_arrays(
                    [as_strings(col) for col in batch.columns], names=batch.schema.names
                )
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def as_strings(column: pa.Array) -> pa.Array:
    """The column as strings: integers in decimal, timestamps in ISO-8601, nulls kept."""
    kind = column.type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return column.cast(pa.string())
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            column = pc.assume_timezone(column, "UTC")
        seconds = column.cast(pa.timestamp("s", tz="UTC"), safe=False)
        return pc.strftime(seconds, "%Y-%m-%dT%H:%M:%SZ")
    if pa.types.is_dictionary(kind):
        return as_strings(column.cast(kind.value_type))
    if pa.types.is_floating(kind):
        # integral floats (an integer column with NaN written by pandas) lose the ".0"
        whole = pc.equal(pc.floor(column), column)
        as_int = pc.if_else(whole, column, pa.scalar(None, kind)).cast(pa.int64(), safe=False)
        return pc.coalesce(as_int.cast(pa.string()), column.cast(pa.string()))
    return column.cast(pa.string())
