"""Generate synthetic data subjects (seeded): the committed samples and benchmark files.

    python data/generate.py                      # rewrites data/sample_subjects.{csv,parquet}
    python data/generate.py --rows 2000000 --out /tmp/subjects.csv --dirty 0.05

Wide layout: subject_key, email, ecid (38 digits), phone (E.164), crm_id (a custom identity:
map it in [input.columns], e.g. crm_id = { namespace = "crmId", type = "custom" }), action,
regulation, received_at. A share of rows (--dirty) breaks one rule each, so that every
common reject reason shows up; a few rows repeat an earlier row and merge into it.
The same seed and row count always give the same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.bench.files import write_subjects

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    """Write the requested file(s); with no ``--out``, the committed samples."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="rows to write (default 200)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--dirty", type=float, default=0.12, help="share of broken rows")
    parser.add_argument("--out", type=Path, help="a .csv or .parquet file (default: samples)")
    args = parser.parse_args(argv)
    targets = (
        [args.out] if args.out else [HERE / "sample_subjects.csv", HERE / "sample_subjects.parquet"]
    )
    for target in targets:
        write_subjects(target, args.rows, seed=args.seed, dirty=args.dirty)
        print(f"wrote {args.rows:,} rows to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
