"""Wire shapes of jobs: the list item, the full job details, and the access-results ZIP."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from .catalog import IDS_NOT_FOUND, NOT_PROVISIONED, OUTCOMES, PARTIAL
from .clock import service_date
from .store import Job, ProductState

_NO_DATA = frozenset({NOT_PROVISIONED, IDS_NOT_FOUND})


def basic(job: Job, now: float) -> dict[str, Any]:
    """The list item (``PrivacyJobBasic``) for ``job`` as of ``now``."""
    req = job.request
    return {
        "jobId": job.job_id,
        "requestId": req.request_id,
        "userKey": job.user.key,
        "action": job.action,
        "status": job.status_at(now),
        "submittedBy": req.submitted_by,
        "createdDate": service_date(req.created_at),
        "lastModifiedDate": service_date(job.last_modified_at(now)),
    }


def details(
    job: Job, now: float, download_url: str | None, url_keys: tuple[str, ...]
) -> dict[str, Any]:
    """The full job details of GET /jobs/{jobId}, shaped like the seed's example.

    The results link of a complete access job goes under each spelling in ``url_keys``.
    """
    body = basic(job, now)
    body["userIds"] = [_user_id(i) for i in job.user.ids]
    body["productResponses"] = [_product(job, state, now) for state in job.products()]
    if download_url is not None and body["status"] == "complete" and job.action == "access":
        for key in url_keys:
            body[key] = download_url
    body["regulation"] = job.request.regulation
    return body


def _user_id(identity: tuple[str, str, str, int | None, bool]) -> dict[str, Any]:
    namespace, value, id_type, namespace_id, deleted = identity
    item: dict[str, Any] = {"namespace": namespace, "value": value, "type": id_type}
    if namespace_id is not None:
        item["namespaceId"] = namespace_id
    item["isDeletedClientSide"] = deleted
    return item


def _product(job: Job, state: ProductState, now: float) -> dict[str, Any]:
    if now < state.ack_at:
        status: dict[str, Any] = {"status": "submitted", "message": "processing"}
        processed = ""
    elif now < state.done_at:
        status = {"status": "processing", "message": "processing"}
        processed = ""
    else:
        code, final, message, detail = OUTCOMES[state.outcome]
        status = {
            "status": final,
            "message": message,
            "responseMsgCode": code,
            "responseMsgDetail": detail,
        }
        if state.outcome == PARTIAL:
            processed_ids, ignored_ids = _split_ids(job)
            status["results"] = {"processed": processed_ids, "ignored": ignored_ids}
        processed = service_date(state.done_at)
    item: dict[str, Any] = {"product": state.product, "retryCount": 0}
    if processed:
        item["processedDate"] = processed
    item["productStatusResponse"] = status
    return item


def _split_ids(job: Job) -> tuple[list[str], list[str]]:
    values = [identity[1] for identity in job.user.ids]
    half = max(1, len(values) // 2) if len(values) > 1 else 1
    return values[:half], values[half:]


def content_zip(job: Job) -> bytes:
    """The access results: one folder per product, each with a JSON file.

    Products that found nothing (not provisioned, IDs not found) get an empty JSON array.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for state in job.products():
            records: list[dict[str, Any]] = []
            if state.outcome not in _NO_DATA:
                found = _split_ids(job)[0] if state.outcome == PARTIAL else None
                records = [
                    {
                        "namespace": namespace,
                        "value": value,
                        "attributes": {"source": state.product, "records": 1},
                    }
                    for namespace, value, *_ in job.user.ids
                    if found is None or value in found
                ]
            document: Any = (
                {
                    "privacyResponse": {
                        "jobId": job.job_id,
                        "product": state.product,
                        "response": records,
                    }
                }
                if records
                else []
            )
            name = f"{job.job_id}/{state.product}/data.json"
            archive.writestr(name, json.dumps(document, indent=2))
    return buffer.getvalue()
