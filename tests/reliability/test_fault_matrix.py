"""The fault matrix: one run per kind of fault, each losing no row and submitting no user twice.

Each test runs ``dsar run`` in-process against an emulator over real HTTP with one fault
switched on, then checks that every input row is in exactly one subject of status.parquet or
in rejects.parquet, that the emulator created no job twice for a (user key, action), that the
fault really happened, and that the exit code is the one DESIGN.md gives (0 when every job is
complete: the emulator is told not to fail products, so any other code means a lost job).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline.bench.emuproc import EmulatorProcess
from pipeline.emulator import EmulatorServer
from pipeline.emulator.backend import PrivacyBackend
from pipeline.emulator.limits import SlidingWindow
from tests.helpers.run import (
    FAST_SIMULATION,
    Emu,
    emulator_config,
    env_for,
    only_run,
    run_cli,
    write_config,
    write_subjects,
)
from tests.reliability.checks import (
    NO_PRODUCT_ERRORS,
    assert_run_lost_nothing,
    non_202_posts,
    persisted_duplicates,
    statuses,
    summary,
)

# Delete jobs only, except where downloads must meet the fault too: an access job costs a
# result download, which makes a run several times slower.
ACTIONS = ("delete",)
WITH_ACCESS = ("access", "delete")


def _run(
    tmp_path: Path,
    env: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    *,
    users_per_request: int = 50,
    actions: tuple[str, ...] = ACTIONS,
    extra_env: Mapping[str, str] | None = None,
    **sections: Mapping[str, Any],
) -> tuple[int, Path]:
    """``dsar run`` of ``n`` subjects (one job each) with ``sections`` in the config."""
    write_subjects(tmp_path / "in.csv", n, actions=actions)
    limits = {"users_per_request": users_per_request, **sections.pop("limits", {})}
    # retries wait at most a second: faults cost the run seconds, not minutes
    api = {"backoff_cap_s": 1.0, **sections.pop("api", {})}
    cfg = write_config(tmp_path / "c.toml", limits=limits, api=api, **sections)
    ws = tmp_path / "ws"
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    code = run_cli(argv, {**env, **(extra_env or {})}, monkeypatch)
    return code, only_run(ws)


def _assert_clean_finish(code: int, run_dir: Path, n: int, stats: dict[str, Any]) -> None:
    assert_run_lost_nothing(run_dir, n, stats)
    assert stats["jobs_created"] == n
    assert set(statuses(run_dir)) == {"complete"}
    assert code == 0


@pytest.mark.parametrize(
    ("faults", "counted_as", "seed"),
    [
        pytest.param(
            {"error_5xx_rate": 0.1},
            ("500", "503", "504"),
            3,
            id="5xx-on-10%",
            marks=pytest.mark.slow,
        ),
        pytest.param({"reset_rate": 0.05}, ("reset",), 5, id="resets-on-5%"),
    ],
)
def test_failed_calls_lose_nothing_and_duplicate_nothing(
    faults: dict[str, float],
    counted_as: tuple[str, ...],
    seed: int,
    tmp_path: Path,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5xx answers or dropped connections on any call, downloads of access results included."""
    emu = emulator_factory(faults=faults, simulation=NO_PRODUCT_ERRORS, seed=seed)
    n = 500
    code, run_dir = _run(tmp_path, emu.env, monkeypatch, n, actions=WITH_ACCESS)
    stats = emu.stats()
    assert sum(v for k, v in stats["faults"].items() if k in counted_as) > 0, "no fault"
    _assert_clean_finish(code, run_dir, n, stats)


