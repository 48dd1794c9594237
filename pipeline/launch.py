"""The ``dsar`` entry point: the command line, with interrupts handled from the first instant.

SIGINT and SIGTERM before the run loop takes them over (while Python imports dsar, loads the
settings or plans the input) end dsar with one line and exit 4, never a traceback. This module
imports nothing heavy itself: :mod:`pipeline.cli` is imported inside the guard.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

INTERRUPTED_EXIT = 4  # DESIGN.md: paused with work pending (a signal)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dsar`` with ``argv``; an interrupt anywhere outside the run loop exits 4."""
    # SIGTERM (a scheduler stopping the job) means what SIGINT means
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from .cli import main as cli_main

        return cli_main(argv)
    except KeyboardInterrupt:
        print("dsar: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT


def run() -> None:
    """The console script: :func:`main`, then exit with its code."""
    sys.exit(main())
