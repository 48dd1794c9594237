"""The rules every setting must meet, checked when settings are loaded (TOML, environment, flags).

One table, :data:`RULES`, maps each ``[section] key`` to a check: its type, its range, its
allowed values. A check returns the value to keep (a deprecated regulation becomes its current
spelling, a base URL gains its trailing ``/``) or raises :class:`~pipeline.errors.ConfigError`
with one line naming where the value came from and the rule it breaks. Messages never repeat
the value itself (a URL may carry credentials); they name the offending item only where it is
a product or column name.

The allowed products, regulations, namespaces, qualifiers and priorities are the client's own
tables in :mod:`pipeline.constants`, never the emulator's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import constants
from .errors import ConfigError

Check = Callable[[Any], Any]

# the default actions dsar accepts (the canonical spellings of the input's action column)
DEFAULT_ACTIONS = ("access", "delete", "access+delete", constants.OPT_OUT_OF_SALE)
SECRET_KEYS = frozenset(
    {"client_id", "client_secret", "secret", "token", "access_token", "password"}
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Broken(Exception):
    """A value breaks its rule; ``str`` is the rule, said without the value."""


def _kind(value: Any) -> str:
    """What a value is, in TOML's words (never the value itself)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def number(
    low: float,
    high: float | None = None,
    *,
    integer: bool = False,
    above: bool = False,
    below: bool = False,
) -> Check:
    """A number (an integer when ``integer``) from ``low`` to ``high``; ``above`` and ``below``
    make the bounds exclusive."""
    what = "an integer" if integer else "a number"
    rule = f"must be {what} " + (f"above {low:g}" if above else f"at least {low:g}")
    if high is not None:
        rule += f" and below {high:g}" if below else f" and at most {high:g}"

    def check(value: Any) -> Any:
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            raise Broken(f"{rule} (got {_kind(value)})")
        if isinstance(value, float) and not math.isfinite(value):
            raise Broken(rule)
        if value < low or (above and value == low):
            raise Broken(rule)
        if high is not None and (value > high or (below and value == high)):
            raise Broken(rule)
        return value

    return check


def boolean(value: Any) -> Any:
    """true or false."""
    if not isinstance(value, bool):
        raise Broken(f"must be true or false (got {_kind(value)})")
    return value


