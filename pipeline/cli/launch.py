"""The ``dsar`` entry point: the command line, with interrupts handled from the first instant.

SIGINT and SIGTERM before the run loop takes them over (while Python imports dsar, loads the
settings or plans the input) end dsar with one line and exit 4, never a traceback. This module
imports nothing heavy itself: :mod:`pipeline.cli.main` is imported inside the guard.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

INTERRUPTED_EXIT = 4  # DESIGN.md: paused with work pending (a signal)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dsar`` with ``argv``; an interrupt anywhere outside the run loop exits 4."""
    # While dsar's libraries load (seconds on a busy machine), nothing has been written yet:
    # a signal ends the process at once. An exception raised instead could surface inside a
    # compiled module's initialisation, which can crash the interpreter rather than unwind.
    # A signal the parent ignores (a background job of a shell) stays ignored.
    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]
    for sig in handled:
        signal.signal(sig, _exit_at_once)
    try:
        from .main import main as cli_main
    finally:
        # from now on SIGTERM (a scheduler stopping the job) means what SIGINT means
        for sig in handled:
            signal.signal(sig, signal.default_int_handler)
    try:
        return cli_main(argv)
    except KeyboardInterrupt:
        print("dsar: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT


def _exit_at_once(_signum: int, _frame: object) -> None:
    os.write(2, b"dsar: interrupted\n")
    os._exit(INTERRUPTED_EXIT)


def run() -> None:
    """The console script: :func:`main`, then exit with its code.

    A paused run (exit 4, e.g. after a signal) has journalled and closed everything by then:
    the interpreter's teardown, half a second of module finalisation on a busy machine, is
    skipped so that a signal stops dsar promptly.
    """
    code = main()
    if code == INTERRUPTED_EXIT:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)
