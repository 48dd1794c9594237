"""Where a command sends its API calls: the real Privacy Service, or the embedded emulator.

Without credentials and without ``api.base_url``, dsar starts its emulator in-process (state
kept in ``WORKSPACE/emulator.sqlite`` so that ``dsar resume`` finds the jobs of an earlier
run) and says so in one line. With credentials or a base URL it never falls back silently:
missing pieces are a configuration error.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..api.client import PrivacyServiceClient
from ..api.clock import SYSTEM_CLOCK, Clock
from ..api.ratelimit import RateLimiter
from ..errors import ConfigError
from ..settings import Credentials, Org, Secret, Settings

log = logging.getLogger("dsar")

# The embedded emulator answers in microseconds and has its limits off: poll and send briskly.
EMBEDDED_POLL_INTERVAL_S = 0.5
EMBEDDED_REQUESTS_PER_SECOND = 500.0
EMBEDDED_MAX_IN_FLIGHT = 16


@dataclass(frozen=True, kw_only=True)
class Target:
    """The settings to talk to, and whether they point at the embedded emulator."""

    settings: Settings
    embedded: bool

    def client(self, *, clock: Clock = SYSTEM_CLOCK) -> PrivacyServiceClient:
        """A client for this target on ``clock`` (use it with ``async with``)."""
        limits = self.settings.limits
        limiter = RateLimiter(
            requests_per_second=limits.requests_per_second,
            max_in_flight=limits.max_in_flight,
            clock=clock,
        )
        return PrivacyServiceClient.from_settings(self.settings, limiter=limiter, clock=clock)

    def for_org(self, org: Org) -> Target:
        """This target as ``org``'s client sees it (its base URL, credentials, rate, daily cap
        and products): each org of a run gets its own client, token, limiter and retries."""
        return dataclasses.replace(self, settings=self.settings.for_org(org))

    @property
    def poll_interval_s(self) -> float:
        """Seconds between list sweeps."""
        if self.embedded:
            return min(self.settings.poll.interval_s, EMBEDDED_POLL_INTERVAL_S)
        return self.settings.poll.interval_s


def wants_embedded(settings: Settings) -> bool:
    """True when neither credentials nor a base URL are configured.

    With ``[[orgs]]`` tables: no org has a base URL and none of the variables they name is set.
    """
    if settings.multi_org:
        return not any(
            org.base_url or org.credentials.client_id or org.credentials.client_secret
            for org in settings.org_list()
        )
    creds = settings.credentials
    has_any_credential = bool(creds.client_id or creds.client_secret or creds.org_id)
    return not settings.api.base_url and not has_any_credential


def one_org(settings: Settings) -> Settings:
    """The settings as the one org's client sees them: unchanged without ``[[orgs]]``, and
    with several ``[[orgs]]`` tables (each org then gets its own client: :meth:`Target.for_org`,
    as the run engine and ``dsar jobs`` do)."""
    orgs = settings.org_list()
    if not settings.multi_org or len(orgs) > 1:
        return settings
    return settings.for_org(orgs[0])


def check_target(settings: Settings) -> None:
    """:class:`ConfigError` unless the settings name a whole target, or none (the emulator)."""
    if wants_embedded(settings):
        return
    if settings.multi_org:
        for org in settings.org_list():
            if not org.base_url:
                raise ConfigError(
                    f"[[orgs]] {org.name!r}: no base_url, and [api] base_url is not set "
                    "(dsar never falls back to its emulator when a target is configured)"
                )
            if not org.credentials.complete:
                creds = org.credentials
                pairs = (
                    (org.client_id_env, creds.client_id),
                    (org.client_secret_env, creds.client_secret),
                )
                missing = " and ".join(str(name) for name, value in pairs if not value)
                raise ConfigError(
                    f"[[orgs]] {org.name!r}: the environment variable {missing} is not set"
                )
        return
    if not settings.api.base_url:
        raise ConfigError(
            "credentials are set but api.base_url is not: set it in the config "
            "(see configs/adobe.example.toml) or DSAR_API_BASE_URL"
        )
    if not settings.credentials.complete:
        raise ConfigError(
            "api.base_url is set: ADOBE_CLIENT_ID, ADOBE_CLIENT_SECRET and ADOBE_ORG_ID "
            "are required (dsar never falls back to its emulator when a target is configured)"
        )


@contextmanager
def api_target(
    settings: Settings,
    *,
    workspace: Path,
    env: Mapping[str, str],
    quiet: bool = False,
) -> Iterator[Target]:
    """The target for ``settings``; starts (and stops) the embedded emulator when needed.

    A config of several ``[[orgs]]`` tables is kept whole (see :func:`one_org`), and the
    embedded emulator serves one client per org.
    """
    check_target(settings)
    settings = one_org(settings)
    if not wants_embedded(settings):
        check_target(settings)
        yield Target(settings=settings, embedded=False)
        return

    from ..emulator import EmulatorServer, load_config

    workspace.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = load_config(None, env)
    changes: dict[str, object] = {
        "persistence_path": str(workspace / "emulator.sqlite"),
        "limits": {"requests_per_second": 0},
    }
    orgs = settings.org_list() if settings.multi_org else ()
    base = config.clients[0]
    if orgs:  # one demo client per org, so the feature runs without credentials
        changes["clients"] = [
            {
                "client_id": f"{base.client_id}-{org.name}",
                "client_secret": f"{base.client_secret}-{org.name}",
                "org_id": org.org_id,
            }
            for org in orgs
        ]
    config = config.updated(changes)
    client = config.clients[0]
    with EmulatorServer(config) as emu:
        if not quiet:
            log.info("no credentials and no api.base_url: using the embedded emulator")
        embedded = dataclasses.replace(
            settings,
            org_credentials={
                org.name: Credentials(
                    client_id=Secret(c.client_id),
                    client_secret=Secret(c.client_secret),
                    org_id=c.org_id,
                    scopes=settings.credentials.scopes,
                )
                for org, c in zip(orgs, config.clients, strict=False)
            },
            api=dataclasses.replace(settings.api, base_url=emu.base_url, ims_url=emu.ims_url),
            credentials=Credentials(
                client_id=Secret(client.client_id),
                client_secret=Secret(client.client_secret),
                org_id=client.org_id,
                scopes=settings.credentials.scopes,
            ),
            limits=dataclasses.replace(
                settings.limits,
                requests_per_second=max(
                    settings.limits.requests_per_second, EMBEDDED_REQUESTS_PER_SECOND
                ),
                max_in_flight=max(settings.limits.max_in_flight, EMBEDDED_MAX_IN_FLIGHT),
            ),
        )
        yield Target(settings=embedded, embedded=True)


__all__ = ["Target", "api_target", "check_target", "one_org", "wants_embedded"]
