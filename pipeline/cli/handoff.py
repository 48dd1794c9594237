"""The hand-off commands of the CLI: report, verify and export.

Thin: parse, call :mod:`pipeline.handoff.bundle`, :mod:`pipeline.handoff.manifest` or
:mod:`pipeline.handoff.export`, print one line per fact. Errors are
:class:`~pipeline.errors.PipelineError` subclasses that ``cli.main`` maps to exit codes."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from ..handoff.bundle import write_handoff
from ..handoff.export import FORMATS, TABLES, export_table
from ..handoff.manifest import read_manifest, verify_run
from ..keys import KEY_SECRET_ENV, key_secret
from ..run.damage import lost_results, verify_lines
from .common import Registrar, SubParsers, add_common, check_out_flag


def _run_dir_command(
    sub: SubParsers[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help_text: str,
    description: str,
) -> argparse.ArgumentParser:
    """A subcommand taking RUN_DIR and the common flags, bound to ``handler``."""
    p = sub.add_parser(name, help=help_text, description=description)
    p.add_argument("run_dir", type=Path, help="the run directory")
    add_common(p)
    p.set_defaults(handler=handler)
    return p


def _register_report(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _run_dir_command(
        sub,
        "report",
        _cmd_report,
        help_text="rewrite report.html and manifest.json from a run's report files",
        description="Render RUN_DIR/report.html (one self-contained page) from status.parquet, "
        "products.parquet, rejects.parquet and summary.json, then rewrite RUN_DIR/manifest.json. "
        "The run writes both at every checkpoint; use this to redact keys or refresh deadlines.",
    )
    p.add_argument(
        "--redact-keys",
        action="store_true",
        help=f"show subject keys as keyed hashes (secret from ${KEY_SECRET_ENV})",
    )


def _cmd_report(args: argparse.Namespace) -> int:
    lost = lost_results(args.run_dir)
    if lost:  # a new manifest would forget the lost result: keep the evidence instead
        raise lost[0]
    secret = key_secret(os.environ)
    write_handoff(
        args.run_dir, now=args.clock.utc_now(), redact_keys=args.redact_keys, key_secret=secret
    )
    print(f"report: {args.run_dir / 'report.html'}")
    print(f"manifest: {args.run_dir / 'manifest.json'}")
    return 0


def _register_verify(sub: SubParsers[argparse.ArgumentParser]) -> None:
    _run_dir_command(
        sub,
        "verify",
        _cmd_verify,
        help_text="check a run's files against its manifest.json (exit 1 on any difference)",
        description="Recompute the sha256 of every file RUN_DIR/manifest.json lists (reports, "
        "report.html, result ZIPs) and report each file changed, missing, or not listed; a "
        "file `dsar purge` removed is listed as purged (with its recorded sha256), not "
        "missing. Exit 0: everything matches; 1: differences; 3: no readable manifest.",
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    differences = verify_run(args.run_dir)
    purged = [d for d in differences if not d.failed]
    for line in (str(d) for d in purged) if args.verbose else ():
        print(f"verify: {line}")
    if purged:
        print(
            f"verify: {len(purged)} files removed by dsar purge (their sha256 is in manifest.json)"
        )
    lines = verify_lines(args.run_dir, differences)
    for line in lines:
        print(f"verify: {line}")
    if lines:
        print(f"verify: {len(lines)} difference(s) from manifest.json or damaged file(s)")
        return 1
    files = len(read_manifest(args.run_dir)["files"])
    print(f"verify: ok, {files} files match manifest.json")
    return 0


def _register_export(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = _run_dir_command(
        sub,
        "export",
        _cmd_export,
        help_text="write a run's status, rejects or products table as CSV or JSON Lines",
        description="Export RUN_DIR/status.parquet (or rejects.parquet, products.parquet) for "
        "people who do not read Parquet. CSV text cells beginning with = + - @ (or a tab or "
        "carriage return) get a leading apostrophe against formula injection; times are "
        "ISO-8601 UTC.",
    )
    p.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or jsonl")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    p.add_argument(
        "--table",
        choices=tuple(TABLES),
        default="status",
        help="status (default), rejects or products",
    )


def _cmd_export(args: argparse.Namespace) -> int:
    check_out_flag(args.out, directory=False)
    rows = export_table(args.run_dir, table=args.table, fmt=args.format, out=args.out)
    print(f"export: {rows:,} {args.table} rows to {args.out}")
    return 0


HANDOFF_COMMANDS: list[Registrar] = [_register_report, _register_verify, _register_export]
