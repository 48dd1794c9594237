"""IMS tokens and the gateway's header checks, as pure functions of headers and the clock."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from .config import ClientConfig
from .errors import (
    ImsError,
    InvalidApiKey,
    InvalidToken,
    MissingApiKey,
    MissingOrgHeader,
    MissingToken,
    ProfileNotValid,
    UserRegionMissing,
)


class TokenStore:
    """Issues opaque bearer tokens bound to one client, valid for ``lifetime_s`` clock seconds."""

    def __init__(self, clients: tuple[ClientConfig, ...], lifetime_s: int) -> None:
        self.clients = {c.client_id: c for c in clients}
        self.orgs = {c.org_id for c in clients}
        self.lifetime_s = lifetime_s
        self._tokens: dict[str, tuple[str, float]] = {}

    def issue(self, form: Mapping[str, str], now: float) -> dict[str, Any]:
        """The OAuth client-credentials grant: ``{access_token, token_type, expires_in}``."""
        if form.get("grant_type") != "client_credentials":
            raise ImsError(400, "unsupported_grant_type", "grant_type must be client_credentials")
        missing = [k for k in ("client_id", "client_secret", "scope") if not form.get(k)]
        if missing:
            raise ImsError(400, "invalid_request", f"missing parameter: {', '.join(missing)}")
        client = self.clients.get(form["client_id"])
        if client is None or not secrets.compare_digest(
            client.client_secret, form["client_secret"]
        ):
            raise ImsError(401, "invalid_client", "invalid client_id or client_secret")
        token = "emu-" + secrets.token_urlsafe(32)
        self._tokens[token] = (client.client_id, now + self.lifetime_s)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.lifetime_s}

    def restore(self, token: str, client_id: str, expires_at: float) -> None:
        """Re-register a token loaded from persistence."""
        self._tokens[token] = (client_id, expires_at)

    def items(self) -> list[tuple[str, str, float]]:
        """(token, client id, expiry) for every issued token."""
        return [(t, c, e) for t, (c, e) in self._tokens.items()]

    def authenticate(self, headers: Mapping[str, str], now: float) -> ClientConfig:
        """The client behind a request's gateway headers, or the gateway error it gets."""
        api_key = headers.get("x-api-key")
        if not api_key:
            raise MissingApiKey()
        auth = headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if not auth:
            raise MissingToken()
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken()
        entry = self._tokens.get(token.strip())
        if entry is None or entry[1] <= now:
            raise InvalidToken()
        client = self.clients.get(entry[0])
        if client is None:
            raise InvalidToken()
        if api_key != client.client_id:
            raise InvalidApiKey()
        org = headers.get("x-gw-ims-org-id")
        if not org:
            raise MissingOrgHeader()
        if org != client.org_id:
            raise ProfileNotValid() if org in self.orgs else UserRegionMissing()
        return client
