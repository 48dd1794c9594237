"""Request-side wire shapes of the client's calls: list queries and the consent body.

``list_queries`` turns one listing into the query of each date window (the service accepts a
``fromDate``..``toDate`` span of at most 30 days); ``consent_body`` groups identities by
namespace for ``POST consent``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from .. import constants
from ..errors import ConfigError
from ..models import Identity, JobStatus
from ..regulations import normalize_regulation


def date_windows(first: date, last: date, window_days: int) -> list[tuple[date, date]]:
    """Split the inclusive range ``first..last`` into inclusive windows of ``window_days`` days."""
    if last < first:
        raise ConfigError("the last day is before the first day")
    windows = []
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=window_days - 1))
        windows.append((start, end))
        start = end + timedelta(days=1)
    return windows


def list_queries(
    regulation: str,
    *,
    status: JobStatus | str | None,
    from_date: date | None,
    to_date: date | None,
    page_size: int,
    window_days: int,
) -> list[dict[str, str]]:
    """The GET jobs query of each window (without ``page``); one query when no dates are given.

    The regulation is normalised (deprecated values mapped with a warning); invalid arguments
    raise :class:`~pipeline.errors.ConfigError` (``window_days`` out of range: ``ValueError``).
    """
    regulation = normalize_regulation(regulation)
    if (from_date is None) != (to_date is None):
        raise ConfigError("the first and last day go together (the service needs both or neither)")
    if not 1 <= page_size <= constants.MAX_LIST_PAGE_SIZE:
        raise ConfigError(f"poll.page_size must be 1..{constants.MAX_LIST_PAGE_SIZE}")
    if not 1 <= window_days <= constants.MAX_LIST_WINDOW_DAYS:
        raise ValueError(f"window_days must be 1..{constants.MAX_LIST_WINDOW_DAYS}")
    base: dict[str, str] = {"regulation": regulation, "size": str(page_size)}
    if status is not None:
        base["status"] = JobStatus(str(status)).value
    if from_date is None or to_date is None:
        return [base]
    return [
        {**base, "fromDate": a.isoformat(), "toDate": b.isoformat()}
        for a, b in date_windows(from_date, to_date, window_days)
    ]


def consent_body(
    entities: Iterable[Identity] | Mapping[str, Iterable[str]], *, request_id: str | None = None
) -> dict[str, Any]:
    """The POST consent body: opt out of sale, values unique per namespace, order kept."""
    grouped: dict[str, dict[str, None]] = {}
    if isinstance(entities, Mapping):
        for namespace, values in entities.items():
            grouped.setdefault(namespace, {}).update(dict.fromkeys(values))
    else:
        for identity in entities:
            grouped.setdefault(identity.namespace, {})[identity.value] = None
    if not grouped:
        raise ValueError("opt_out needs at least one identity")
    body: dict[str, Any] = {
        "optOutOfSale": True,
        "entities": [{"nameSpace": ns, "values": list(v)} for ns, v in grouped.items()],
    }
    if request_id:
        body["requestId"] = request_id
    return body
