"""The JSON upload file of the Privacy Service UI: a ``POST /jobs`` body read as input.

The file is the request as the UI would send it. Its ``users`` become rows of the long layout
(one row per ``userIDs`` entry in file order; a user without identities is one row with no
identity), and its request options (``regulation``, ``include``, ``priority``, ``expandIds``,
``mergePolicyId``) become the options of every request dsar makes for those users.

Nothing in the file is dropped without a word: a key dsar does not understand (at the top
level, in a user or in an identity), an option of the wrong shape, or a ``companyContexts``
entry other than the IMS org is an :class:`InputError` naming it (exit 3). The file's options
replace the configuration's defaults; an option the configuration sets *explicitly* (in the
TOML file, the environment or a flag) to another value is a :class:`ConfigError` naming both
(exit 2), and so is an IMS org other than ``ADOBE_ORG_ID``. Messages name keys, options,
products and positions, never an identity value.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from .. import constants
from ..errors import ConfigError, InputError
from ..settings import Settings

log = logging.getLogger("dsar.input")

JSON_COLUMNS = ("subject_key", "namespace", "value", "type", "action", "regulation")
# the request options of the file: its key -> the [job] setting it stands for
OPTION_SETTINGS = {
    "regulation": "regulation",
    "include": "include",
    "priority": "priority",
    "expandIds": "expand_ids",
    "mergePolicyId": "merge_policy_id",
}
TOP_KEYS = frozenset({"users", "companyContexts", *OPTION_SETTINGS})
USER_KEYS = frozenset({"key", "action", "userIDs"})
IDENTITY_KEYS = frozenset({"namespace", "value", "type", "isDeletedClientSide"})


@dataclass(frozen=True)
class Upload:
    """A parsed upload file: the request options it sets (by [job] setting) and its rows."""

    options: dict[str, Any]
    org_ids: tuple[str, ...]
    rows: pa.Table


def read_upload(path: Path) -> Upload:
    """Parse the upload file at ``path``; an :class:`InputError` for anything it cannot honour."""
    try:
        doc = orjson.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    except (OSError, orjson.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable JSON file ({reason})") from None
    users = doc.get("users") if isinstance(doc, dict) else None
    if not isinstance(users, list):
        raise InputError(f"{path}: a JSON input needs a 'users' array (the POST /jobs shape)")
    unknown = sorted(k for k in doc if k not in TOP_KEYS)
    if unknown:
        raise InputError(
            f"{path}: dsar does not understand the key {_name(unknown[0])} of the upload file"
            f" (it knows {', '.join(sorted(TOP_KEYS))}); remove it or submit it another way"
        )
    options = {
        OPTION_SETTINGS[key]: _option(path, key, doc[key])
        for key in OPTION_SETTINGS
        if doc.get(key) is not None
    }
    org_ids = _org_ids(path, doc.get("companyContexts"))
    return Upload(options=options, org_ids=org_ids, rows=_rows(path, users, doc.get("regulation")))


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _name(key: object) -> str:
    """``key`` quoted when it looks like a field or product name; a malformed file might use an
    identity value as a key, and messages never show one."""
    text = str(key)
    return repr(text) if _FIELD_NAME.fullmatch(text) else "(not shown: not a plain name)"


def _option(path: Path, key: str, value: Any) -> Any:
    """The value of request option ``key`` as its [job] setting holds it."""
    if key == "regulation":
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: 'regulation' must be a regulation name")
        return value.strip()
    if key == "include":
        if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
            raise InputError(f"{path}: 'include' must be a non-empty array of product codes")
        unknown = [p for p in value if p.lower() not in constants.PRODUCTS]
        if unknown:
            raise InputError(
                f"{path}: 'include' names an unknown product {_name(unknown[0])};"
                f" known: {', '.join(constants.PRODUCTS.values())}"
            )
        return tuple(dict.fromkeys(value))  # duplicates once, in the file's order and spelling
    if key == "priority":
        if value not in constants.PRIORITIES:
            raise InputError(f"{path}: 'priority' must be one of {', '.join(constants.PRIORITIES)}")
        return value
    if key == "expandIds":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise InputError(f"{path}: 'expandIds' must be true or false")
    # mergePolicyId: a number or a string, as the service takes it
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise InputError(f"{path}: 'mergePolicyId' must be a number or a string")
    return str(value).strip()


def _org_ids(path: Path, contexts: Any) -> tuple[str, ...]:
    """The IMS orgs named by ``companyContexts`` (dsar sends the configured org only)."""
    if contexts is None:
        return ()
    if not isinstance(contexts, list):
        raise InputError(f"{path}: 'companyContexts' must be an array")
    orgs: list[str] = []
    for position, context in enumerate(contexts):
        if not isinstance(context, dict) or not isinstance(context.get("value"), str):
            raise InputError(f"{path}: companyContexts[{position}] needs a namespace and a value")
        if context.get("namespace") != "imsOrgID":
            raise InputError(
                f"{path}: companyContexts[{position}] is not an imsOrgID context"
                f" (namespace {_name(context.get('namespace'))}); dsar sends the IMS org only"
            )
        orgs.append(context["value"])
    return tuple(orgs)


def _rows(path: Path, users: list[Any], regulation: Any) -> pa.Table:
    """One row per identity; a user's key and action are stored once and repeated by index."""
    keys: list[Any] = []
    actions: list[Any] = []
    owners: list[int] = []
    namespaces: list[Any] = []
    values: list[Any] = []
    types: list[Any] = []
    for position, user in enumerate(users):
        if not isinstance(user, dict):
            raise InputError(f"{path}: users[{position}] is not an object")
        if not user.keys() <= USER_KEYS:
            extra = sorted(str(k) for k in user if k not in USER_KEYS)
            raise InputError(
                f"{path}: users[{position}] has the key {_name(extra[0])}, which dsar does not"
                f" understand (a user has {', '.join(sorted(USER_KEYS))})"
            )
        keys.append(user.get("key"))
        action = user.get("action")
        actions.append("+".join(str(a) for a in action) if isinstance(action, list) else action)
        ids = user.get("userIDs")
        entries = ids if isinstance(ids, list) and ids else [{}]
        for number, entry in enumerate(entries):
            if not isinstance(entry, dict):
                entry = {}
            elif not entry.keys() <= _PLAIN_IDENTITY:
                _check_identity(path, f"users[{position}].userIDs[{number}]", entry)
            namespaces.append(entry.get("namespace"))
            values.append(entry.get("value"))
            types.append(entry.get("type"))
            owners.append(position)
    owner = pa.array(owners, pa.int64())
    columns = {
        "subject_key": _strings(keys).take(owner),
        "namespace": _strings(namespaces),
        "value": _strings(values),
        "type": _strings(types),
        "action": _strings(actions).take(owner),
        "regulation": _strings([regulation]).take(pa.array(np.zeros(len(owners), np.int64))),
    }
    return pa.table([columns[name] for name in JSON_COLUMNS], names=list(JSON_COLUMNS))


