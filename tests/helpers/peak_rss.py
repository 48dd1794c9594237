"""``python -m tests.helpers.peak_rss OUT ARGS...``: run ``dsar ARGS`` and write its peak RSS.

The peak is the process's own ``VmHWM`` (KiB), read at exit. ``ru_maxrss`` from ``wait4`` is
no use here: Linux carries the forked parent's peak over ``exec``, so a child of a big pytest
process would report the parent's size.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.cli.main import main


def peak_kib() -> int:
    """This process's peak resident set size in KiB (``VmHWM`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    try:
        code = main(sys.argv[2:])
    finally:
        out.write_text(str(peak_kib()), encoding="utf-8")
    sys.exit(code)
