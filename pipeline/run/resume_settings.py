"""The settings a journalled run is driven with, and what ``resume --config F`` may change.

A run is planned once: its settings (without credentials) are journalled, and every later
``dsar resume`` / ``dsar retry`` drives the run with them. A config given then is laid over
them key by key, for the keys the file sets (a key it leaves out keeps the journalled value,
not the default), for that invocation only: the journal keeps the settings of the plan.

Keys that say *how* the run is driven may change (:data:`MAY_CHANGE`): API timeouts and
retries, the IMS URL, the request rate, in-flight and worker limits, the daily job cap, the
ceiling on jobs (``limits.max_jobs``), polling, and ``[retention]`` (applied by
``resume --all``). Every other key shaped the plan, the user keys or where the jobs live, and
may not: ``job.*`` and ``input.*`` (the requests, subjects and canary are planned),
``limits.users_per_request`` (the batches are cut and would not be re-planned),
``api.base_url`` (the jobs live there) and ``output.*`` (the workspace holds the run's
daily-cap ledger). A config that changes one is refused with
:class:`~pipeline.errors.ConfigError` (exit 2) naming each such key with its journalled and new
value; setting one to the value it already has is fine. Settings hold no secret (credentials
come from the environment and are never journalled), so values can be shown.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import Settings, load_settings, snapshot_overrides

log = logging.getLogger("dsar.run")

MAY_CHANGE = frozenset(
    {
        "api.ims_url",
        "api.timeout_s",
        "api.connect_timeout_s",
        "api.max_retries",
        "api.backoff_cap_s",
        "limits.requests_per_second",
        "limits.max_in_flight",
        "limits.submit_workers",
        "limits.daily_job_cap",
        "limits.max_jobs",
        "poll.interval_s",
        "poll.strategy",
        "poll.page_size",
        "retention.results_days",
        "retention.identities_days",
    }
)
# every section but the credentials (never journalled) and the record of which keys were
# given explicitly (not a setting); a key added later may not change on resume until it is
# listed above
_NOT_SECTIONS = frozenset({"credentials", "explicit", "orgs", "org_credentials"})
_SECTIONS = tuple(f.name for f in dataclasses.fields(Settings) if f.name not in _NOT_SECTIONS)


@dataclass(frozen=True, kw_only=True)
class SettingChange:
    """One key a resume config sets to another value than the journal holds."""

    key: str  # "section.name"
    journalled: Any
    new: Any

    @property
    def allowed(self) -> bool:
        """True when the key may change on resume (:data:`MAY_CHANGE`)."""
        return self.key in MAY_CHANGE

    def describe(self, source: object) -> str:
        """``key: <journalled> in the journal, <new> in <source>`` (values as JSON)."""
        journalled, new = _shown(self.journalled), _shown(self.new)
        return f"{self.key}: {journalled} in the journal, {new} in {source}"


def _shown(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def config_keys(path: Path) -> dict[str, dict[str, Any]]:
    """The keys the TOML file at ``path`` sets, by section, once the file has passed every
    check a config gets (unknown section or key, a secret in the file, a bad value)."""
    load_settings(path, env={})
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:  # checked above; changed meanwhile
        raise ConfigError(f"config {path}: {exc}") from None
    return snapshot_overrides(raw)


def _comparable(settings: Settings) -> dict[str, Any]:
    data = {name: dataclasses.asdict(getattr(settings, name)) for name in _SECTIONS}
    workspace = data["output"]["workspace"]
    data["output"]["workspace"] = str(Path(workspace).resolve())  # relative to the cwd
    return data


def setting_changes(journalled: Settings, new: Settings) -> list[SettingChange]:
    """Every key whose value differs between ``journalled`` and ``new``, in section order."""
    before, after = _comparable(journalled), _comparable(new)
    changes = [
        SettingChange(key=f"{section}.{name}", journalled=value, new=after[section][name])
        for section in _SECTIONS
        for name, value in before[section].items()
        if after[section][name] != value
    ]
    orgs_before = [dataclasses.asdict(o) for o in journalled.orgs]
    orgs_after = [dataclasses.asdict(o) for o in new.orgs]
    if orgs_after != orgs_before:  # the rows were planned into these orgs
        changes.append(SettingChange(key="orgs", journalled=orgs_before, new=orgs_after))
    return changes


def _laid_over(
    snapshot: Mapping[str, Any], env: Mapping[str, str], config: Path | None
) -> tuple[Settings, list[SettingChange]]:
    overrides = snapshot_overrides(snapshot)
    journalled = load_settings(None, env=env, overrides=overrides)
    if config is None:
        return journalled, []
    for section, body in config_keys(config).items():
        if section == "orgs":
            overrides["orgs"] = body
        else:
            overrides.setdefault(section, {}).update(body)
    new = load_settings(None, env=env, overrides=overrides)
    changes = setting_changes(journalled, new)
    refused = [c for c in changes if not c.allowed]
    if refused:
        raise ConfigError(
            f"{config} changes settings a planned run keeps (start a new run to use them): "
            + "; ".join(c.describe(config) for c in refused)
        )
    return new, changes


def check_resume_configs(
    runs: Mapping[Path, Mapping[str, Any]], env: Mapping[str, str], config: Path
) -> None:
    """Check ``config`` against every run (run directory -> journalled snapshot) at once:
    :class:`ConfigError` naming each run it would be refused for, on one line."""
    refusals = []
    for run_dir, snapshot in runs.items():
        try:
            _laid_over(snapshot, env, config)
        except ConfigError as exc:
            refusals.append(f"{run_dir}: {exc}")
    if refusals:
        raise ConfigError(" | ".join(refusals))


def resume_settings(
    snapshot: Mapping[str, Any], env: Mapping[str, str], config: Path | None = None
) -> Settings:
    """The settings to drive a run with: its journalled ``snapshot``, today's credentials from
    ``env``, and what ``config`` may change laid over them (see the module docstring); each
    change is logged."""
    settings, changes = _laid_over(snapshot, env, config)
    for change in changes:
        log.info(
            "resume: %s %s -> %s (from %s, for this invocation)",
            change.key,
            _shown(change.journalled),
            _shown(change.new),
            config,
        )
    return settings
