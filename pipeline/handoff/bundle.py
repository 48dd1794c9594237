"""The hand-off of a run: report.html and manifest.json, rewritten at each checkpoint.

:func:`write_handoff` is the one call the runner makes after the Parquet reports and
summary.json are written: it renders report.html from them, then writes manifest.json (whose
checksums include report.html). Both files are replaced atomically.

``--redact-keys`` replaces the subject keys shown in the report (deadline and error tables)
with a keyed hash (:func:`pipeline.keys.key_labeller`) under the secret in ``DSAR_KEY_SECRET``,
or under the documented default :data:`pipeline.keys.DEFAULT_KEY_SECRET` when that variable is
unset. With the default anyone holding a key can recompute its hash, which still hides keys
from a casual reader; set a secret when the keys themselves are sensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..keys import DEFAULT_KEY_SECRET, key_labeller
from ..reports import files as rf
from .html import render
from .manifest import write_manifest
from .reportdata import gather


def write_report(
    run_dir: Path, *, now: datetime, redact_keys: bool = False, key_secret: bytes | None = None
) -> Path:
    """Render ``RUN_DIR/report.html`` from the run's report files, atomically; returns its path."""
    label: Callable[[str], str] = str
    if redact_keys:
        label = key_labeller(key_secret or DEFAULT_KEY_SECRET.encode("utf-8"))
    html = render(gather(run_dir, now=now, key_label=label))
    path = run_dir / rf.REPORT_FILE
    rf.atomic_write(path, html)
    return path


def write_handoff(
    run_dir: Path,
    *,
    now: datetime,
    redact_keys: bool = False,
    key_secret: bytes | None = None,
    api_window: Mapping[str, Any] | None = None,
) -> None:
    """Write ``RUN_DIR/report.html`` then ``RUN_DIR/manifest.json``, each atomically.

    Call after status.parquet, products.parquet, rejects.parquet and summary.json are written
    (and after result ZIPs are moved into ``results/``). ``now`` is the report's clock: the
    deadline columns count from it when status.parquet lacks them. ``api_window`` overrides the
    first/last API call times summary.json records (``{"first_at", "last_at", "source"}``).
    """
    write_report(run_dir, now=now, redact_keys=redact_keys, key_secret=key_secret)
    write_manifest(run_dir, now=now, api_window=api_window)
