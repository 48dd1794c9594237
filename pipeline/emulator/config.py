"""Emulator settings: frozen dataclasses, loaded from TOML, the environment and JSON updates.

The default client is the one `dsar` uses when started in the same environment: its id, secret
and org come from ``ADOBE_CLIENT_ID``, ``ADOBE_CLIENT_SECRET`` and ``ADOBE_ORG_ID`` when set, else
from :data:`DEFAULT_CLIENT_ID`, :data:`DEFAULT_CLIENT_SECRET` and :data:`DEFAULT_ORG_ID`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

DEFAULT_CLIENT_ID: Final = "dsar-emulator-client"
DEFAULT_CLIENT_SECRET: Final = "dsar-emulator-secret"
DEFAULT_ORG_ID: Final = "DSAREMULATOR0000000000000@AdobeOrg"
DOWNLOAD_URL_SPELLINGS: Final = frozenset({"downloadURL", "downloadUrl"})


class ConfigValueError(ValueError):
    """A configuration key is unknown or its value has the wrong type or range."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One API client: credentials, its org, and the products the org is provisioned for.

    ``provisioned_products`` holds include codes (case-insensitive); empty means every product.
    """

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    org_id: str = DEFAULT_ORG_ID
    technical_account: str = "dsar-emulator@techacct.adobe.com"
    provisioned_products: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Service limits; 0 disables the per-second and per-minute limits."""

    requests_per_second: float = 25.0
    daily_job_cap: int = 20_000
    doc_rate_limit_per_minute: int = 0
    max_page_size: int = 1000
    default_page_size: int = 100


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    """Seeded fault injection; every rate is a probability per API request."""

    error_5xx_rate: float = 0.0
    reset_rate: float = 0.0
    latency_s: tuple[float, float] = (0.0, 0.0)
    ambiguous_post_rate: float = 0.0
    throttle_burst_rate: float = 0.0
    throttle_burst_length: int = 5

    def __post_init__(self) -> None:
        rates = (self.error_5xx_rate, self.reset_rate, self.ambiguous_post_rate)
        if not all(0.0 <= r <= 1.0 for r in (*rates, self.throttle_burst_rate)):
            raise ConfigValueError("fault rates must lie between 0 and 1")
        _check_range("latency_s", self.latency_s)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """How jobs progress: simulated durations (seconds) and outcome rates per product."""

    time_scale: float = 86_400.0
    ack_delay_s: tuple[float, float] = (60.0, 3_600.0)
    processing_s: tuple[float, float] = (3_600.0, 259_200.0)
    product_error_rate: float = 0.02
    ids_not_found_rate: float = 0.10
    partial_rate: float = 0.10
    # the first N jobs the emulator creates end in error on every provisioned product,
    # whatever the rates say (a canary that goes wrong; the draws are made all the same)
    error_first_jobs: int = 0

    def __post_init__(self) -> None:
        if self.error_first_jobs < 0:
            raise ConfigValueError("error_first_jobs must be 0 or more")
        if self.time_scale <= 0:
            raise ConfigValueError("time_scale must be positive")
        _check_range("ack_delay_s", self.ack_delay_s)
        _check_range("processing_s", self.processing_s)
        if self.product_error_rate + self.ids_not_found_rate + self.partial_rate > 1.0:
            raise ConfigValueError("outcome rates must add up to at most 1")


