"""Request validation: the documented rules of POST /jobs, GET /jobs and POST /consent.

Each function turns a raw payload or query into a typed request or raises
:class:`~.errors.InvalidRequest` whose detail names the broken rule (never a value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .catalog import (
    ALL_ACTIONS,
    CURRENT_REGULATIONS,
    DEPRECATED_REGULATIONS,
    ID_TYPES,
    LIST_STATUSES,
    OPT_OUT_ACTION,
    PRIORITIES,
    PRODUCTS,
    STANDARD_NAMESPACES,
)
from .config import EmulatorConfig
from .errors import CONSENT_URI, InvalidRequest
from .store import Identity

MAX_USERS = 1000
MAX_IDS = 9
MAX_PAGE = 2**31 - 1  # the spec's page is an int32
CONSENT_TEXT_FIELDS = ("requestId", "transactionId", "orgId")
DAY_S = 86_400
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class UserSpec:
    """One validated user: key, actions (in request order) and identities."""

    key: str
    actions: tuple[str, ...]
    ids: tuple[Identity, ...]


@dataclass(frozen=True, slots=True)
class CreateSpec:
    """A validated POST /jobs payload."""

    users: tuple[UserSpec, ...]
    include: tuple[str, ...]
    regulation: str
    request_id: str | None = None  # the caller's own requestId, when it sent one

    @property
    def job_count(self) -> int:
        """Jobs this request creates: one per (user, action)."""
        return sum(len(u.actions) for u in self.users)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A validated GET /jobs query; the window is ``[start, end)`` in epoch seconds."""

    regulation: str
    page: int
    size: int
    status: str | None
    start: float
    end: float