@pytest.mark.slow
def test_latency_beyond_the_client_timeout_loses_nothing(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(faults={"latency_s": [0.0, 2.0]}, simulation=NO_PRODUCT_ERRORS, seed=9)
    n = 48  # each job's one GET waits ~1 s: few jobs keep the test short
    code, run_dir = _run(
        tmp_path, emu.env, monkeypatch, n, users_per_request=12, api={"timeout_s": 1.5}
    )
    stats = emu.stats()
    timeouts = sum(
        v for calls in summary(run_dir)["api_calls"].values() for k, v in calls.items()
        if k not in {"200", "202"}
    )  # fmt: skip
    assert timeouts > 0, "no call timed out: the test did not exercise client timeouts"
    _assert_clean_finish(code, run_dir, n, stats)


def _ambiguous_run(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, *, reconcile: bool
) -> tuple[int, Path, dict[str, Any]]:
    """1,000 subjects in 40 POSTs, a tenth of which create their jobs and then fail."""
    emu = emulator_factory(
        faults={"ambiguous_post_rate": 0.1}, simulation=NO_PRODUCT_ERRORS, seed=21
    )
    unsafe = {} if reconcile else {"DSAR_UNSAFE_NO_RECONCILE": "1"}
    code, run_dir = _run(
        tmp_path, emu.env, monkeypatch, 1000, users_per_request=25, extra_env=unsafe
    )
    assert non_202_posts(run_dir) > 0, "no ambiguous POST was exercised"
    return code, run_dir, emu.stats()


def test_ambiguous_posts_on_a_tenth_of_submissions_lose_nothing(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, run_dir, stats = _ambiguous_run(tmp_path, emulator_factory, monkeypatch, reconcile=True)
    _assert_clean_finish(code, run_dir, 1000, stats)


def test_without_reconciliation_ambiguous_posts_are_found_as_duplicates(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deliberate fault: the same run with reconciliation off must fail the checks."""
    _, run_dir, stats = _ambiguous_run(tmp_path, emulator_factory, monkeypatch, reconcile=False)
    n = 1000
    assert stats["duplicate_user_keys"], "blind re-POSTs went unnoticed: the check cannot fail"
    assert stats["jobs_created"] > n
    with pytest.raises(AssertionError, match="submitted twice"):
        assert_run_lost_nothing(run_dir, n, stats)


@pytest.mark.slow
def test_429_bursts_are_waited_out_without_loss(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every 429 carries Retry-After: 1 and pauses every worker for a second: few bursts.
    emu = emulator_factory(
        faults={"throttle_burst_rate": 0.01, "throttle_burst_length": 2},
        simulation=NO_PRODUCT_ERRORS,
        seed=4,
    )
    n = 300
    code, run_dir = _run(tmp_path, emu.env, monkeypatch, n)
    stats = emu.stats()
    assert stats["faults"].get("throttle_burst", 0) > 0
    _assert_clean_finish(code, run_dir, n, stats)


class SteppingMonotonic:
    """A monotonic clock that jumps ``step_s`` each time it is read."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.reads = 0
        self.start = time.monotonic()

    def __call__(self) -> float:
        self.reads += 1
        return time.monotonic() - self.start + self.reads * self.step_s


@pytest.mark.slow
def test_the_document_rate_limit_prvcy_1030_slows_submission_without_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 90
    config = emulator_config(
        limits={"doc_rate_limit_per_minute": limit}, simulation=NO_PRODUCT_ERRORS
    )
    backend = PrivacyBackend(config)
    # The service's minute passes in a few POSTs: its clock jumps 59 s per POST, so two POSTs
    # of 50 users in a row go over 90 jobs a minute, and Retry-After is 1 s, the shortest
    # the service sends (a real minute would make the test wait a minute).
    backend.doc_limiter = SlidingWindow(limit, 60.0, SteppingMonotonic(59.0))
    with EmulatorServer(backend=backend) as server:
        emu = Emu(server=server, env=env_for(server))
        n = 300
        code, run_dir = _run(tmp_path, emu.env, monkeypatch, n)
        stats = emu.stats()
    assert stats["doc_rate_limited"] > 0, "PRVCY-1030-400 was never sent"
    assert summary(run_dir)["api_calls"]["POST jobs"].get("400", 0) > 0
    _assert_clean_finish(code, run_dir, n, stats)


class ClockPusher:
    """On a thread: advance an emulator's clock by ``step_s`` after every ``every`` API
    requests it served, so that each token lives for a number of requests, not of seconds
    (a token that expired between its issue and its first use would look revoked)."""

    def __init__(self, emu: Emu, step_s: float, every: int) -> None:
        self.emu, self.step_s, self.every = emu, step_s, every
        self.done = threading.Event()
        self.pushes = 0
        self.thread = threading.Thread(target=self._push, daemon=True)

    def _served(self) -> int:
        requests = dict(self.emu.server.backend.stats.requests)
        return sum(sum(counts.values()) for counts in requests.values())

    def _push(self) -> None:
        mark = self._served()
        while not self.done.wait(0.01):  # a bounded poll of the request counter
            if self._served() - mark >= self.every:
                self.emu.control("advance", {"seconds": self.step_s})
                self.pushes += 1
                mark = self._served()

    def __enter__(self) -> ClockPusher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)


def test_tokens_living_20_seconds_are_refreshed_without_loss(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(token_lifetime_s=20, simulation=NO_PRODUCT_ERRORS, seed=13)
    n = 1000
    # 21 emulator seconds after every 100 requests: the token expires ~10 times in the run
    with ClockPusher(emu, step_s=21.0, every=100) as pusher:
        code, run_dir = _run(tmp_path, emu.env, monkeypatch, n, users_per_request=20)
    stats = emu.stats()
    assert pusher.pushes >= 3
    assert stats["requests"]["POST ims/token/v3"]["200"] >= 3, "the token never expired"
    assert sum(c.get("401", 0) for c in stats["requests"].values()) > 0
    _assert_clean_finish(code, run_dir, n, stats)


@pytest.mark.slow
def test_an_emulator_restarted_mid_run_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL the emulator process once jobs exist, restart it on the same port from its
    SQLite file; the run rides over the outage."""
    db = tmp_path / "emulator.sqlite"
    config = {
        "seed": 17,
        "persistence_path": str(db),
        "limits": {"requests_per_second": 0},
        "simulation": {**FAST_SIMULATION, **NO_PRODUCT_ERRORS},
        "faults": {"latency_s": [0.0, 0.03]},
    }
    n = 1500
    killed_at: list[int] = []
    with EmulatorProcess(config) as emu:
        done = threading.Event()

        def restart_once() -> None:
            while not done.wait(0.02):
                jobs = int(emu.control("health")["jobs"])
                if jobs >= n // 3:
                    emu.kill()
                    killed_at.append(jobs)
                    emu.start()
                    return

        watcher = threading.Thread(target=restart_once, daemon=True)
        watcher.start()
        try:
            code, run_dir = _run(tmp_path, emu.env, monkeypatch, n, users_per_request=25)
        finally:
            done.set()
            watcher.join(30)
        stats = emu.control("stats")
    assert emu.starts == 2, "the emulator was not restarted"
    assert killed_at[0] > 0
    assert stats["requests"], "the run made no call to the restarted emulator: not mid-run"
    jobs, duplicated = persisted_duplicates(db)
    assert duplicated == 0, "a user key was submitted twice across the restart"
    assert jobs == n
    _assert_clean_finish(code, run_dir, n, {**stats, "jobs_created": jobs})


def test_the_daily_cap_reached_mid_run_pauses_with_exit_4_and_resumes_the_next_day(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's cap (lower than the client's own budget) stops submission mid-run."""
    emu = emulator_factory(limits={"daily_job_cap": 400}, simulation=NO_PRODUCT_ERRORS)
    n = 1000
    code, run_dir = _run(tmp_path, emu.env, monkeypatch, n)
    assert code == 4
    stats = emu.stats()
    assert stats["daily_cap_refusals"] > 0
    assert 0 < stats["jobs_created"] <= 400
    assert_run_lost_nothing(run_dir, n, stats)
    assert statuses(run_dir).count("pending") == n - stats["jobs_created"]
    days = 0
    while code == 4:
        emu.control("advance", {"days": 1})
        days += 1
        assert days <= 3, "the run did not finish in the days the cap allows"
        code = run_cli(["resume", str(run_dir)], emu.env, monkeypatch)
    _assert_clean_finish(code, run_dir, n, emu.stats())
