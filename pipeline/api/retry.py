"""Retries of idempotent calls: capped exponential backoff with full jitter.

The delays come from ``backoff`` (python-backoff): ``backoff.expo`` capped at ``cap_s``, spread
by ``backoff.full_jitter``. The loop itself is ours for two reasons:

- a ``Retry-After`` from the service is honoured exactly, without jitter. backoff applies its
  jitter to runtime waits too (backoff issue #152), which would make us retry early, exactly
  what the hint forbids;
- the wait goes through an injected ``sleep`` so tests run on a virtual clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import backoff

from .. import constants
from ..errors import ConfigError, ThrottledError, TransientApiError

log = logging.getLogger("dsar.retry")

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry: ``max_retries`` after the first try, waits capped."""

    max_retries: int = constants.DEFAULT_MAX_RETRIES
    base_s: float = constants.DEFAULT_BACKOFF_BASE_S
    cap_s: float = constants.DEFAULT_BACKOFF_CAP_S
    jitter: Callable[[float], float] = field(default=backoff.full_jitter, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError("api.max_retries must be at least 0")
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ConfigError(
                f"api.backoff_cap_s must be at least {self.base_s:g} (the first wait)"
            )

    def backoff_delays(self) -> Iterator[float]:
        """The jittered waits before retry 1, 2, ...: ``U(0, min(cap, base * 2**n))``."""
        gen = backoff.expo(base=2, factor=self.base_s, max_value=self.cap_s)
        next(gen)  # the generator's priming value
        for ceiling in gen:
            yield self.jitter(ceiling)

    def wait_for(self, exc: BaseException, jittered: float) -> float:
        """The wait after ``exc``: its Retry-After exactly when it has one, else ``jittered``."""
        if isinstance(exc, ThrottledError) and exc.retry_after_s is not None:
            return max(0.0, exc.retry_after_s)
        return jittered


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    retryable: Callable[[TransientApiError], bool] = lambda exc: True,
) -> T:
    """Await ``call()``; on a retryable :class:`TransientApiError`, wait and call again.

    Gives up (re-raising the last error) after ``policy.max_retries`` retries. Errors that are
    not transient, or that ``retryable`` refuses, propagate at once.
    """
    delays = policy.backoff_delays()
    retries = 0
    while True:
        try:
            return await call()
        except TransientApiError as exc:
            if retries >= policy.max_retries or not retryable(exc):
                raise
            retries += 1
            wait_s = policy.wait_for(exc, next(delays))
            log.info(
                "retry %d/%d of %s in %.2fs after %s",
                retries,
                policy.max_retries,
                exc.endpoint or "call",
                wait_s,
                type(exc).__name__,
            )
            await sleep(wait_s)
