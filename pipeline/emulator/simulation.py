"""Seeded simulation of job processing: ids, per-product outcomes and timings.

Every draw comes from one ``random.Random(seed)`` stream in request order, so the same seed and
the same requests give the same job ids (on a frozen clock), outcomes and timings. Durations are
drawn in simulated seconds and divided by ``time_scale`` to become emulator-clock seconds.
"""

from __future__ import annotations

import random

from .catalog import (
    ERROR_OUTCOMES,
    IDS_NOT_FOUND,
    INVALID_NAMESPACE,
    NOT_PROVISIONED,
    PARTIAL,
    SUCCESS,
)
from .config import SimulationConfig
from .store import pack_products


class Simulator:
    """Draws what happens to each job; holds no job state itself."""

    def __init__(self, config: SimulationConfig, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed)

    def job_id(self) -> str:
        """A random (seeded) UUID4 string."""
        n = self.rng.getrandbits(128)
        n = (n & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def request_id(self, now: float) -> str:
        """The service's request id form: epoch ms, four digits, ``RX-`` and three digits."""
        ms = int(now * 1000)
        return f"{ms:013d}{self.rng.randrange(10_000):04d}RX-{self.rng.randrange(1000):03d}"

    def draw(
        self,
        provisioned: list[bool],
        invalid_namespace: bool,
        created_at: float,
        *,
        force_error: bool = False,
    ) -> tuple[bytes, tuple[float, float, bool]]:
        """Outcomes and ack/done delays for one job's products, packed for the store, with the
        job's (first ack, last done, failed) summary; ``force_error`` makes every provisioned
        product end in error (the stream of draws is the same)."""
        cfg = self.config
        rng = self.rng
        to_ms = 1000.0 / cfg.time_scale
        outcomes: list[int] = []
        acks: list[int] = []
        dones: list[int] = []
        failed = False
        for is_provisioned in provisioned:
            ack = round(rng.uniform(*cfg.ack_delay_s) * to_ms)
            acks.append(ack)
            dones.append(ack + round(rng.uniform(*cfg.processing_s) * to_ms))
            outcome = self._outcome(is_provisioned, invalid_namespace)
            if force_error and outcome != NOT_PROVISIONED:
                outcome = ERROR_OUTCOMES[0]
            failed = failed or outcome in ERROR_OUTCOMES
            outcomes.append(outcome)
        summary = (created_at + min(acks) / 1000, created_at + max(dones) / 1000, failed)
        return pack_products(outcomes, acks, dones), summary

    def _outcome(self, provisioned: bool, invalid_namespace: bool) -> int:
        cfg = self.config
        roll = self.rng.random()
        if not provisioned:
            return NOT_PROVISIONED
        if roll < cfg.product_error_rate:
            return ERROR_OUTCOMES[int(roll / cfg.product_error_rate * len(ERROR_OUTCOMES))]
        if invalid_namespace:
            return INVALID_NAMESPACE
        roll -= cfg.product_error_rate
        if roll < cfg.ids_not_found_rate:
            return IDS_NOT_FOUND
        roll -= cfg.ids_not_found_rate
        if roll < cfg.partial_rate:
            return PARTIAL
        return SUCCESS