def check_regulation(value: Any, now: float, config: EmulatorConfig) -> str:
    """``value`` if it is a current regulation; deprecated values are refused after the cutoff."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest("regulation is required")
    if value in CURRENT_REGULATIONS:
        return value
    replacement = DEPRECATED_REGULATIONS.get(value)
    if replacement is not None:
        if now < config.cutoff_epoch():
            return value
        raise InvalidRequest(
            f"regulation {value!r} is no longer supported; use {replacement!r} instead"
        )
    raise InvalidRequest(f"regulation {value!r} is not a supported regulation")


def parse_create(payload: Any, org_id: str, now: float, config: EmulatorConfig) -> CreateSpec:
    """Validate an access/delete (or legacy opt-out) payload for the org ``org_id``."""
    if not isinstance(payload, Mapping):
        raise InvalidRequest("the request body must be a JSON object")
    _check_company_contexts(payload.get("companyContexts"), org_id)
    users = payload.get("users")
    if not isinstance(users, list) or not users:
        raise InvalidRequest("users must be a non-empty array")
    if len(users) > MAX_USERS:
        raise InvalidRequest(f"users must hold at most {MAX_USERS} users per request")
    parsed = tuple(_user(u, i) for i, u in enumerate(users))
    include = _include(payload.get("include"))
    expand = payload.get("expandIds", False)
    if not isinstance(expand, bool) and expand not in ("true", "false"):
        raise InvalidRequest("expandIds must be a boolean or 'true'/'false'")
    if payload.get("priority", "normal") not in PRIORITIES:
        raise InvalidRequest("priority must be 'normal' or 'low'")
    merge = payload.get("mergePolicyId")
    if merge is not None and (isinstance(merge, bool) or not isinstance(merge, int | str)):
        raise InvalidRequest("mergePolicyId must be a number or a string")
    regulation = check_regulation(payload.get("regulation"), now, config)
    request_id = payload.get("requestId")
    if "requestId" in payload and not (isinstance(request_id, str) and request_id.strip()):
        raise InvalidRequest("requestId must be a non-empty string")
    return CreateSpec(users=parsed, include=include, regulation=regulation, request_id=request_id)


def _check_company_contexts(contexts: Any, org_id: str) -> None:
    if not isinstance(contexts, list) or not contexts:
        raise InvalidRequest("companyContexts must be a non-empty array")
    for i, context in enumerate(contexts):
        # every entry, product qualifiers included, is a {namespace, value} pair of strings
        if not isinstance(context, Mapping):
            raise InvalidRequest(f"companyContexts[{i}] must be an object")
        for name in ("namespace", "value"):
            field_value = context.get(name)
            if not isinstance(field_value, str) or not field_value.strip():
                raise InvalidRequest(f"companyContexts[{i}].{name} must be a non-empty string")
    org_values = [c["value"] for c in contexts if c["namespace"].lower() == "imsorgid"]
    if not org_values:
        raise InvalidRequest("companyContexts must contain an imsOrgID entry")
    if org_id not in org_values:
        raise InvalidRequest("the imsOrgID in companyContexts must match x-gw-ims-org-id")


def _user(raw: Any, i: int) -> UserSpec:
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"users[{i}] must be an object")
    key = raw.get("key")
    if not isinstance(key, str) or not key.strip():
        raise InvalidRequest(f"users[{i}].key must be a non-empty string")
    actions = raw.get("action")
    if not isinstance(actions, list) or not actions:
        raise InvalidRequest(f"users[{i}].action must be a non-empty array")
    if any(a not in ALL_ACTIONS for a in actions):
        raise InvalidRequest(f"users[{i}].action holds an unknown action")
    if len(set(actions)) != len(actions):
        raise InvalidRequest(f"users[{i}].action must not repeat an action")
    if OPT_OUT_ACTION in actions and len(actions) != 1:
        raise InvalidRequest(f"users[{i}].action: opt-out-of-sale must be sent on its own")
    ids = raw.get("userIDs")
    if not isinstance(ids, list) or not ids:
        raise InvalidRequest(f"users[{i}].userIDs must be a non-empty array")
    if len(ids) > MAX_IDS:
        raise InvalidRequest(f"users[{i}].userIDs must hold at most {MAX_IDS} identities")
    return UserSpec(key, tuple(actions), tuple(_identity(x, i, j) for j, x in enumerate(ids)))


def _identity(raw: Any, i: int, j: int) -> Identity:
    where = f"users[{i}].userIDs[{j}]"
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{where} must be an object")
    id_type = raw.get("type")
    if id_type not in ID_TYPES:
        raise InvalidRequest(f"{where}.type must be one of {', '.join(sorted(ID_TYPES))}")
    namespace = raw.get("namespace")
    namespace_id = raw.get("namespaceId")
    if namespace_id is not None and (
        isinstance(namespace_id, bool) or not isinstance(namespace_id, int)
    ):
        raise InvalidRequest(f"{where}.namespaceId must be an integer")
    if not (isinstance(namespace, str) and namespace) and not (
        id_type == "namespaceId" and namespace_id is not None
    ):
        raise InvalidRequest(f"{where}.namespace must be a non-empty string")
    value = raw.get("value")
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where}.value must be a non-empty string")
    deleted = raw.get("isDeletedClientSide", False)
    if not isinstance(deleted, bool):
        raise InvalidRequest(f"{where}.isDeletedClientSide must be a boolean")
    ns = namespace if isinstance(namespace, str) else ""
    if id_type == "standard" and namespace_id is None:
        namespace_id = STANDARD_NAMESPACES.get(ns.lower())
    return (ns, value, id_type, namespace_id, deleted)


def _include(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("include must be a non-empty array of products")
    names: list[str] = []
    for item in raw:
        name = PRODUCTS.get(item.lower()) if isinstance(item, str) else None
        if name is None:
            raise InvalidRequest("include holds an unknown product")
        if name in names:
            # the spec's items are unique; codes are case-insensitive, so "Analytics" and
            # "analytics" name the same product twice
            raise InvalidRequest("include must name each product once")
        names.append(name)
    return tuple(names)


def parse_consent(payload: Any) -> int:
    """Validate an opt-out-of-sale consent payload; returns how many identities it names."""
    if not isinstance(payload, Mapping):
        raise InvalidRequest("the request body must be a JSON object", uri=CONSENT_URI)
    if not isinstance(payload.get("optOutOfSale"), bool):
        raise InvalidRequest("optOutOfSale must be a boolean", uri=CONSENT_URI)
    entities = payload.get("entities")
    if not isinstance(entities, list) or not entities:
        raise InvalidRequest("entities must be a non-empty array", uri=CONSENT_URI)
    for name in CONSENT_TEXT_FIELDS:
        if name in payload and not isinstance(payload[name], str):
            raise InvalidRequest(f"{name} must be a string", uri=CONSENT_URI)
    count = 0
    for i, entity in enumerate(entities):
        if not isinstance(entity, Mapping):
            raise InvalidRequest(f"entities[{i}] must be an object", uri=CONSENT_URI)
        ns = entity.get("nameSpace")
        if not isinstance(ns, str) or ns.lower() not in STANDARD_NAMESPACES:
            raise InvalidRequest(
                f"entities[{i}].nameSpace must be a standard namespace", uri=CONSENT_URI
            )
        values = entity.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v for v in values)
        ):
            raise InvalidRequest(
                f"entities[{i}].values must be a non-empty array of strings", uri=CONSENT_URI
            )
        if len(set(values)) != len(values):
            raise InvalidRequest(f"entities[{i}].values must be unique", uri=CONSENT_URI)
        count += len(values)
    return count


def parse_list_query(query: Mapping[str, str], now: float, config: EmulatorConfig) -> ListQuery:
    """Validate GET /jobs parameters and resolve the creation-date window."""
    regulation = check_regulation(query.get("regulation"), now, config)
    page = _int_param(query, "page", 0, minimum=0)
    if page > MAX_PAGE:
        raise InvalidRequest(f"page must be at most {MAX_PAGE}")
    size = _int_param(query, "size", config.limits.default_page_size, minimum=1)
    if size > config.limits.max_page_size:
        raise InvalidRequest(
            f"Page size exceeded, maximum page size supported is {config.limits.max_page_size}"
        )
    status = query.get("status")
    if status is not None and status not in LIST_STATUSES:
        raise InvalidRequest("status must be one of submitted, processing, complete, error")
    today = int(now // DAY_S)
    earliest = today - config.lookback_days
    start, end = now - config.default_window_days * DAY_S, now + 1.0
    from_raw, to_raw = query.get("fromDate"), query.get("toDate")
    if (from_raw is None) != (to_raw is None):
        raise InvalidRequest("fromDate and toDate must be given together")
    if from_raw is not None and to_raw is not None:
        first, last = _day(from_raw, "fromDate"), _day(to_raw, "toDate")
        if last < first:
            raise InvalidRequest("toDate must not be before fromDate")
        if last - first > config.max_window_days:
            raise InvalidRequest(
                f"the fromDate/toDate range may span at most {config.max_window_days} days"
            )
        if first < earliest:
            raise InvalidRequest(f"fromDate may be at most {config.lookback_days} days ago")
        start, end = first * DAY_S, (last + 1) * DAY_S
    filter_raw = query.get("filterDate")
    if filter_raw is not None:
        day = _day(filter_raw, "filterDate")
        if day < earliest:
            raise InvalidRequest(f"filterDate may be at most {config.lookback_days} days ago")
        start, end = max(start, day * DAY_S), min(end, (day + 1) * DAY_S)
    return ListQuery(regulation, page, size, status, start, end)


def _int_param(query: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
    if value < minimum:
        raise InvalidRequest(f"{name} must be at least {minimum}")
    return value


def _day(raw: str, name: str) -> int:
    try:
        parsed = date.fromisoformat(raw) if _DATE.fullmatch(raw) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidRequest(f"{name} must be a date in the format YYYY-MM-DD")
    return int(datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC).timestamp() // DAY_S)
