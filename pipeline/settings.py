"""Settings: frozen dataclasses, loaded as defaults < TOML < environment < flags.

Secrets come only from the environment (``ADOBE_CLIENT_ID``, ``ADOBE_CLIENT_SECRET``,
``ADOBE_ORG_ID``, ``ADOBE_SCOPES``, or ``ADOBE_CLIENT_SECRET_FILE`` naming a file); a TOML file
that carries one is refused. Secrets are wrapped in :class:`Secret`, whose ``repr`` is masked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import constants
from .errors import ConfigError
from .settings_check import check_default_org, checked, checked_orgs

SECRET_ENV = ("ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID", "ADOBE_SCOPES")
# Settings the environment may set, and the key each sets; flags and TOML say [section] key.
ENV_SETTINGS = {"DSAR_API_BASE_URL": ("api", "base_url"), "DSAR_IMS_URL": ("api", "ims_url")}


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value itself; call only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """Where the Privacy Service and IMS are, and how long to wait for them."""

    base_url: str | None = None  # None: the embedded emulator when there are no credentials
    ims_url: str | None = None
    timeout_s: float = constants.DEFAULT_TIMEOUT_S
    connect_timeout_s: float = constants.DEFAULT_CONNECT_TIMEOUT_S
    max_retries: int = constants.DEFAULT_MAX_RETRIES
    backoff_cap_s: float = constants.DEFAULT_BACKOFF_CAP_S


@dataclass(frozen=True, kw_only=True)
class JobSettings:
    """Request-level options of the jobs dsar creates."""

    regulation: str = "gdpr"
    include: tuple[str, ...] = ("aepDataLake", "profileService", "identity")
    default_action: str = "access"
    priority: str = "normal"
    expand_ids: bool = False
    merge_policy_id: str | None = None
    opt_out_via: Literal["jobs", "consent"] = "jobs"
    # the canary (see pipeline.run.canary): the first canary_users users (0: none) are
    # submitted alone; the rest follows only if at most canary_max_error of their jobs end
    # in error within canary_wait_s
    canary_users: int = 0
    canary_wait_s: float = 7_200.0
    canary_max_error: float = 0.05
    # dedupe across runs: a subject's earlier job still open, or complete within these days,
    # is not submitted again (the workspace registry, pipeline.journal.registry)
    cooldown_days: int = 30
    # the org of rows whose ``org`` cell is empty, by ``[[orgs]]`` name (None: the only org)
    org: str | None = None


@dataclass(frozen=True, kw_only=True)
class ColumnMapping:
    """How an input column maps to an identity namespace and qualifier."""

    namespace: str
    type: str = "standard"


@dataclass(frozen=True, kw_only=True)
class InputSettings:
    """How input files are read and turned into subjects."""

    layout: Literal["wide", "long"] = "wide"
    columns: Mapping[str, ColumnMapping] = field(default_factory=dict)
    key_column: str = "subject_key"
    on_too_many_ids: Literal["split", "reject"] = "split"
    delimiter: str | None = None  # None: detected
    batch_rows: int = 65_536
    key_secret_env: str = constants.KEY_SECRET_ENV  # keyed hash for derived subject keys


@dataclass(frozen=True, kw_only=True)
class LimitSettings:
    """Rate control and budgets."""

    requests_per_second: float = 10.0
    max_in_flight: int = 8
    daily_job_cap: int = constants.DEFAULT_DAILY_JOB_CAP
    users_per_request: int = constants.MAX_USERS_PER_REQUEST
    submit_workers: int = 4
    max_jobs: int | None = None  # refuse a run (or resume) that could create more jobs


@dataclass(frozen=True, kw_only=True)
class PollSettings:
    """How jobs are followed to the end."""

    interval_s: float = 60.0
    strategy: Literal["list"] = "list"
    page_size: int = constants.MAX_LIST_PAGE_SIZE


@dataclass(frozen=True, kw_only=True)
class OutputSettings:
    """Where runs are written."""

    workspace: str = "dsar-runs"
    run_dir: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResultsSettings:
    """How downloaded access results are stored.

    With ``encrypt_to`` (age recipients, ``age1...``) each result is encrypted while it is
    downloaded and stored as ``<job_id>.zip.age``: the plaintext never reaches the disk.
    Needs the optional ``pyrage`` (``pip install 'dsar[encrypt]'``).
    """

    encrypt_to: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    """How long a finished run keeps personal data; None keeps it until ``dsar purge``.

    Applied at the end of ``dsar resume --all``: result ZIPs of runs finished at least
    ``results_days`` ago are removed, and identity values of runs finished at least
    ``identities_days`` ago are scrubbed from their journals.
    """

    results_days: int | None = None
    identities_days: int | None = None


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """API credentials, from the environment only."""

    client_id: Secret | None = None
    client_secret: Secret | None = None
    org_id: str | None = None
    scopes: str = "openid,AdobeID,read_organizations"

    @property
    def complete(self) -> bool:
        """True when client id, secret and org are all present."""
        return bool(self.client_id and self.client_secret and self.org_id)


@dataclass(frozen=True, kw_only=True)
class OrgSettings:
    """One ``[[orgs]]`` table: an IMS org a run may talk to, and where its credentials are.

    ``client_id_env`` and ``client_secret_env`` name environment variables (never the values);
    the optional keys default to ``[api] base_url``, ``[limits] daily_job_cap`` and
    ``requests_per_second``, and ``[job] include``.
    """

    name: str
    org_id: str
    client_id_env: str
    client_secret_env: str
    base_url: str | None = None
    daily_job_cap: int | None = None
    requests_per_second: float | None = None
    include: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Org:
    """An org as a run drives it: its name, IMS org id, credentials and own limits.

    Without ``[[orgs]]`` tables the one org is today's single-org settings, named
    :data:`DEFAULT_ORG`.
    """

    name: str
    org_id: str
    credentials: Credentials = field(repr=False)
    base_url: str | None
    daily_job_cap: int
    requests_per_second: float
    include: tuple[str, ...]
    # the variables its credentials come from (None: ADOBE_CLIENT_ID / ADOBE_CLIENT_SECRET)
    client_id_env: str | None = None
    client_secret_env: str | None = None


DEFAULT_ORG = constants.DEFAULT_ORG


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a command needs, passed down explicitly."""

    api: ApiSettings = field(default_factory=ApiSettings)
    job: JobSettings = field(default_factory=JobSettings)
    input: InputSettings = field(default_factory=InputSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    poll: PollSettings = field(default_factory=PollSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    results: ResultsSettings = field(default_factory=ResultsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    credentials: Credentials = field(default_factory=Credentials)
    orgs: tuple[OrgSettings, ...] = ()
    # each [[orgs]] table's credentials, read from the variables it names (never journalled)
    org_credentials: Mapping[str, Credentials] = field(
        default_factory=dict, compare=False, repr=False
    )
    # "section.key" of every setting given by the TOML file, the environment or a flag rather
    # than by its default (a JSON upload's request options may only replace defaults)
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def multi_org(self) -> bool:
        """True when the config has ``[[orgs]]`` tables."""
        return bool(self.orgs)

    def org_list(self) -> tuple[Org, ...]:
        """The orgs a run may talk to, in config order (one, :data:`DEFAULT_ORG`, without
        ``[[orgs]]``)."""
        if not self.orgs:
            return (
                Org(
                    name=DEFAULT_ORG,
                    org_id=self.credentials.org_id or "",
                    credentials=self.credentials,
                    base_url=self.api.base_url,
                    daily_job_cap=self.limits.daily_job_cap,
                    requests_per_second=self.limits.requests_per_second,
                    include=self.job.include,
                ),
            )
        return tuple(
            Org(
                name=o.name,
                org_id=o.org_id,
                credentials=self.org_credentials.get(o.name, Credentials(org_id=o.org_id)),
                base_url=o.base_url or self.api.base_url,
                daily_job_cap=o.daily_job_cap or self.limits.daily_job_cap,
                requests_per_second=o.requests_per_second or self.limits.requests_per_second,
                include=o.include or self.job.include,
                client_id_env=o.client_id_env,
                client_secret_env=o.client_secret_env,
            )
            for o in self.orgs
        )

    def org_named(self, name: str) -> Org:
        """The org called ``name``; :class:`ConfigError` when there is none."""
        for org in self.org_list():
            if org.name == name:
                return org
        known = ", ".join(o.name for o in self.org_list())
        raise ConfigError(f"no org named {name[:40]!r} in the config; configured: {known}")

    @property
    def default_org(self) -> str | None:
        """The org of rows without one: ``[job] org``, or the only org (None: no default)."""
        orgs = self.org_list()
        if self.job.org is not None:
            return self.job.org
        return orgs[0].name if len(orgs) == 1 else None

    def for_org(self, org: Org) -> Settings:
        """These settings as one org's client sees them: its base URL, credentials, rate,
        daily cap and products."""
        return dataclasses.replace(
            self,
            api=dataclasses.replace(self.api, base_url=org.base_url),
            credentials=org.credentials,
            limits=dataclasses.replace(
                self.limits,
                requests_per_second=org.requests_per_second,
                daily_job_cap=org.daily_job_cap,
            ),
            job=dataclasses.replace(self.job, include=org.include),
        )

    def digest(self) -> str:
        """sha256 of the settings without credentials: the config digest of reports."""
        data = dataclasses.asdict(
            dataclasses.replace(self, credentials=Credentials(), org_credentials={})
        )
        data.pop("explicit")
        data.pop("org_credentials")
        if not data["orgs"]:
            data.pop("orgs")  # the digest of a single-org config is what it always was
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


# the sections of a config file, by their TOML name
SECTIONS: dict[str, type[Any]] = {
    "api": ApiSettings,
    "job": JobSettings,
    "input": InputSettings,
    "limits": LimitSettings,
    "poll": PollSettings,
    "output": OutputSettings,
    "results": ResultsSettings,
    "retention": RetentionSettings,
}


def _build_section(
    name: str, cls: type[Any], raw: Mapping[str, Any], where: Mapping[str, str]
) -> Any:
    """The section ``cls`` from ``raw``, every value checked against its rule first."""
    kwargs = {
        key: checked(name, key, value, where=where.get(key, f"[{name}] {key}"))
        for key, value in raw.items()
    }
    return cls(**kwargs)


def _credentials(env: Mapping[str, str]) -> Credentials:
    secret = env.get("ADOBE_CLIENT_SECRET")
    secret_file = env.get("ADOBE_CLIENT_SECRET_FILE")
    if not secret and secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"ADOBE_CLIENT_SECRET_FILE cannot be read: {exc.strerror}") from None
    client_id = env.get("ADOBE_CLIENT_ID")
    return Credentials(
        client_id=Secret(client_id) if client_id else None,
        client_secret=Secret(secret) if secret else None,
        org_id=env.get("ADOBE_ORG_ID") or None,
        scopes=env.get("ADOBE_SCOPES") or Credentials().scopes,
    )


def _org_credentials(
    orgs: tuple[OrgSettings, ...], env: Mapping[str, str]
) -> dict[str, Credentials]:
    scopes = env.get("ADOBE_SCOPES") or Credentials().scopes
    creds = {}
    for org in orgs:
        client_id, secret = env.get(org.client_id_env), env.get(org.client_secret_env)
        creds[org.name] = Credentials(
            client_id=Secret(client_id) if client_id else None,
            client_secret=Secret(secret) if secret else None,
            org_id=org.org_id,
            scopes=scopes,
        )
    return creds


def _orgs(raw: Any, where: str) -> tuple[OrgSettings, ...]:
    return tuple(OrgSettings(**table) for table in checked_orgs(raw, where=where))


def snapshot_overrides(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """``load_settings`` overrides from a settings snapshot (sections as tables, the
    ``orgs`` as a list of tables)."""
    return {k: [dict(t) for t in v] if k == "orgs" else dict(v) for k, v in snapshot.items()}


def load_settings(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    labels: Mapping[tuple[str, str], str] | None = None,
) -> Settings:
    """Defaults, then the TOML file at ``path``, then the environment, then ``overrides``.

    ``overrides`` is ``{section: {key: value}}`` from command-line flags (and ``orgs``, a
    list of ``[[orgs]]`` tables, from a journalled snapshot); ``labels`` names the
    flag of an override (``{("output", "workspace"): "--workspace"}``) for error messages.
    Every value is checked against :data:`pipeline.settings_check.RULES`: a value that breaks
    its rule is a :class:`ConfigError` naming the key (or variable, or flag) and the rule.
    """
    raw: dict[str, dict[str, Any]] = {}
    raw_orgs: tuple[Any, str] = ([], "")
    if path is not None:
        try:
            with path.open("rb") as fh:
                loaded = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path}: {exc}") from None
        for section, body in loaded.items():
            if section == "orgs":
                raw_orgs = (body, f"config {path}")
                continue
            if section not in SECTIONS:
                known = ", ".join(SECTIONS)
                raise ConfigError(
                    f"config {path}: unknown section [{section[:40]}]; known: {known}"
                )
            if not isinstance(body, dict):
                raise ConfigError(f"config {path}: [{section}] must be a table")
            raw[section] = dict(body)
    env = env if env is not None else {}
    where: dict[str, dict[str, str]] = {}
    for var, (section, key) in ENV_SETTINGS.items():
        if env.get(var):
            raw.setdefault(section, {})[key] = env[var]
            where.setdefault(section, {})[key] = f"{var} (environment)"
    for section, body in (overrides or {}).items():
        if section == "orgs":
            raw_orgs = (body, "orgs")
            continue
        if section not in SECTIONS:
            raise ConfigError(f"unknown settings section [{section[:40]}]")
        raw.setdefault(section, {}).update(body)
        for key in body:
            label = (labels or {}).get((section, key))
            if label:
                where.setdefault(section, {})[key] = f"{label} ([{section}] {key})"
            else:
                where.get(section, {}).pop(key, None)
    sections = {
        name: _build_section(name, cls, raw.get(name, {}), where.get(name, {}))
        for name, cls in SECTIONS.items()
    }
    explicit = frozenset(f"{section}.{key}" for section, body in raw.items() for key in body)
    orgs = _orgs(*raw_orgs)
    check_default_org(sections["job"].org, [o.name for o in orgs])
    return Settings(
        credentials=_credentials(env),
        orgs=orgs,
        org_credentials=_org_credentials(orgs, env),
        explicit=explicit,
        **sections,
    )
