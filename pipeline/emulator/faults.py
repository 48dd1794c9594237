"""Seeded fault injection: latency, 5xx, connection resets, throttle bursts, ambiguous POSTs.

Faults draw from their own ``random.Random`` so that turning faults on or off does not change
the simulation's job ids and outcomes.
"""

from __future__ import annotations

import enum
import random

from .config import FaultsConfig


class Fault(enum.Enum):
    """What happens to a request instead of (or after) normal handling."""

    NONE = "none"
    RESET = "reset"
    ERROR_500 = "500"
    ERROR_503 = "503"
    ERROR_504 = "504"
    THROTTLE = "throttle"


_AMBIGUOUS = (Fault.ERROR_500, Fault.ERROR_504, Fault.RESET)
_FIVE_XX = (Fault.ERROR_500, Fault.ERROR_503, Fault.ERROR_504)


class FaultInjector:
    """Decides, per request, which fault (if any) to inject."""

    def __init__(self, config: FaultsConfig, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed ^ 0x5EED_FA17)
        self._burst_left = 0

    def latency_s(self) -> float:
        """Extra delay before answering (0 when latency is not configured)."""
        low, high = self.config.latency_s
        if high <= 0:
            return 0.0
        return self.rng.uniform(low, high)

    def before(self) -> Fault:
        """A fault that replaces handling: reset, 5xx or a throttle-burst 429."""
        cfg = self.config
        if self._burst_left > 0:
            self._burst_left -= 1
            return Fault.THROTTLE
        if cfg.throttle_burst_rate > 0 and self.rng.random() < cfg.throttle_burst_rate:
            self._burst_left = max(0, cfg.throttle_burst_length - 1)
            return Fault.THROTTLE
        if cfg.reset_rate > 0 and self.rng.random() < cfg.reset_rate:
            return Fault.RESET
        if cfg.error_5xx_rate > 0 and self.rng.random() < cfg.error_5xx_rate:
            return self.rng.choice(_FIVE_XX)
        return Fault.NONE

    def after_create(self) -> Fault:
        """For a POST /jobs that created its jobs: a failed answer (500, 504 or reset), or none."""
        rate = self.config.ambiguous_post_rate
        if rate > 0 and self.rng.random() < rate:
            return self.rng.choice(_AMBIGUOUS)
        return Fault.NONE