def text(*, pattern: re.Pattern[str] | None = None, rule: str = "a non-empty string") -> Check:
    """A non-empty string (matching ``pattern`` when given)."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise Broken(f"must be {rule} (got {_kind(value)})")
        if not value.strip() or (pattern is not None and not pattern.match(value)):
            raise Broken(f"must be {rule}")
        return value

    return check


def directory(value: Any) -> Any:
    """A non-empty path that is a directory, or does not exist yet."""
    value = text(rule="a directory path")(value)
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise Broken("must be a directory (or not exist yet), not a file")
    return value


def choice(*allowed: str) -> Check:
    """One of ``allowed`` (exact spelling)."""
    rule = "must be one of " + ", ".join(allowed)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise Broken(rule)
        return value

    return check


def optional(inner: Check) -> Check:
    """``inner``, or absent (None)."""

    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def http_url(value: Any) -> Any:
    """An absolute http(s) URL with a host; a trailing ``/`` is added (paths are relative)."""
    rule = "must be an http:// or https:// URL with a host"
    if not isinstance(value, str):
        raise Broken(f"{rule} (got {_kind(value)})")
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError:
        raise Broken(rule) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Broken(rule)
    if parts.query or parts.fragment:
        raise Broken(f"{rule}, and no query or fragment")
    url = value.strip()
    return url if url.endswith("/") else url + "/"


def regulation(value: Any) -> Any:
    """A regulation the service accepts; a deprecated spelling is mapped with a warning."""
    from .regulations import normalize_regulation

    if not isinstance(value, str):
        raise Broken(f"must be a regulation such as gdpr or ccpa (got {_kind(value)})")
    try:
        return normalize_regulation(value)
    except ConfigError:
        raise Broken("is not a known regulation (e.g. gdpr, ccpa, cpra_ca_usa)") from None


def products(value: Any) -> Any:
    """A non-empty array of product codes the service knows (any case), without repeats."""
    if not isinstance(value, list | tuple) or not value:
        raise Broken('must be a non-empty array of products, e.g. ["aepDataLake"]')
    if not all(isinstance(p, str) for p in value):
        raise Broken("must be an array of product names (strings)")
    unknown = [p[:40] for p in value if p.lower() not in constants.PRODUCTS]
    if unknown:
        known = ", ".join(sorted(constants.PRODUCTS.values()))
        raise Broken(f"unknown product {unknown[0]!r}; known: {known}")
    if len({p.lower() for p in value}) != len(value):
        raise Broken("names a product twice")
    return tuple(value)


AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")  # bech32, as age writes them


def age_recipients(value: Any) -> Any:
    """An array of age recipients (``age1...``); a non-empty one needs the optional pyrage."""
    if not isinstance(value, list | tuple) or not all(isinstance(r, str) for r in value):
        raise Broken('must be an array of age recipients, e.g. ["age1..."]')
    if not value:
        return ()
    if not all(AGE_RECIPIENT.match(r) for r in value):
        raise Broken("holds a string that is not an age recipient (age1 + 58 characters)")
    try:
        from pyrage import x25519
    except ImportError:
        raise Broken("needs the optional package pyrage: pip install 'dsar[encrypt]'") from None
    for recipient in value:
        try:
            x25519.Recipient.from_str(recipient)
        except Exception:  # pyrage raises its own error types for a bad checksum
            raise Broken("holds an age recipient whose checksum is wrong") from None
    return tuple(value)


def columns(value: Any) -> Any:
    """``{column = "namespace"}`` or ``{column = {namespace, type}}``; see :func:`column`."""
    from .settings import ColumnMapping

    if isinstance(value, Mapping) and all(isinstance(v, ColumnMapping) for v in value.values()):
        value = {c: {"namespace": m.namespace, "type": m.type} for c, m in value.items()}
    if not isinstance(value, Mapping):
        raise Broken("must be a table of column = {namespace, type}")
    return {str(name): column(str(name), spec) for name, spec in value.items()}


def column(name: str, spec: Any) -> Any:
    """One column mapping: a known qualifier, and a standard namespace when it says standard."""
    from .settings import ColumnMapping

    label = f"column {name[:40]!r}"
    if isinstance(spec, str):
        spec = {"namespace": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("namespace"), str):
        raise Broken(f"{label}: expected a namespace string or a table {{namespace, type}}")
    extra = sorted(set(spec) - {"namespace", "type"})
    if extra:
        raise Broken(f"{label}: unknown key {extra[0][:40]!r}; known: namespace, type")
    namespace, kind = spec["namespace"].strip(), spec.get("type", "standard")
    if not namespace:
        raise Broken(f"{label}: the namespace is empty")
    if kind not in constants.ID_TYPES:
        raise Broken(f"{label}: type must be one of {', '.join(sorted(constants.ID_TYPES))}")
    if kind == "standard" and namespace.lower() not in constants.STANDARD_NAMESPACES:
        standard = ", ".join(constants.STANDARD_NAMESPACES)
        raise Broken(
            f"{label}: not a standard namespace ({standard}); "
            'an org namespace needs type = "custom"'
        )
    return ColumnMapping(namespace=namespace, type=kind)


RULES: dict[str, dict[str, Check]] = {
    "api": {
        "base_url": optional(http_url),
        "ims_url": optional(http_url),
        "timeout_s": number(0, constants.GATEWAY_TIMEOUT_S, above=True, below=True),
        "connect_timeout_s": number(0, 600, above=True),
        "max_retries": number(0, 100, integer=True),
        "backoff_cap_s": number(0.5, 3600),  # the retry policy's first wait is 0.5 s
    },
    "job": {
        "regulation": regulation,
        "include": products,
        "default_action": choice(*DEFAULT_ACTIONS),
        "priority": choice(*constants.PRIORITIES),
        "expand_ids": boolean,
        "merge_policy_id": optional(text()),
        "opt_out_via": choice("jobs", "consent"),
        "canary_users": number(0, integer=True),
        "canary_wait_s": number(0, 366 * 86_400, above=True),
        "canary_max_error": number(0, 1),
        "cooldown_days": number(0, 3650, integer=True),
        "org": optional(text(pattern=re.compile(r"^[A-Za-z0-9_.-]{1,64}$"), rule="an org name")),
    },
    "input": {
        "layout": choice("wide", "long"),
        "columns": columns,
        "key_column": text(),
        "on_too_many_ids": choice("split", "reject"),
        "delimiter": optional(
            text(pattern=re.compile(r"^[^\r\n\"]$"), rule="one character (not a quote)")
        ),
        "batch_rows": number(1, 10_000_000, integer=True),
        "key_secret_env": text(pattern=_ENV_NAME, rule="an environment variable name"),
    },
    "limits": {
        "requests_per_second": number(0, above=True),
        "max_in_flight": number(1, 1024, integer=True),
        "daily_job_cap": number(1, integer=True),
        "users_per_request": number(1, constants.MAX_USERS_PER_REQUEST, integer=True),
        "submit_workers": number(1, 256, integer=True),
        "max_jobs": optional(number(1, integer=True)),
    },
    "poll": {
        "interval_s": number(0, 7 * 86_400, above=True),
        "strategy": choice("list"),
        "page_size": number(1, constants.MAX_LIST_PAGE_SIZE, integer=True),
    },
    "output": {
        "workspace": directory,
        "run_dir": optional(directory),
    },
    "results": {
        "encrypt_to": age_recipients,
    },
    "retention": {
        "results_days": optional(number(0, 36_500, integer=True)),
        "identities_days": optional(number(0, 36_500, integer=True)),
    },
}


_ORG_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_VAR = text(pattern=_ENV_NAME, rule="the name of an environment variable (not its value)")
# the keys of one [[orgs]] table (see pipeline.settings.OrgSettings); the first four are required
ORG_RULES: dict[str, Check] = {
    "name": text(pattern=_ORG_NAME, rule="a name of letters, digits, '.', '-' or '_'"),
    "org_id": text(rule="an IMS org id such as ABC123@AdobeOrg"),
    "client_id_env": _ENV_VAR,
    "client_secret_env": _ENV_VAR,
    "base_url": optional(http_url),
    "daily_job_cap": optional(number(1, integer=True)),
    "requests_per_second": optional(number(0, above=True)),
    "include": optional(products),
}
ORG_REQUIRED = ("name", "org_id", "client_id_env", "client_secret_env")


def checked_orgs(value: Any, *, where: str) -> list[dict[str, Any]]:
    """The ``[[orgs]]`` tables, each key checked against :data:`ORG_RULES`; a missing
    required key, an unknown key or a name used twice is a :class:`ConfigError`."""
    if not isinstance(value, list | tuple) or not all(isinstance(t, Mapping) for t in value):
        raise ConfigError(f"{where}: orgs must be [[orgs]] tables")
    tables: list[dict[str, Any]] = []
    names: set[str] = set()
    for number_, table in enumerate(value, start=1):
        label = f"[[orgs]] #{number_}"
        if isinstance(table.get("name"), str) and _ORG_NAME.match(table["name"]):
            label = f"[[orgs]] {table['name']!r}"
        kept: dict[str, Any] = {}
        for key, item in table.items():
            if key in SECRET_KEYS:
                raise ConfigError(
                    f"{label} {key}: secrets are read from the environment only, not from a "
                    "file (name the variable in client_secret_env)"
                )
            if key not in ORG_RULES:
                raise ConfigError(
                    f"{label}: unknown key {str(key)[:40]!r}; known: {', '.join(ORG_RULES)}"
                )
            try:
                kept[key] = ORG_RULES[key](item)
            except Broken as exc:
                raise ConfigError(f"{label} {key}: {exc}") from None
        missing = [k for k in ORG_REQUIRED if kept.get(k) is None]
        if missing:
            raise ConfigError(
                f"{label}: missing {missing[0]} (required: {', '.join(ORG_REQUIRED)})"
            )
        if kept["name"] in names:
            raise ConfigError(f"{label}: the name is used by another [[orgs]] table")
        names.add(kept["name"])
        tables.append(kept)
    return tables


def check_default_org(org: str | None, names: list[str]) -> None:
    """:class:`ConfigError` unless ``[job] org`` names an ``[[orgs]]`` table (or is unset)."""
    if org is None:
        return
    if not names:
        raise ConfigError("[job] org: needs [[orgs]] tables (the config names no org)")
    if org not in names:
        raise ConfigError(f"[job] org: names no [[orgs]] table; configured: {', '.join(names)}")


def checked(section: str, key: str, value: Any, *, where: str) -> Any:
    """``value`` as it is kept, or :class:`ConfigError` ``"<where>: <rule>"``.

    ``where`` names the origin: ``[limits] max_in_flight`` for a file or a flag, the
    variable's name for the environment.
    """
    rules = RULES[section]
    if key in SECRET_KEYS:
        raise ConfigError(f"{where}: secrets are read from the environment only, not from a file")
    if key not in rules:
        raise ConfigError(f"[{section}] unknown key {key[:40]!r}; known: {', '.join(rules)}")
    try:
        return rules[key](value)
    except Broken as exc:
        raise ConfigError(f"{where}: {exc}") from None
