"""Time is injected everywhere below the CLI: no stage reads the wall clock or waits on it.

Every module of ``pipeline`` outside ``cli/`` (the skin, which may stamp what it prints),
``emulator/`` and ``bench/`` (which keep their own clocks) and ``pipeline/api/clock.py`` (the
one real clock) is walked; a reference to the wall clock or to a real wait fails the test with
the file and line. Time comes from the :class:`pipeline.api.clock.Clock` the client takes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"
EXEMPT_PACKAGES = {"cli", "emulator", "bench"}
CLOCK_MODULE = PIPELINE / "api" / "clock.py"

# module -> the names in it that read the wall clock or wait in real time
WALL_CLOCK: dict[str, set[str]] = {
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "sleep"},
    "datetime": {"now", "utcnow", "today"},  # datetime.now(), date.today()
    "asyncio": {"sleep", "wait_for", "timeout", "timeout_at"},
}
# ``loop.call_later(...)`` / ``loop.time()`` and ``asyncio.wait(..., timeout=...)`` wait on
# the event loop's real clock whatever they are called on
LOOP_TIMERS = {"call_later", "call_at"}


def wall_clock_uses(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) of every direct use of the wall clock or of a real wait in ``source``."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in WALL_CLOCK:
            for alias in node.names:
                if alias.name in WALL_CLOCK[node.module]:
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Attribute):
            if node.attr in LOOP_TIMERS:
                yield node.lineno, f".{node.attr}"
            base = node.value
            name = base.id if isinstance(base, ast.Name) else None
            if isinstance(base, ast.Attribute):  # datetime.datetime.now
                name = base.attr
            module = "datetime" if name in ("datetime", "date") else name
            if module in WALL_CLOCK and node.attr in WALL_CLOCK[module]:
                yield node.lineno, f"{name}.{node.attr}"
        elif isinstance(node, ast.Call):
            func = node.func
            timeout = any(kw.arg == "timeout" for kw in node.keywords)
            if isinstance(func, ast.Attribute) and func.attr == "wait" and timeout:
                yield node.lineno, "asyncio.wait(..., timeout=...)"


def _stage_modules() -> Iterator[Path]:
    for path in sorted(PIPELINE.rglob("*.py")):
        rel = path.relative_to(PIPELINE)
        if rel.parts[0] in EXEMPT_PACKAGES or path == CLOCK_MODULE:
            continue
        yield path


def test_no_stage_reads_the_wall_clock_or_waits_in_real_time_but_through_the_clock() -> None:
    found = [
        f"{path.relative_to(PIPELINE.parent)}:{line}: {what}"
        for path in _stage_modules()
        for line, what in wall_clock_uses(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "use the injected Clock (pipeline/api/clock.py):\n" + "\n".join(found)


def test_the_walk_covers_the_run_stage_and_skips_only_the_exempt_packages() -> None:
    walked = {p.relative_to(PIPELINE).as_posix() for p in _stage_modules()}
    assert {"run/engine.py", "run/runner.py", "run/context.py", "run/status.py"} <= walked
    assert "api/clock.py" not in walked
    assert not any(p.split("/")[0] in EXEMPT_PACKAGES for p in walked)


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC, datetime\nx = datetime.now(UTC)\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "from datetime import date\nx = date.today()\n",
        "import time\nx = time.monotonic()\n",
        "import time\nf = time.time\n",  # a reference is a use: a default argument
        "from time import perf_counter\n",
        "import asyncio\nasync def f():\n    await asyncio.sleep(1)\n",
        "import asyncio\nasync def f(t):\n    await asyncio.wait_for(t, 1)\n",
        "import asyncio\nasync def f(t):\n    await asyncio.wait({t}, timeout=1)\n",
        "import asyncio\nasyncio.get_running_loop().call_later(1, print)\n",
    ],
)
def test_the_walk_finds_each_kind_of_direct_wall_clock_use(source: str) -> None:
    assert list(wall_clock_uses(source)) != []


def test_the_walk_lets_the_injected_clock_through() -> None:
    source = (
        "async def f(clock, tasks):\n"
        "    start = clock.monotonic()\n"
        "    at = clock.utc_now()\n"
        "    await clock.sleep(1)\n"
        "    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)\n"
    )
    assert list(wall_clock_uses(source)) == []
