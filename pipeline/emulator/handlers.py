"""HTTP handlers: turn aiohttp requests into backend calls and backend results into responses.

Each handler's docstring ends with what the real service does that the emulator does not.
Authentication, limits and faults run before the handler, in :mod:`.gateway`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .backend import PrivacyBackend
from .catalog import API_PREFIX
from .config import ClientConfig
from .errors import CONSENT_URI, InvalidContentType, InvalidRequest
from .faults import Fault
from .keys import BACKEND_KEY, CLIENT_KEY, DropConnection, fault_error


def backend_of(request: web.Request) -> PrivacyBackend:
    """The backend serving this app."""
    return request.app[BACKEND_KEY]


def _client(request: web.Request) -> ClientConfig:
    return request[CLIENT_KEY]  # type: ignore[no-any-return]


async def _json_body(request: web.Request, uri: str) -> Any:
    if request.content_type != "application/json":
        raise InvalidContentType()
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequest("the request body must be valid JSON", uri=uri) from None


async def issue_token(request: web.Request) -> web.Response:
    """POST /ims/token/v3: OAuth client credentials from the form (or the query string).

    Not emulated: scopes are required but not checked, there is no JWT exchange and no
    per-region IMS host, and tokens are opaque strings rather than signed JWTs.
    """
    form: dict[str, str] = dict(request.query)
    if request.content_type == "application/x-www-form-urlencoded":
        form.update({k: str(v) for k, v in (await request.post()).items()})
    return web.json_response(backend_of(request).issue_token(form))


async def list_jobs(request: web.Request) -> web.Response:
    """GET /jobs: one page of the org's jobs for one regulation, oldest first.

    A status filter returns only jobs of that status (the seed); jobs past retention are not
    listed, as GET /jobs/{jobId} answers 404 for them.

    Not emulated: the date filters apply to the creation date (the real service may use the
    processing date), and the order of the real service's list is undocumented.
    """
    body = backend_of(request).list_jobs(_client(request), request.query)
    return web.json_response(body)


async def create_jobs(request: web.Request) -> web.Response:
    """POST /jobs: validate the payload and create one job per (user, action).

    A caller-supplied ``requestId`` becomes the request's id; without one the service makes one.

    Not emulated: ``mergePolicyId``, ``expandIds``, ``priority`` and extra company contexts are
    validated but change nothing; child jobs and per-product job splitting do not exist.
    """
    payload = await _json_body(request, "/data/core/privacy/jobs")
    backend = backend_of(request)
    body = backend.create_jobs(_client(request), payload)
    fault = backend.faults.after_create()
    if fault is not Fault.NONE:
        backend.stats.faults[f"ambiguous_{fault.value}"] += 1
        if fault is Fault.RESET:
            raise DropConnection()
        raise fault_error(fault)
    return web.json_response(body, status=202)


async def get_job(request: web.Request) -> web.Response:
    """GET /jobs/{jobId}: the job's details, with ``downloadURL`` when an access job is complete.

    The seed's example spells the link ``downloadURL``; ``download_url_keys`` can add or switch
    to the spec's ``downloadUrl``.

    Not emulated: ``qualifiedCount`` and ``childJobs`` are never present, ``retryCount`` stays 0,
    and product messages are fixed texts rather than each product's own wording.
    """
    job_id = request.match_info["jobId"]
    url = f"{request.scheme}://{request.host}{API_PREFIX}/jobs/{job_id}/content"
    body = backend_of(request).get_job(_client(request), job_id, url)
    return web.json_response(body)


async def job_content(request: web.Request) -> web.Response:
    """GET /jobs/{jobId}/content: the access results as a ZIP, one folder per product.

    Not emulated: the files hold synthetic records derived from the request's identities, not
    product data, and there is no content-delivery permission separate from read access.
    """
    data = backend_of(request).job_content(_client(request), request.match_info["jobId"])
    job_id = request.match_info["jobId"]
    return web.Response(
        body=data,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{job_id}.zip"'},
    )


async def consent(request: web.Request) -> web.Response:
    """POST /consent: validate an opt-out-of-sale request; 202 with no body.

    Not emulated: the opt-out is not recorded against identities, and there is no way to read
    it back (nor is there in the real API).
    """
    payload = await _json_body(request, CONSENT_URI)
    backend_of(request).consent(_client(request), payload)
    return web.Response(status=202)
