"""The chaos driver: ``python -m pipeline run`` SIGKILLed at points of observed state, resumed.

:func:`chaos_run` starts an emulator process, writes an input, starts ``dsar run`` in a child
process and, for each kill point of a seeded schedule (:mod:`tests.reliability.killpoints`),
watches the run's spill folder and journal and SIGKILLs the process the first time the point's
condition holds: while it plans, while a POST is in flight after k of N batches, while the
resumed run reconciles, while it polls, while it downloads. Each kill is followed by
``dsar resume RUN_DIR``, which plans again a run killed while planning (with ``restart="run"``
or ``"all"``, such a run is restarted by ``dsar run INPUT --run-dir RUN_DIR`` or
``dsar resume --all WORKSPACE`` instead). A last resume runs to the end. A ``polling`` or
``downloading`` point the journal left by the previous kill can no longer reach (no job open,
no result waiting) is recorded in :attr:`ChaosResult.unreachable` and skipped, not waited for.
No kill is placed by the clock, so the points land alike on a fast and on a loaded machine.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bench.emuproc import EmulatorProcess
from tests.helpers.run import (
    FAST_SIMULATION,
    ORG_CLIENTS,
    org_tables,
    write_config,
    write_subjects,
)
from tests.reliability.checks import NO_PRODUCT_ERRORS, registry_disagreement
from tests.reliability.killpoints import KillPoint, Observed, RunWatch, choose, schedule

REPO = Path(__file__).resolve().parents[2]
# Guards against a stuck run, not placements: the last segment may take minutes on a loaded
# 2-core machine, and a kill point waits as long as the journal keeps changing.
FINAL_TIMEOUT_S = 900.0
STALL_S = 120.0  # no commit to the journal for this long while waiting for a kill point: stuck
# One access job in ten: downloads are killed too, without making the run slow.
CHAOS_ACTIONS = ("delete",) * 9 + ("access",)
# Every reservation a kill leaves behind is settled from the journal when the run resumes (and
# an interrupted POST's by reconciliation), so the ledger ends booking exactly the jobs created;
# the margin over the input only covers reservations of POSTs in flight at a kill (at most
# max_in_flight batches of 100), held until the resumed run settles them.
DAILY_CAP = 21_000
EARLY_FINISHES = 3  # a run that pauses (exit 4) more often than this between kills is stuck


@dataclass
class ChaosResult:
    """What a chaos run did and left behind."""

    run_dir: Path
    n_rows: int
    exit_code: int
    kills: int = 0
    finished_early: int = 0
    points: list[str] = field(default_factory=list)  # the kill points that landed, in order
    # wanted points no state after the previous kill could hold (polling/downloading once the
    # journal shows no job open, and no result waiting): handed out so by choose(), not killed
    unreachable: list[str] = field(default_factory=list)
    jobs_at_kill: list[int] = field(default_factory=list)  # the emulator's jobs at each kill
    stats: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""
    identities: list[str] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)  # spill folders and temp files at the end
    # after each kill: jobs the registry holds that the journal lacks (must be 0), then both
    # differences once the registry caught up (must be 0, 0); and both at the end of the run
    registry_at_kills: list[tuple[int, int, int]] = field(default_factory=list)
    registry_at_end: tuple[int, int] = (-1, -1)


def _child_env(emu_env: Mapping[str, str], reconcile: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSAR_", "ADOBE_"))}
    env.update(emu_env)
    env["PYTHONPATH"] = str(REPO)
    if not reconcile:
        env["DSAR_UNSAFE_NO_RECONCILE"] = "1"
    return env


class _Segments:
    """Starts dsar children one after the other, their output appended to one log."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log

    def start(self, args: list[str]) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "pipeline", *args],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )


def _wait_for(proc: subprocess.Popen[bytes], point: KillPoint, watch: RunWatch) -> bool:
    """Poll the run until ``point`` holds (True) or the process exits (False); fail if the
    journal sees no commit for ``STALL_S`` meanwhile (however slowly, a live run commits)."""
    seen = Observed()
    version = -1
    stalled_at = time.monotonic() + STALL_S
    while time.monotonic() < stalled_at:
        seen = watch.observe(jobs=point.jobs)
        if point.holds(seen):
            return True
        if seen.version != version:
            version, stalled_at = seen.version, time.monotonic() + STALL_S
        try:
            proc.wait(timeout=point.poll_s)
        except subprocess.TimeoutExpired:
            continue
        return False
    proc.kill()
    proc.wait(30)
    raise AssertionError(f"kill point {point.name}: no progress in {STALL_S} s: {seen}")


