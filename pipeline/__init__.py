"""dsar: bulk data subject requests for the Adobe Experience Platform Privacy Service.

Library first: everything the ``dsar`` command does is reachable from here, and ``__all__``
is what a user scripts with: the client, planning, start / resume / submit a run (each with an
``*_async`` twin for code that already runs an event loop), purge a run, the journal, the
settings loader, the job lookups, the report readers and the error tree. See README "Using
dsar from Python".

The names are imported on first use (module ``__getattr__``), so that starting ``dsar``
imports nothing heavy before its interrupt handling is in place (see
:mod:`pipeline.cli.launch`), and ``import pipeline`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api.auth import (
        ImsTokenProvider,
        StaticTokenProvider,
        TokenProvider,
    )
    from .api.client import (
        PrivacyServiceClient,
    )
    from .api.ratelimit import (
        RateLimiter,
    )
    from .api.retry import (
        RetryPolicy,
    )
    from .errors import (
        AmbiguousSubmission,
        ApiError,
        ApiTimeoutError,
        AuthError,
        ConfigError,
        DailyCapReached,
        DamagedJournal,
        DamagedRunFile,
        InputError,
        JournalError,
        MalformedResponse,
        MissingColumnError,
        NotFoundError,
        PermissionDeniedError,
        PipelineError,
        RequestRejected,
        RunLocked,
        RunPaused,
        TerminalApiError,
        ThrottledError,
        TransientApiError,
        UnavailableError,
    )
    from .input.planning import (
        plan_input,
    )
    from .journal.store import (
        Journal,
    )
    from .reports.deadlines import (
        deadline_watch,
        open_deadlines,
    )
    from .reports.files import (
        read_summary,
        read_table,
    )
    from .run.context import (
        RunOptions,
    )
    from .run.jobs import (
        JobQuery,
        download_job,
        download_job_async,
        get_job,
        get_job_async,
        list_jobs,
        list_jobs_async,
    )
    from .run.purge import (
        purge_run,
        purge_workspace,
    )
    from .run.runner import (
        RunOutcome,
        resume_all,
        resume_all_async,
        resume_run,
        resume_run_async,
        start_run,
        start_run_async,
    )
    from .run.submit import (
        submit_run,
        submit_run_async,
    )
    from .settings import (
        Settings,
        load_settings,
    )

__version__ = "0.1.0"

_LAZY = {
    "ImsTokenProvider": ".api.auth",
    "StaticTokenProvider": ".api.auth",
    "TokenProvider": ".api.auth",
    "PrivacyServiceClient": ".api.client",
    "RateLimiter": ".api.ratelimit",
    "RetryPolicy": ".api.retry",
    "Settings": ".settings",
    "load_settings": ".settings",
    "plan_input": ".input.planning",
    "Journal": ".journal.store",
    "RunOptions": ".run.context",
    "RunOutcome": ".run.runner",
    "start_run": ".run.runner",
    "start_run_async": ".run.runner",
    "resume_run": ".run.runner",
    "resume_run_async": ".run.runner",
    "resume_all": ".run.runner",
    "resume_all_async": ".run.runner",
    "submit_run": ".run.submit",
    "purge_run": ".run.purge",
    "purge_workspace": ".run.purge",
    "submit_run_async": ".run.submit",
    "JobQuery": ".run.jobs",
    "list_jobs": ".run.jobs",
    "list_jobs_async": ".run.jobs",
    "get_job": ".run.jobs",
    "get_job_async": ".run.jobs",
    "download_job": ".run.jobs",
    "download_job_async": ".run.jobs",
    "read_summary": ".reports.files",
    "read_table": ".reports.files",
    "open_deadlines": ".reports.deadlines",
    "deadline_watch": ".reports.deadlines",
    "PipelineError": ".errors",
    "ConfigError": ".errors",
    "InputError": ".errors",
    "MissingColumnError": ".errors",
    "DamagedRunFile": ".errors",
    "JournalError": ".errors",
    "DamagedJournal": ".errors",
    "RunPaused": ".errors",
    "RunLocked": ".errors",
    "ApiError": ".errors",
    "TransientApiError": ".errors",
    "ThrottledError": ".errors",
    "UnavailableError": ".errors",
    "ApiTimeoutError": ".errors",
    "AmbiguousSubmission": ".errors",
    "DailyCapReached": ".errors",
    "TerminalApiError": ".errors",
    "AuthError": ".errors",
    "PermissionDeniedError": ".errors",
    "RequestRejected": ".errors",
    "NotFoundError": ".errors",
    "MalformedResponse": ".errors",
}


def __getattr__(name: str) -> Any:
    """Import a public name of the package on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AmbiguousSubmission",
    "ApiError",
    "ApiTimeoutError",
    "AuthError",
    "ConfigError",
    "DailyCapReached",
    "DamagedJournal",
    "DamagedRunFile",
    "ImsTokenProvider",
    "InputError",
    "JobQuery",
    "Journal",
    "JournalError",
    "MalformedResponse",
    "MissingColumnError",
    "NotFoundError",
    "PermissionDeniedError",
    "PipelineError",
    "PrivacyServiceClient",
    "RateLimiter",
    "RequestRejected",
    "RetryPolicy",
    "RunLocked",
    "RunOptions",
    "RunOutcome",
    "RunPaused",
    "Settings",
    "StaticTokenProvider",
    "TerminalApiError",
    "ThrottledError",
    "TokenProvider",
    "TransientApiError",
    "UnavailableError",
    "__version__",
    "deadline_watch",
    "download_job",
    "download_job_async",
    "get_job",
    "get_job_async",
    "list_jobs",
    "list_jobs_async",
    "load_settings",
    "open_deadlines",
    "plan_input",
    "purge_run",
    "purge_workspace",
    "read_summary",
    "read_table",
    "resume_all",
    "resume_all_async",
    "resume_run",
    "resume_run_async",
    "start_run",
    "start_run_async",
    "submit_run",
    "submit_run_async",
]
