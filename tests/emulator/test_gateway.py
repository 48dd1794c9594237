"""Gateway behaviour: token endpoint, header checks with the documented bodies, Date header."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from tests.helpers.emulator import OTHER, Api, payload


async def test_the_token_endpoint_issues_a_bearer_token_with_its_lifetime(api: Api) -> None:
    form = api.token_form()
    reply = await api.raw("POST", f"{api.emu.ims_url}ims/token/v3", data=form)
    assert reply.status == 200
    assert reply.body["token_type"] == "bearer"
    assert reply.body["expires_in"] == 86399
    assert reply.body["access_token"]


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"scope": ""}, 400, "invalid_request"),
    ],
)
async def test_the_token_endpoint_refuses_bad_credentials(
    api: Api, change: dict[str, str], status: int, error: str
) -> None:
    form = api.token_form()
    form.update(change)
    reply = await api.raw("POST", f"{api.emu.ims_url}ims/token/v3", data=form)
    assert reply.status == status
    assert reply.body["error"] == error


async def _jobs(api: Api, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    reply = await api.raw("GET", api.emu.base_url + "jobs?regulation=gdpr", headers=headers)
    return reply.status, reply.body


@pytest.mark.parametrize(
    ("drop", "status", "code"),
    [
        # the HTTP status is the code's prefix, as for every other gateway code
        ("Authorization", 403, "403010"),
        ("x-api-key", 403, "403000"),
        ("x-gw-ims-org-id", 400, "400003"),
    ],
)
async def test_a_missing_gateway_header_gets_the_documented_error(
    api: Api, drop: str, status: int, code: str
) -> None:
    headers = await api.headers()
    del headers[drop]
    got_status, body = await _jobs(api, headers)
    assert (got_status, body["error_code"]) == (status, code)
    assert set(body) == {"error_code", "message"}
    assert body["message"]


async def test_an_unknown_token_is_401013(api: Api) -> None:
    headers = await api.headers()
    headers["Authorization"] = "Bearer not-a-token"
    status, body = await _jobs(api, headers)
    assert (status, body["error_code"], body["message"]) == (
        401,
        "401013",
        "Oauth token is not valid",
    )


async def test_a_token_expires_with_the_emulator_clock(api: Api) -> None:
    headers = await api.headers()
    assert (await _jobs(api, headers))[0] == 200
    api.emu.backend.advance(86_399)
    status, body = await _jobs(api, headers)
    assert (status, body["error_code"]) == (401, "401013")


async def test_an_api_key_that_is_not_the_tokens_client_is_403003(api: Api) -> None:
    headers = await api.headers()
    headers["x-api-key"] = OTHER.client_id
    status, body = await _jobs(api, headers)
    assert (status, body["error_code"]) == (403, "403003")


async def test_a_token_is_not_valid_for_another_known_org(api: Api) -> None:
    headers = await api.headers()
    headers["x-gw-ims-org-id"] = OTHER.org_id
    status, body = await _jobs(api, headers)
    assert (status, body["error_code"]) == (403, "403025")


async def test_an_unknown_org_header_is_403027(api: Api) -> None:
    headers = await api.headers()
    headers["x-gw-ims-org-id"] = "NOSUCHORG@AdobeOrg"
    status, body = await _jobs(api, headers)
    assert (status, body["error_code"]) == (403, "403027")


async def test_a_non_bearer_authorization_is_401013(api: Api) -> None:
    headers = await api.headers()
    headers["Authorization"] = "Basic abc"
    assert (await _jobs(api, headers))[0] == 401


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_post_without_json_content_type_is_refused(
    api: Api, content_type: str | None
) -> None:
    headers = await api.headers()
    if content_type:
        headers["Content-Type"] = content_type
    reply = await api.raw("POST", api.emu.base_url + "jobs", data=b'{"users": []}', headers=headers)
    assert reply.status == 400
    assert reply.body == {
        "type": "/placeholder/type/uri",
        "status": 400,
        "title": "BadRequestError",
        "detail": "A valid content-type must be specified",
    }


async def test_every_response_carries_a_date_from_the_emulator_clock(api: Api) -> None:
    reply = await api.call("GET", "jobs?regulation=gdpr")
    first = parsedate_to_datetime(reply.headers["Date"])
    assert first.isoformat() == "2026-03-02T10:00:00+00:00"
    api.emu.backend.advance(3 * 86_400)
    await api.fetch_token()
    error = await api.call("GET", "jobs?regulation=nope")
    assert error.status == 400
    later = parsedate_to_datetime(error.headers["Date"])
    assert (later - first).days == 3
    control = await api.control("GET", "stats")
    assert parsedate_to_datetime(control.headers["Date"]) == later


async def test_a_trailing_slash_is_tolerated(api: Api) -> None:
    assert (await api.call("GET", "jobs/?regulation=gdpr")).status == 200
    created = await api.call("POST", "jobs/", json=payload())
    assert created.status == 202
    job_id = created.body["jobs"][0]["jobId"]
    assert (await api.call("GET", f"jobs/{job_id}/")).status == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "data/core/privacy/nothing-here", 404, "404000"),
        ("GET", "data/core/privacy/jobs/abc/content/extra", 404, "404000"),
        ("GET", "elsewhere", 404, "404000"),
        ("DELETE", "data/core/privacy/jobs/abc", 405, "405000"),
        ("PUT", "data/core/privacy/jobs", 405, "405000"),
        ("GET", "data/core/privacy/consent", 405, "405000"),
    ],
)
async def test_unknown_paths_and_methods_get_a_json_gateway_error_after_auth(
    api: Api, method: str, path: str, status: int, code: str
) -> None:
    url = api.emu.root_url + path
    anonymous = await api.raw(method, url)
    assert (anonymous.status, anonymous.body["error_code"]) == (403, "403000")
    headers = await api.headers()
    del headers["Authorization"]
    no_token = await api.raw(method, url, headers=headers)
    assert (no_token.status, no_token.body["error_code"]) == (403, "403010")
    reply = await api.raw(method, url, headers=await api.headers())
    assert (reply.status, reply.body["error_code"]) == (status, code)
    assert set(reply.body) == {"error_code", "message"}
    if status == 405:
        assert reply.headers["Allow"]
        assert method not in reply.headers["Allow"].split(", ")
    stats = (await api.control("GET", "stats")).body
    assert stats["requests"][f"{method} unmatched"] == {"403": 2, str(status): 1}


async def test_the_token_endpoint_answers_a_wrong_method_in_its_own_shape(api: Api) -> None:
    reply = await api.raw("GET", f"{api.emu.ims_url}ims/token/v3")
    assert reply.status == 405
    assert set(reply.body) == {"error", "error_description"}
