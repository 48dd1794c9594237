"""Token caching and renewal, client construction from settings, and the retry policy."""

from __future__ import annotations

import pytest
from aioresponses import aioresponses

from pipeline.api.auth import ImsTokenProvider, StaticTokenProvider
from pipeline.api.client import PrivacyServiceClient
from pipeline.api.retry import RetryPolicy
from pipeline.errors import AuthError, ConfigError, ThrottledError, UnavailableError
from pipeline.settings import ApiSettings, Credentials, Secret, Settings
from tests.helpers.api import CLIENT_ID, CLIENT_SECRET, IMS, TOKEN, TOKEN_2, Recorder
from tests.helpers.vclock import VirtualClock


async def test_a_token_is_cached_and_renewed_shortly_before_it_expires(
    clock: VirtualClock, tokens: Recorder
) -> None:
    provider = ImsTokenProvider(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scopes="openid", ims_url=IMS, clock=clock
    )
    try:
        assert await provider.get_token() == TOKEN
        assert await provider.get_token() == TOKEN
        assert len(tokens.times) == 1
        form = tokens.calls[0]["data"]
        assert form["grant_type"] == "client_credentials"
        assert (form["client_id"], form["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)
        clock.now += 86_399 - 300 - 1  # still inside the 300 s safety margin
        assert await provider.get_token() == TOKEN
        clock.now += 2
        assert await provider.get_token() == TOKEN_2
        assert len(tokens.times) == 2
        assert CLIENT_SECRET not in repr(provider)
        assert TOKEN_2 not in repr(provider)
    finally:
        await provider.aclose()


async def test_a_stale_token_is_refreshed_once_however_many_callers_ask(
    clock: VirtualClock, tokens: Recorder
) -> None:
    provider = ImsTokenProvider(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scopes="openid", ims_url=IMS, clock=clock
    )
    try:
        stale = await provider.get_token()
        fresh = {await provider.refresh(stale) for _ in range(20)}
        assert fresh == {TOKEN_2}
        assert len(tokens.times) == 2
    finally:
        await provider.aclose()


async def test_a_static_token_cannot_be_renewed() -> None:
    provider = StaticTokenProvider("abc-token-value")
    assert await provider.get_token() == "abc-token-value"
    assert "abc-token-value" not in repr(provider)
    with pytest.raises(AuthError):
        await provider.refresh("abc-token-value")


def _settings(**api: object) -> Settings:
    return Settings(
        api=ApiSettings(**api),  # type: ignore[arg-type]
        credentials=Credentials(
            client_id=Secret(CLIENT_ID), client_secret=Secret(CLIENT_SECRET), org_id="O@AdobeOrg"
        ),
    )


def test_from_settings_needs_a_base_url_credentials_and_a_timeout_under_60s() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        PrivacyServiceClient.from_settings(_settings())
    with pytest.raises(ConfigError, match="ADOBE_CLIENT_ID"):
        PrivacyServiceClient.from_settings(Settings(api=ApiSettings(base_url="https://x.test/")))
    with pytest.raises(ConfigError, match="gateway"):
        PrivacyServiceClient.from_settings(_settings(base_url="https://x.test/", timeout_s=60.0))


async def test_from_settings_adds_the_trailing_slash_and_reads_the_limits(
    mocked: aioresponses,
) -> None:
    client = PrivacyServiceClient.from_settings(_settings(base_url="https://x.test/api"))
    async with client:
        assert client.base_url == "https://x.test/api/"
        assert client.limiter.ceiling == 10.0
        assert client.retry.max_retries == 6


def test_backoff_doubles_up_to_the_cap_and_jitter_spreads_it() -> None:
    exact = RetryPolicy(base_s=0.5, cap_s=4.0, jitter=lambda v: v)
    delays = exact.backoff_delays()
    assert [next(delays) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jittered = RetryPolicy(base_s=0.5, cap_s=4.0).backoff_delays()
    samples = [next(jittered) for _ in range(200)]
    assert all(0 <= s <= 4.0 for s in samples)
    assert len(set(samples)) > 100


def test_retry_after_is_used_exactly_and_other_errors_get_the_jittered_wait() -> None:
    policy = RetryPolicy()
    assert policy.wait_for(ThrottledError("x", retry_after_s=7), 0.3) == 7.0
    assert policy.wait_for(ThrottledError("x"), 0.3) == 0.3
    assert policy.wait_for(UnavailableError("x"), 0.3) == 0.3
