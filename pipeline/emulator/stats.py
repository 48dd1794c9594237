"""Request and submission counters served by ``GET /_emulator/stats``.

``posts_per_user_key`` answers "was anything submitted twice?": for each user key and action,
how many POSTs created a job for it (ambiguous POSTs included, since their jobs exist).
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    """Counters of API traffic (control endpoints excluded)."""

    def __init__(self) -> None:
        self.requests: dict[str, Counter[str]] = {}
        self.jobs_created = 0
        self.posts_per_key: dict[tuple[str, str], int] = {}
        self.throttled = 0
        self.doc_rate_limited = 0
        self.daily_cap_refusals = 0
        self.faults: Counter[str] = Counter()
        self.consent_requests = 0
        self.first_request_at: float | None = None
        self.last_request_at: float | None = None

    def record_request(self, endpoint: str, status: str, at: float) -> None:
        """Count one answered (or dropped) request of ``endpoint`` (e.g. ``POST jobs``)."""
        self.requests.setdefault(endpoint, Counter())[status] += 1
        if self.first_request_at is None:
            self.first_request_at = at
        self.last_request_at = at

    def record_created(self, keys: list[tuple[str, str]]) -> None:
        """Count the (user key, action) pairs one POST created jobs for."""
        self.jobs_created += len(keys)
        posts = self.posts_per_key
        for pair in set(keys):
            posts[pair] = posts.get(pair, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON view of every counter."""
        per_key: dict[str, dict[str, int]] = {}
        duplicates: set[str] = set()
        for (key, action), count in self.posts_per_key.items():
            per_key.setdefault(key, {})[action] = count
            if count > 1:
                duplicates.add(key)
        return {
            "requests": {k: dict(v) for k, v in sorted(self.requests.items())},
            "jobs_created": self.jobs_created,
            "posts_per_user_key": per_key,
            "duplicate_user_keys": sorted(duplicates),
            "throttled": self.throttled,
            "doc_rate_limited": self.doc_rate_limited,
            "daily_cap_refusals": self.daily_cap_refusals,
            "faults": dict(self.faults),
            "consent_requests": self.consent_requests,
            "first_request_monotonic": self.first_request_at,
            "last_request_monotonic": self.last_request_at,
        }