_PLAIN_IDENTITY = frozenset({"namespace", "value", "type"})


def _strings(items: list[Any]) -> pa.Array:
    """``items`` as strings: JSON strings as they are, numbers and others in their text form."""
    try:
        return pa.array(items, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # a number where a string belongs
        return pa.array([None if v is None else str(v) for v in items], pa.string())


def _check_identity(path: Path, where: str, entry: dict[str, Any]) -> None:
    extra = sorted(str(k) for k in entry if k not in IDENTITY_KEYS)
    if extra:
        raise InputError(
            f"{path}: {where} has the key {_name(extra[0])}, which dsar does not understand"
            f" (an identity has {', '.join(sorted(IDENTITY_KEYS))})"
        )
    if entry.get("isDeletedClientSide", False) is not False:
        raise InputError(
            f"{path}: {where}.isDeletedClientSide is set; dsar does not send it, so it"
            " refuses the file rather than drop it"
        )


def job_settings_for(upload: Upload, settings: Settings, where: str) -> Settings:
    """``settings`` whose [job] options are the file's where the file sets them.

    Raises :class:`ConfigError` when the configuration sets one of those options explicitly to
    another value, or names another IMS org than the file; logs one INFO line naming the
    options taken from the file.
    """
    org = settings.credentials.org_id
    if org and any(value != org for value in upload.org_ids):
        raise ConfigError(
            f"{where}: the file's companyContexts names another IMS org than ADOBE_ORG_ID;"
            " submit it with that org's credentials or remove companyContexts"
        )
    job = settings.job
    for setting, value in upload.options.items():
        current = getattr(job, setting)
        if f"job.{setting}" in settings.explicit and not _same(setting, value, current):
            key = next(k for k, s in OPTION_SETTINGS.items() if s == setting)
            raise ConfigError(
                f"{where}: the file sets {key} = {_shown(value)} but the configuration sets"
                f" [job] {setting} = {_shown(current)}; remove one of them"
            )
    if not upload.options:
        return settings
    given = upload.options
    taken = ", ".join(f"{k}={_shown(given[s])}" for k, s in OPTION_SETTINGS.items() if s in given)
    log.info("JSON upload %s: request options taken from the file: %s", where, taken)
    return dataclasses.replace(settings, job=dataclasses.replace(job, **upload.options))


def _same(setting: str, ours: Any, theirs: Any) -> bool:
    if setting == "include":
        return {p.lower() for p in ours} == {str(p).lower() for p in theirs}
    if setting == "regulation":
        return _regulation(ours) == _regulation(str(theirs))
    if setting == "merge_policy_id":
        return theirs is not None and str(theirs) == ours
    return bool(ours == theirs)


def _regulation(value: str) -> str:
    lowered = value.strip().lower()
    return constants.DEPRECATED_REGULATIONS.get(lowered, lowered)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
