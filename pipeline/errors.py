"""One exception tree for dsar.

::

    PipelineError                      exit code
    ├── ConfigError                    2  usage or configuration
    ├── InputError                     3  input unreadable / no valid row
    │   ├── MissingColumnError         3
    │   └── DamagedRunFile             3  a report file of a run unreadable, a result ZIP gone
    ├── JournalError                   6  journal unreadable, illegal transition
    │   └── DamagedJournal             6  journal.sqlite / ledger.sqlite not a sound database
    ├── RunPaused                      4  work pending: daily cap, max runtime, --no-wait, signal
    ├── RunLocked                      7  another dsar process drives this run or workspace
    └── ApiError                       6  anything the Privacy Service (or IMS) said or did
        ├── TransientApiError             retry later (idempotent calls are retried)
        │   ├── ThrottledError            429, PRVCY-1030-400; carries retry_after_s
        │   ├── UnavailableError          5xx, connection reset, DNS, refused
        │   ├── ApiTimeoutError           the call did not answer in time
        │   └── AmbiguousSubmission       POST /jobs failed after it may have created jobs
        ├── DailyCapReached               the org's daily job cap: stop submitting today
        └── TerminalApiError              do not retry
            ├── AuthError              5  401 after one token refresh, IMS refused the credentials
            ├── PermissionDeniedError  5  403
            ├── RequestRejected           other 4xx, with the service's message
            ├── NotFoundError             404
            └── MalformedResponse         the body is not the JSON the endpoint documents

Messages are built in ``__init__`` from structured fields; no exception ever carries an
identity value, a user key derived from one, a token or a secret.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error dsar raises on purpose."""

    exit_code = 6


class ConfigError(PipelineError):
    """The configuration or the command line is wrong."""

    exit_code = 2


class TooManyJobs(ConfigError):
    """A run would create more jobs than ``--max-jobs`` (``limits.max_jobs``) allows."""


class InputError(PipelineError):
    """The input cannot be read, or holds no valid row."""

    exit_code = 3


class MissingColumnError(InputError):
    """A required input column is absent."""

    def __init__(self, column: str, path: str) -> None:
        self.column = column
        self.path = path
        super().__init__(f"{path}: required column {column!r} is missing")


class DamagedRunFile(InputError):
    """A file of a run directory cannot be read; the message says which and what to do."""

    def __init__(self, path: str, problem: str, remedy: str) -> None:
        self.path = path
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{path} is damaged ({one_line(problem)}): {remedy}")


class JournalError(PipelineError):
    """The run journal is unreadable, of an unknown version, or a transition was illegal."""

    exit_code = 6


# what to do about a damaged database, by file name
_DATABASE_REMEDIES = {
    "journal.sqlite": "restore it from a backup; do not plan the input again, or the jobs "
    "status.parquet lists would be submitted twice",
    "ledger.sqlite": "move it aside and dsar starts a new ledger (the service still enforces "
    "its daily cap)",
    "registry.sqlite": "move it aside: the next run rebuilds it from the run journals of the "
    "workspace",
}


class DamagedJournal(JournalError):
    """journal.sqlite (or a workspace's ledger.sqlite) is not a sound SQLite database."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        remedy = _DATABASE_REMEDIES.get(name, "restore it from a backup")
        super().__init__(f"{path} is damaged ({one_line(problem)}): {remedy}")


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line (whitespace runs collapsed), at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class RunPaused(PipelineError):
    """The run stopped with work pending; ``dsar resume`` continues it."""

    exit_code = 4

    def __init__(self, reason: str, resume_after: str | None = None) -> None:
        self.reason = reason
        self.resume_after = resume_after
        message = f"run paused: {reason}"
        if resume_after:
            message += f"; resume after {resume_after}"
        super().__init__(message)


class RunLocked(PipelineError):
    """Another dsar process holds the lock of this run (or workspace): try again when it ends."""

    exit_code = 7

    def __init__(self, what: str, pid: int | None, since: str | None) -> None:
        self.what = what
        self.pid = pid
        self.since = since
        holder = f"pid {pid}" if pid else "another dsar process"
        when = f" since {since}" if since else ""
        super().__init__(f"{what} is being driven by {holder}{when}; try again when it ends")


class ApiError(PipelineError):
    """An error from the Privacy Service or IMS.

    ``endpoint`` is a template such as ``"GET jobs/{id}"``, never a URL with values in it.
    """

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.request_id = request_id
        parts = [p for p in (endpoint, str(status) if status else "", code or "") if p]
        prefix = " ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class TransientApiError(ApiError):
    """A failure that may succeed if tried again later."""


class ThrottledError(TransientApiError):
    """The service asked us to slow down (429, or PRVCY-1030-400)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        endpoint: str = "",
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            message, endpoint=endpoint, status=status, code=code, request_id=request_id
        )


class UnavailableError(TransientApiError):
    """The service or the network failed (5xx, reset, refused)."""


class ApiTimeoutError(TransientApiError):
    """The call did not answer within its timeout."""


class AmbiguousSubmission(TransientApiError):
    """A POST /jobs failed in a way that may have created the jobs; reconcile, never re-POST."""


class DailyCapReached(ApiError):
    """The POST does not fit what is left of the org's daily job cap; nothing was created.
    Not a failure: smaller requests may still fit, and submitting resumes tomorrow (UTC)."""

    exit_code = 4


class TerminalApiError(ApiError):
    """A failure that retrying will not fix."""


class AuthError(TerminalApiError):
    """The credentials were refused, or a fresh token was still rejected."""

    exit_code = 5


class PermissionDeniedError(TerminalApiError):
    """The credential lacks the permission for this call (403)."""

    exit_code = 5


class RequestRejected(TerminalApiError):
    """The service rejected the request (a 4xx other than auth, throttling and the daily cap)."""


class NotFoundError(TerminalApiError):
    """The resource does not exist, or is not visible to this org (404)."""


class MalformedResponse(TerminalApiError):
    """The response body is not what the endpoint documents."""
