"""Access tokens from Adobe IMS (OAuth server-to-server), cached and refreshed.

:class:`ImsTokenProvider` posts the client credentials as a form to ``{ims_url}ims/token/v3``,
keeps the token in memory, and fetches a new one shortly before it expires or when the
service refuses it (:meth:`refresh`). Refreshes are serialised: however many calls meet a 401
with the same stale token, one token request is made and all of them get its result.
Neither the secret nor the token ever appears in a ``repr``, a log line or an error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import aiohttp

from .. import constants
from ..errors import AuthError, ConfigError, MalformedResponse
from ..settings import Secret, Settings
from .clock import Clock, SystemClock
from .transport import CallStats, Redactor, exchange, parse_error_body, raise_for_status

log = logging.getLogger("dsar.auth")

TOKEN_ENDPOINT = "POST ims/token/v3"


class TokenProvider(Protocol):
    """Where the client gets its bearer token."""

    async def get_token(self) -> str:
        """A token believed valid now."""
        ...

    async def refresh(self, stale: str) -> str:
        """A token other than ``stale`` (which the service refused), fetching one if needed."""
        ...

    async def aclose(self) -> None:
        """Release what the provider holds (its own HTTP session, if any)."""
        ...


class StaticTokenProvider:
    """A fixed token (for tools that obtained one elsewhere); a refusal is final."""

    def __init__(self, token: str | Secret) -> None:
        self._token = token if isinstance(token, Secret) else Secret(token)

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=***)"

    async def get_token(self) -> str:
        """The fixed token."""
        return self._token.get()

    async def refresh(self, stale: str) -> str:
        """Raise AuthError: a fixed token cannot be renewed."""
        raise AuthError("the access token was refused and cannot be renewed")

    async def aclose(self) -> None:
        """Nothing to release."""


class ImsTokenProvider:
    """Client-credentials tokens from IMS, cached until ``refresh_margin_s`` before expiry."""

    def __init__(
        self,
        *,
        client_id: str | Secret,
        client_secret: str | Secret,
        scopes: str,
        ims_url: str = constants.DEFAULT_IMS_URL,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        timeout_s: float = 30.0,
        refresh_margin_s: float = 300.0,
        stats: CallStats | None = None,
    ) -> None:
        if not ims_url.endswith("/"):
            ims_url += "/"
        self._client_id = client_id if isinstance(client_id, Secret) else Secret(client_id)
        self._secret = client_secret if isinstance(client_secret, Secret) else Secret(client_secret)
        if not self._client_id or not self._secret:
            raise AuthError("client id and client secret are both required for IMS")
        self.scopes = scopes
        self.token_url = ims_url + constants.IMS_TOKEN_PATH
        self._session = session
        self._owns_session = session is None
        self._clock: Clock = clock or SystemClock()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._margin_s = refresh_margin_s
        self.stats = stats or CallStats()
        self._token: Secret | None = None
        self._expires_at = float("-inf")
        self._lock = asyncio.Lock()
        self.token_requests = 0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        stats: CallStats | None = None,
    ) -> ImsTokenProvider:
        """A provider for ``settings.credentials`` at ``settings.api.ims_url`` (default IMS)."""
        creds = settings.credentials
        if not (creds.client_id and creds.client_secret):
            raise ConfigError("ADOBE_CLIENT_ID and ADOBE_CLIENT_SECRET are required for IMS")
        return cls(
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            scopes=creds.scopes,
            ims_url=settings.api.ims_url or constants.DEFAULT_IMS_URL,
            session=session,
            clock=clock,
            timeout_s=settings.api.timeout_s,
            stats=stats,
        )

    def __repr__(self) -> str:
        state = "cached" if self._token else "empty"
        return f"ImsTokenProvider(token_url={self.token_url!r}, client_id=***, token={state})"

    def _valid(self) -> bool:
        return self._token is not None and self._clock.monotonic() < self._expires_at

    async def get_token(self) -> str:
        """The cached token, or a new one when none is cached or it is about to expire."""
        if not self._valid():
            async with self._lock:
                if not self._valid():
                    await self._fetch()
        assert self._token is not None
        return self._token.get()

    async def refresh(self, stale: str) -> str:
        """A fresh token unless another caller already replaced ``stale`` (then that one)."""
        async with self._lock:
            if self._token is None or self._token.get() == stale:
                await self._fetch()
        assert self._token is not None
        return self._token.get()

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.token_requests += 1
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id.get(),
            "client_secret": self._secret.get(),
            "scope": self.scopes,
        }
        resp = await exchange(
            self._session,
            "POST",
            self.token_url,
            endpoint=TOKEN_ENDPOINT,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            client_timeout=self._timeout,
            stats=self.stats,
            form=form,
        )
        if 400 <= resp.status < 500 and resp.status != 429:
            # IMS says the credentials are wrong; its error code (e.g. invalid_client) is safe.
            detail = Redactor()(parse_error_body(resp.body).code)
            raise AuthError(
                f"IMS refused the client credentials{f' ({detail})' if detail else ''}",
                endpoint=TOKEN_ENDPOINT,
                status=resp.status,
            )
        raise_for_status(resp, Redactor((self._client_id.get(), self._secret.get())))
        data = resp.json()
        token = data.get("access_token") if isinstance(data, dict) else None
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedResponse("no access_token in the answer", endpoint=TOKEN_ENDPOINT)
        if not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = 3600.0
        margin = min(self._margin_s, float(expires_in) / 10)
        self._token = Secret(token)
        self._expires_at = self._clock.monotonic() + float(expires_in) - margin
        log.info("obtained an access token valid for %ds", int(expires_in))

    async def aclose(self) -> None:
        """Close the HTTP session if this provider created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
