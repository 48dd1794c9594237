"""Request-side models shared by the input stages, the client and the run engine.

Plain frozen dataclasses and enums. They hold the API's own rules (at most 1000 users per
request, at most 9 identities per user, the actions, qualifiers, products and priorities) and
check them in ``__post_init__``, so a request that the service would refuse cannot be built.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from . import constants
from .errors import ConfigError


class Action(enum.StrEnum):
    """What a job does for its data subject."""

    ACCESS = "access"
    DELETE = "delete"
    OPT_OUT_OF_SALE = "opt-out-of-sale"


class JobStatus(enum.StrEnum):
    """A job's status as the service reports it."""

    SUBMITTED = "submitted"
    PROCESSING = "processing"
    COMPLETE = "complete"
    ERROR = "error"

    @property
    def terminal(self) -> bool:
        """True for complete and error: the job will not change any more."""
        return self in (JobStatus.COMPLETE, JobStatus.ERROR)


@dataclass(frozen=True, slots=True)
class Identity:
    """One identity of a data subject: namespace, value and qualifier (``type``).

    ``repr`` hides the value: identities are personal data and must never reach a log.
    """

    namespace: str
    value: str
    type: str = "standard"

    def __post_init__(self) -> None:
        if self.type not in constants.ID_TYPES:
            raise ValueError(f"unknown identity type {self.type!r}")
        if not self.namespace:
            raise ValueError("identity namespace is empty")

    def __repr__(self) -> str:
        return f"Identity(namespace={self.namespace!r}, type={self.type!r}, value=***)"

    def to_wire(self) -> dict[str, object]:
        """The ``userIDs[]`` item of a POST /jobs body."""
        return {"namespace": self.namespace, "value": self.value, "type": self.type}


@dataclass(frozen=True, slots=True)
class UserRequest:
    """One ``users[]`` entry: a user key, its actions and at most 9 identities."""

    key: str
    actions: tuple[Action, ...]
    identities: tuple[Identity, ...]

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("user key is empty")
        if not self.actions or len(set(self.actions)) != len(self.actions):
            raise ValueError("actions must be non-empty and unique")
        if Action.OPT_OUT_OF_SALE in self.actions and len(self.actions) != 1:
            raise ValueError("opt-out-of-sale must be the only action of a user")
        if not 1 <= len(self.identities) <= constants.MAX_IDS_PER_USER:
            raise ValueError(f"a user needs 1..{constants.MAX_IDS_PER_USER} identities")

    def to_wire(self) -> dict[str, object]:
        """The ``users[]`` item of a POST /jobs body."""
        return {
            "key": self.key,
            "action": [a.value for a in self.actions],
            "userIDs": [i.to_wire() for i in self.identities],
        }


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """The request-level options; users may share a request only if these are equal."""

    regulation: str
    include: tuple[str, ...]
    priority: str = "normal"
    expand_ids: bool = False
    merge_policy_id: str | None = None
    org: str = constants.DEFAULT_ORG  # the [[orgs]] name whose client sends the request

    def __post_init__(self) -> None:
        if self.regulation not in constants.REGULATIONS:
            raise ConfigError(f"unknown regulation {self.regulation[:40]!r}")
        if not self.include:
            raise ConfigError("job.include must name at least one product")
        unknown = [p for p in self.include if p.lower() not in constants.PRODUCTS]
        if unknown:
            raise ConfigError(
                f"job.include: unknown products: {', '.join(p[:40] for p in unknown)}"
            )
        if self.priority not in constants.PRIORITIES:
            raise ConfigError(f"job.priority: unknown priority {self.priority[:40]!r}")


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One POST /jobs: request options and 1..1000 users.

    Opt-out-of-sale users travel in requests of their own (the service requires it).
    """

    options: RequestOptions
    users: tuple[UserRequest, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.users) <= constants.MAX_USERS_PER_REQUEST:
            raise ValueError(f"a request needs 1..{constants.MAX_USERS_PER_REQUEST} users")
        opt_out = [Action.OPT_OUT_OF_SALE in u.actions for u in self.users]
        if any(opt_out) and not all(opt_out):
            raise ValueError("opt-out-of-sale users cannot share a request with access/delete")

    @property
    def job_count(self) -> int:
        """Jobs this request creates: one per (user, action)."""
        return sum(len(u.actions) for u in self.users)

    def to_wire(self, org_id: str) -> dict[str, object]:
        """The JSON body of POST /jobs for ``org_id``."""
        body: dict[str, object] = {
            "companyContexts": [{"namespace": "imsOrgID", "value": org_id}],
            "users": [u.to_wire() for u in self.users],
            "include": list(self.options.include),
            "expandIds": self.options.expand_ids,
            "priority": self.options.priority,
            "regulation": self.options.regulation,
        }
        if self.options.merge_policy_id is not None:
            body["mergePolicyId"] = self.options.merge_policy_id
        return body


@dataclass(frozen=True, slots=True)
class PlannedUser:
    """A user of the plan: the request entry plus what reports need to join back.

    ``subject_key`` is the join key of reports; ``part`` is 0 unless a subject with more than
    9 identities was split over several users; ``input_rows`` are the 0-based data-row numbers
    of the input rows merged into this subject (each row belongs to exactly one subject; a
    split subject lists its rows on part 0 only). ``received_at`` is an ISO-8601 UTC string
    from the optional input column, or None.
    """

    subject_key: str
    part: int
    request: UserRequest
    input_rows: tuple[int, ...]
    received_at: str | None = None

    @property
    def user_key(self) -> str:
        """The key sent to the service (free of PII)."""
        return self.request.key


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """One planned POST /jobs: a deterministic id, its options and its users."""

    batch_id: str
    options: RequestOptions
    users: tuple[PlannedUser, ...]

    def to_request(self) -> JobRequest:
        """The typed request the client sends for this batch."""
        return JobRequest(options=self.options, users=tuple(u.request for u in self.users))

    @property
    def job_count(self) -> int:
        """Jobs this batch creates: one per (user, action)."""
        return sum(len(u.request.actions) for u in self.users)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductResponse:
    """One application's part of a job (``GET /jobs/{id}``): what the client parses and the
    journal stores.

    ``outcome`` is what the status and code mean for the reports (success, not_provisioned,
    ..., None while the product works): the client fills it; the journal does not store it.
    """

    product: str
    status: str
    response_code: str | None = None
    outcome: str | None = None
    message: str | None = None
    detail: str | None = field(default=None, repr=False)
    processed_at: datetime | None = None
    retry_count: int = 0
    processed_count: int | None = None
    ignored_count: int | None = None
