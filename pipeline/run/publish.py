"""Publishing a run's reports: the files of the run directory, the workspace dataset and the
hand-off, rewritten together from the journal at every checkpoint and at every end.

:func:`publish` is what every command that changes a run calls afterwards (run, resume,
retry, submit, cancel, purge): status.parquet, products.parquet, rejects.parquet and
summary.json (with each org's days at its cap from the workspace's ledger), then the run's
partition of ``WORKSPACE/dataset``, then report.html and manifest.json, whose checksums cover
the others; each file is replaced atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..handoff.bundle import write_handoff
from ..journal.ledger import LEDGER_FILE, Ledger
from ..journal.store import Journal
from ..keys import key_secret
from ..reports.writers import write_reports
from .context import RunOptions
from .recurring import publish_dataset


def publish(
    journal: Journal,
    run_dir: Path,
    *,
    options: RunOptions,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Rewrite every report of the run: the Parquet files and summary.json, then report.html
    and manifest.json (whose checksums cover the others), each atomically; ``now`` (the
    reports' time) comes from the options' clock."""
    now = options.clock.utc_now()
    canary = journal.canary()
    if canary is not None:
        extra = {**(extra or {}), "canary": canary.as_dict()}
    meta = journal.run_info().meta
    workspace = Path(meta.settings["output"]["workspace"])
    with (  # each org's days at its cap, as the workspace's ledger booked them
        Ledger.open(workspace) if (workspace / LEDGER_FILE).exists() else nullcontext()
    ) as ledger:
        write_reports(journal, run_dir, now=now, extra=extra, ledger=ledger)
    publish_dataset(run_dir, workspace, meta.run_id)
    write_handoff(
        run_dir,
        now=now,
        redact_keys=options.redact_keys,
        key_secret=key_secret(options.env),
    )
    # Arrow's allocator keeps freed pages for reuse; a long run's report passes would stack
    # their peaks on each other without handing them back to the system.
    pa.default_memory_pool().release_unused()


__all__ = ["publish"]