def chaos_run(
    tmp_path: Path,
    *,
    n: int,
    kills: int,
    seed: int,
    reconcile: bool = True,
    ambiguous_post_rate: float = 0.0,
    points: Sequence[str] | None = None,
    restart: str = "resume",
    orgs: tuple[str, ...] = (),
) -> ChaosResult:
    """Run ``n`` subjects to the end through ``kills`` SIGKILLs; see the module docstring.

    ``points`` overrides the seeded schedule (its length is then the number of kills). With
    ``orgs`` (names of :data:`~tests.helpers.run.ORG_CLIENTS`) the emulator serves one client
    per org, the config has one ``[[orgs]]`` table each and the rows are dealt to them.
    """
    rng = random.Random(seed)
    wanted = list(points) if points is not None else schedule(kills, rng)
    emulator = {
        "seed": seed,
        "limits": {"requests_per_second": 0, "daily_job_cap": DAILY_CAP},
        "simulation": {**FAST_SIMULATION, **NO_PRODUCT_ERRORS},
        # a little latency, so that requests are in flight when a kill lands
        "faults": {"latency_s": [0.0, 0.005], "ambiguous_post_rate": ambiguous_post_rate},
    }
    if orgs:
        emulator["clients"] = [ORG_CLIENTS[name] for name in orgs]
    identities = write_subjects(tmp_path / "in.csv", n, seed=seed, actions=CHAOS_ACTIONS, orgs=orgs)
    cfg = write_config(
        tmp_path / "c.toml",
        limits={"users_per_request": 100, "max_in_flight": 16, "daily_job_cap": DAILY_CAP},
        api={"backoff_cap_s": 1.0},
    )
    cfg.write_text(cfg.read_text() + org_tables(orgs), encoding="utf-8")
    ws = tmp_path / "ws"
    run_dir = ws / "run"
    log = tmp_path / "dsar.log"
    base = ["--config", str(cfg), "--workspace", str(ws)]
    run_args = ["run", str(tmp_path / "in.csv"), *base, "--yes", "--run-dir", str(run_dir)]
    resume_args = ["resume", str(run_dir), *base[:2]]
    restart_args = {"resume": resume_args, "run": run_args, "all": ["resume", "--all", str(ws)]}
    result = ChaosResult(run_dir=run_dir, n_rows=n, exit_code=-1, identities=identities)
    watch = RunWatch(run_dir, ws)
    with EmulatorProcess(emulator) as emu:
        env = _child_env(emu.env, reconcile)
        for name in orgs:
            env[f"{name.upper()}_ID"] = ORG_CLIENTS[name]["client_id"]
            env[f"{name.upper()}_SECRET"] = ORG_CLIENTS[name]["client_secret"]
        segments = _Segments(env, log)
        before = Observed()
        proc = segments.start(run_args)
        while len(result.points) + len(result.unreachable) < len(wanted):
            index = len(result.points) + len(result.unreachable)
            left = sum(1 for w in wanted[index:] if w == "submitting")
            point = choose(wanted[index], before, rng, submissions_left=left)
            if not point.reachable:  # the journal says so: the same process goes on
                result.unreachable.append(point.name)
                continue
            if _wait_for(proc, point, watch):
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                result.points.append(point.name)
                result.jobs_at_kill.append(int(emu.control("health")["jobs"]))
                extra, _ = registry_disagreement(ws)
                result.registry_at_kills.append((extra, *registry_disagreement(ws, catch_up=True)))
            else:
                result.finished_early += 1
                # 4: paused with work pending (e.g. by a kill's lease): resume it, a few times
                if proc.returncode != 4 or result.finished_early > EARLY_FINISHES:
                    result.exit_code = proc.returncode
                    break
            before = _after_kill(watch)
            proc = segments.start(resume_args if before.has_plan else restart_args[restart])
        else:
            result.exit_code = proc.wait(FINAL_TIMEOUT_S)
            for _ in range(3):
                if result.exit_code != 4:  # 4: paused with work pending, e.g. by a kill's lease
                    break
                proc = segments.start(resume_args)
                result.exit_code = proc.wait(FINAL_TIMEOUT_S)
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        watch.close()
        result.kills = len(result.points)
        result.stats = emu.control("stats")
        result.registry_at_end = registry_disagreement(ws)
    result.stderr = log.read_text(encoding="utf-8", errors="replace")
    result.leftovers = leftovers(ws)
    return result


def _after_kill(watch: RunWatch) -> Observed:
    """The journal as the last process left it (none is running), with its job counts."""
    seen = watch.observe(jobs=True)
    watch.close()
    return seen


def leftovers(workspace: Path) -> list[Path]:
    """Spill folders and temporary files (``.*.tmp``, ``.*.new``) left under ``workspace``."""
    found = [p for p in (workspace / ".spill").glob("*")]
    found += [p for p in workspace.rglob(".*") if p.suffix in (".tmp", ".new")]
    return sorted(found)
