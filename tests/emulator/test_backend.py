"""The backend without HTTP: lifecycle rules, clock, limits and the compact store."""

from __future__ import annotations

import pytest

from pipeline.emulator.backend import PrivacyBackend
from pipeline.emulator.clock import EmulatorClock, service_date
from pipeline.emulator.errors import DailyLimitExceeded, NotFound
from pipeline.emulator.limits import SlidingWindow
from pipeline.emulator.store import Job, summarize
from tests.helpers.emulator import ORG, FakeMonotonic, frozen_config, payload


def _backend(**changes: object) -> PrivacyBackend:
    return PrivacyBackend(frozen_config(**changes))


def test_each_list_status_filter_returns_only_jobs_of_that_status_at_every_moment() -> None:
    backend = _backend(simulation={"product_error_rate": 0.3})
    client = backend.config.clients[0]
    backend.create_jobs(client, payload(users=200, actions=("access", "delete")))
    for step in range(10):  # the last step is past the longest processing time (~3.04 s)
        now = backend.clock.now()
        expected: dict[str, int] = {}
        for job in backend.store:
            expected[job.status_at(now)] = expected.get(job.status_at(now), 0) + 1
        # the seed: a filter "returns only privacy jobs that match that status type"
        for status in ("submitted", "processing", "complete", "error"):
            body = backend.list_jobs(
                client, {"regulation": "gdpr", "status": status, "size": "1000"}
            )
            assert body["totalRecords"] == expected.get(status, 0), (step, status)
            assert {j["status"] for j in body["jobDetails"]} <= {status}, (step, status)
        backend.advance(0.4)
    assert set(expected) == {"complete", "error"}


def test_a_jobs_summary_matches_its_unpacked_products() -> None:
    backend = _backend()
    client = backend.config.clients[0]
    backend.create_jobs(client, payload(users=50))
    for job in backend.store:
        rebuilt = Job(job.seq, job.job_id, job.request, job.user, job.action, job.packed)
        assert (rebuilt.ack_at, rebuilt.done_at, rebuilt.failed) == (
            job.ack_at,
            job.done_at,
            job.failed,
        )
        assert summarize(job.products()) == (job.ack_at, job.done_at, job.failed)


def test_the_daily_cap_counts_users_times_actions_and_refuses_the_whole_post() -> None:
    backend = _backend(limits={"daily_job_cap": 5})
    client = backend.config.clients[0]
    backend.create_jobs(client, payload(users=2, actions=("access", "delete")))
    with pytest.raises(DailyLimitExceeded) as refused:
        backend.create_jobs(client, payload(users=1, actions=("access", "delete"), prefix="x"))
    assert refused.value.status == 400
    assert len(backend.store) == 4


def test_a_job_past_its_retention_is_not_found() -> None:
    backend = _backend()
    client = backend.config.clients[0]
    job_id = backend.create_jobs(client, payload())["jobs"][0]["jobId"]
    backend.advance(31 * 86_400)
    with pytest.raises(NotFound):
        backend.get_job(client, job_id, "http://x/content")


def test_a_frozen_clock_moves_only_when_advanced() -> None:
    wall = [1_000.0]
    clock = EmulatorClock(frozen=True, start=50.0, wall=lambda: wall[0])
    wall[0] += 100
    assert clock.now() == 50.0
    assert clock.advance(10) == 60.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_a_running_clock_follows_the_wall_plus_the_offset_and_never_goes_back() -> None:
    wall = [1_000.0]
    clock = EmulatorClock(wall=lambda: wall[0])
    clock.advance(5)
    wall[0] += 1
    assert clock.now() == 1_006.0
    wall[0] -= 3  # the wall clock stepped back (NTP): the emulator clock holds
    assert clock.now() == 1_006.0


def test_service_dates_use_the_seed_format() -> None:
    assert service_date(1570047908.231) == "10/02/2019 08:25 PM GMT"


def test_a_sliding_window_frees_capacity_as_events_age() -> None:
    mono = FakeMonotonic()
    window = SlidingWindow(10, 60.0, mono)
    assert window.try_acquire("org", 6) is None
    mono.now += 20
    assert window.try_acquire("org", 4) is None
    assert window.try_acquire("org", 1) == 40
    mono.now += 40
    assert window.try_acquire("org", 5) is None
    assert window.try_acquire("other", 10) is None


def test_an_unlimited_window_never_refuses() -> None:
    window = SlidingWindow(0, 1.0, FakeMonotonic())
    assert all(window.try_acquire("c") is None for _ in range(1000))


def test_the_org_of_a_job_is_the_callers() -> None:
    backend = _backend()
    client = backend.config.clients[0]
    body = backend.create_jobs(client, payload())
    job = backend.store.get(body["jobs"][0]["jobId"])
    assert job is not None
    assert job.request.org_id == ORG


def test_on_a_running_clock_a_simulated_day_passes_per_second() -> None:
    wall = [1_772_445_600.0]  # 2026-03-02 10:00 UTC
    config = frozen_config(clock_frozen=False, clock_start=None)
    backend = PrivacyBackend(config, clock=EmulatorClock(wall=lambda: wall[0]))
    client = backend.config.clients[0]
    job_id = backend.create_jobs(client, payload())["jobs"][0]["jobId"]
    job = backend.store.get(job_id)
    assert job is not None
    # Acks take at most one simulated hour, processing at most three simulated days.
    assert job.ack_at - wall[0] <= 3_600 / 86_400 + 1e-3
    assert job.done_at - wall[0] <= (3_600 + 259_200) / 86_400 + 1e-3
    wall[0] += 3.1
    assert backend.get_job(client, job_id, "u")["status"] in ("complete", "error")


def test_freezing_the_clock_through_config_keeps_the_current_time() -> None:
    wall = [1_772_445_600.0]
    backend = PrivacyBackend(
        frozen_config(clock_frozen=False, clock_start=None),
        clock=EmulatorClock(wall=lambda: wall[0]),
    )
    backend.advance(100)
    backend.reconfigure({"clock_frozen": True})
    frozen_at = backend.clock.now()
    assert frozen_at >= wall[0] + 100
    assert backend.clock.frozen