def _check_range(name: str, pair: tuple[float, float]) -> None:
    if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
        raise ConfigValueError(f"{name} must be [min, max] with 0 <= min <= max")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything the emulator can be told; the defaults follow the seed and the reference."""

    seed: int = 0
    clients: tuple[ClientConfig, ...] = (ClientConfig(),)
    token_lifetime_s: int = 86_399
    clock_frozen: bool = False
    clock_start: str | None = None
    limits: LimitsConfig = LimitsConfig()
    faults: FaultsConfig = FaultsConfig()
    simulation: SimulationConfig = SimulationConfig()
    # The seed's example spells the results link downloadURL; the spec and the content page
    # spell it downloadUrl. Either spelling, or both, can be emitted.
    download_url_keys: tuple[str, ...] = ("downloadURL",)
    deprecated_regulation_cutoff: str = "2025-07-28"
    job_retention_days: int = 30
    content_retention_days: int = 60
    lookback_days: int = 45
    max_window_days: int = 30
    default_window_days: int = 7
    persistence_path: str | None = None

    def __post_init__(self) -> None:
        try:
            self.clock_start_epoch()
            self.cutoff_epoch()
        except ValueError:
            raise ConfigValueError("clock_start and the cutoff must be ISO 8601 dates") from None
        if not self.clients:
            raise ConfigValueError("at least one client is needed")
        keys = self.download_url_keys
        if not keys or not set(keys) <= DOWNLOAD_URL_SPELLINGS or len(set(keys)) != len(keys):
            raise ConfigValueError("download_url_keys must list downloadURL and/or downloadUrl")

    def clock_start_epoch(self) -> float | None:
        """``clock_start`` (ISO 8601, UTC when no zone is given) as epoch seconds."""
        if self.clock_start is None:
            return None
        moment = datetime.fromisoformat(self.clock_start)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()

    def cutoff_epoch(self) -> float:
        """The end of the deprecated-regulation cutoff day, in epoch seconds."""
        day = datetime.fromisoformat(self.deprecated_regulation_cutoff).replace(tzinfo=UTC)
        return day.timestamp() + 86_400

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view; client secrets are masked."""
        data = dataclasses.asdict(self)
        for client in data["clients"]:
            client["client_secret"] = "***"
        return data

    def updated(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """A copy with ``changes`` merged in (nested sections merge key by key)."""
        config: EmulatorConfig = _build(EmulatorConfig, changes, base=self)
        return config


def _build(cls: Any, changes: Mapping[str, Any], *, base: Any) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in known:
            raise ConfigValueError(f"unknown emulator setting {key!r} in {cls.__name__}")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            values[key] = _build(type(current), value, base=current)
        elif key == "clients":
            values[key] = tuple(_client(item) for item in value)
        else:
            values[key] = _coerce(key, value, current)
    try:
        return dataclasses.replace(base, **values)
    except TypeError as exc:
        raise ConfigValueError(str(exc)) from None


def _client(item: Any) -> ClientConfig:
    if not isinstance(item, Mapping):
        raise ConfigValueError("each client must be a table of settings")
    client: ClientConfig = _build(ClientConfig, item, base=ClientConfig())
    return client


_OPTIONAL_TEXT = frozenset({"clock_start", "persistence_path"})


def _coerce(key: str, value: Any, current: Any) -> Any:
    if key in _OPTIONAL_TEXT:
        if value is not None and not isinstance(value, str):
            raise ConfigValueError(f"{key} must be a string or null")
        return value
    if isinstance(current, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigValueError(f"{key} must be a list")
        return tuple(value)
    if isinstance(current, bool) or current is None:
        return value
    if isinstance(current, float) and isinstance(value, int | float):
        return float(value)
    if not isinstance(value, type(current)) or isinstance(value, bool):
        raise ConfigValueError(f"{key} must be of type {type(current).__name__}")
    return value


def default_client(env: Mapping[str, str]) -> ClientConfig:
    """The default client, with id, secret and org taken from ``env`` when set there."""
    return ClientConfig(
        client_id=env.get("ADOBE_CLIENT_ID") or DEFAULT_CLIENT_ID,
        client_secret=env.get("ADOBE_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET,
        org_id=env.get("ADOBE_ORG_ID") or DEFAULT_ORG_ID,
    )


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> EmulatorConfig:
    """Defaults, then the TOML file at ``path``, with the default client from ``env``.

    The TOML layout mirrors :class:`EmulatorConfig`: top-level keys, ``[limits]``, ``[faults]``,
    ``[simulation]`` and ``[[clients]]`` tables. Without ``[[clients]]`` the default client is
    used.
    """
    base = EmulatorConfig(clients=(default_client(env or {}),))
    if path is None:
        return base
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return base.updated(data.get("emulator", data))
