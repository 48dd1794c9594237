"""The shared limiter on a virtual clock: rate, no burst, in-flight cap, AIMD, pause gate."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from pipeline.api.ratelimit import RateLimiter
from tests.helpers.vclock import VirtualClock

EPS = 1e-9


def _max_in_any_window(times: list[float], window_s: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s - EPS:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def _drive(
    limiter: RateLimiter, clock: VirtualClock, *, workers: int, calls: int, hold_s: float = 0.0
) -> list[float]:
    starts: list[float] = []
    remaining = iter(range(calls))

    async def worker() -> None:
        for _ in remaining:
            async with limiter.slot():
                starts.append(clock.monotonic())
                if hold_s:
                    await clock.sleep(hold_s)

    await clock.run(asyncio.gather(*(worker() for _ in range(workers))))
    return starts


async def test_never_more_than_the_rate_in_any_one_second_window() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=20, max_in_flight=32, clock=clock)
    starts = await _drive(limiter, clock, workers=32, calls=400, hold_s=0.3)
    assert len(starts) == 400
    assert _max_in_any_window(starts) <= 20
    # and the allowed rate is used: 399 gaps of 1/20 s, widened by the 2 % safety margin
    assert max(starts) - min(starts) <= 399 / 20 * 1.02 + 1e-6


async def test_32_callers_with_slow_uneven_answers_use_98_percent_of_the_rate() -> None:
    # the shape of the real-HTTP test in test_against_emulator.py, on a virtual clock: answers
    # take 0.2 to 1.5 s, and 32 callers keep 20 requests/s going all the same
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=20, max_in_flight=32, clock=clock)
    starts: list[float] = []
    calls = iter(range(100))

    async def caller() -> None:
        for i in calls:
            async with limiter.slot():
                starts.append(clock.monotonic())
                await clock.sleep(0.2 + (i * 0.37) % 1.3)

    await clock.run(asyncio.gather(*(caller() for _ in range(32))))
    assert len(starts) == 100
    assert _max_in_any_window(starts) <= 20
    used = (len(starts) - 1) / (max(starts) - min(starts))
    assert used == pytest.approx(20 / 1.02)  # the rate less its 2 % safety margin
    assert used >= 0.98 * 20


async def test_workers_starting_together_get_no_initial_burst() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=10, max_in_flight=50, clock=clock)
    starts = sorted(await _drive(limiter, clock, workers=50, calls=50))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - EPS
    assert _max_in_any_window(starts[:11]) == 10


async def test_requests_in_flight_never_exceed_the_cap() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=1000, max_in_flight=4, clock=clock)
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with limiter.slot():
            peak = max(peak, limiter.in_flight)
            await clock.sleep(1.0)

    await clock.run(asyncio.gather(*(call() for _ in range(40))))
    assert peak == 4
    assert limiter.in_flight == 0


async def test_a_throttle_signal_halves_the_rate_and_it_recovers_to_the_ceiling() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(
        requests_per_second=20,
        max_in_flight=8,
        clock=clock,
        recovery_per_s=2.0,
        cooldown_s=1.0,
        margin=0.0,
    )
    await _drive(limiter, clock, workers=8, calls=40)
    limiter.on_throttle()
    assert limiter.rate == 10
    halved = sorted(await _drive(limiter, clock, workers=8, calls=8))
    gaps = [b - a for a, b in itertools.pairwise(halved)]
    assert all(abs(g - 0.1) < 1e-6 for g in gaps[:3])  # 10/s right after the signal
    assert _max_in_any_window(halved) <= 10
    # recovers linearly at 2/s per second after the 1 s cooldown: 10 -> 20 in 5 s
    await clock.run(clock.sleep(10.0))
    assert limiter.rate == 20
    later = await _drive(limiter, clock, workers=8, calls=60)
    assert 19 <= _max_in_any_window(later) <= 20


async def test_signals_within_the_cooldown_halve_the_rate_once() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=16, max_in_flight=8, clock=clock, cooldown_s=1.0)
    for _ in range(5):
        limiter.on_throttle()
    assert limiter.rate == 8
    assert (limiter.throttle_signals, limiter.decreases) == (5, 1)
    await clock.run(clock.sleep(1.0))
    limiter.on_throttle()
    assert limiter.rate == 4


async def test_the_rate_never_falls_below_the_floor() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=4, max_in_flight=1, clock=clock, min_rate=1.0)
    for _ in range(6):
        limiter.on_throttle()
        await clock.run(clock.sleep(1.0))
    assert limiter.rate >= 1.0


async def test_retry_after_pauses_every_worker_including_those_already_waiting() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=10, max_in_flight=16, clock=clock)
    starts: list[float] = []
    t0 = clock.monotonic()

    async def call() -> None:
        async with limiter.slot():
            starts.append(clock.monotonic())

    async def scenario() -> None:
        tasks = [asyncio.ensure_future(call()) for _ in range(10)]
        await clock.sleep(0.25)  # three calls have started (t0, +0.1, +0.2)
        limiter.on_throttle(retry_after_s=4.0)
        await asyncio.gather(*tasks)

    await clock.run(scenario())
    early = [t for t in starts if t < t0 + 0.25]
    late = sorted(t for t in starts if t >= t0 + 0.25)
    assert len(early) == 3
    assert late[0] == t0 + 0.25 + 4.0
    assert _max_in_any_window(late) <= 5  # resumed at the halved rate, without a burst


async def test_requests_are_spaced_a_safety_margin_wider_than_the_rate() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(requests_per_second=10, max_in_flight=4, clock=clock, margin=0.05)
    starts = sorted(await _drive(limiter, clock, workers=4, calls=5))
    assert [round(b - a, 9) for a, b in itertools.pairwise(starts)] == [0.105] * 4
