"""The one source of time below the CLI: an injectable :class:`Clock`.

Every stage that reads or waits on time takes a clock: the limiter, retries and token expiry in
``api``, and the drive loop, run context, progress, runner, status and lifecycle commands in
``run``. :class:`SystemClock` is the real one; tests pass a virtual clock whose ``sleep``
advances simulated time (and the emulator's clock with it), so a run that waits for its jobs
finishes in milliseconds of real time. This module is the only one of the stages that calls the
wall clock or ``asyncio.sleep`` directly (tests/test_clock.py holds that).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Monotonic time in seconds, the UTC wall time, and a way to wait for time to pass."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def utc_now(self) -> datetime:
        """The current UTC time (an aware datetime)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The real clocks and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def utc_now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]
