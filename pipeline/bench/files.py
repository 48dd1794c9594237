"""Write synthetic subject files in chunks (bounded memory at any size)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .synth import subjects

CHUNK_ROWS = 500_000


def write_subjects(
    path: Path,
    rows: int,
    *,
    seed: int = 7,
    dirty: float = 0.05,
    fmt: str | None = None,
    orgs: int = 0,
) -> Path:
    """Write ``rows`` synthetic wide-layout rows to ``path`` as CSV or Parquet (by suffix);
    ``orgs``: with an ``org`` column naming one of that many orgs (see :mod:`.synth`)."""
    fmt = fmt or ("parquet" if path.suffix == ".parquet" else "csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: pcsv.CSVWriter | pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, CHUNK_ROWS):
            table = subjects(
                min(CHUNK_ROWS, rows - start), seed=seed, dirty=dirty, start=start, orgs=orgs
            )
            if writer is None:
                writer = (
                    pq.ParquetWriter(path, table.schema)
                    if fmt == "parquet"
                    else pcsv.CSVWriter(
                        path, table.schema, write_options=pcsv.WriteOptions(quoting_style="needed")
                    )
                )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path
