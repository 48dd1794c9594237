"""Which input column plays which part: the layout of a file, resolved once from its header.

Column names match case-insensitively. In the wide layout a column named like a standard
namespace (``email``, ``ecid``, ``phone``, ...) is an identity of that namespace with type
``standard``; any other identity column needs an ``[input.columns]`` mapping. Columns that are
neither are ignored (their names are logged, never their values).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import constants
from ..errors import ConfigError, MissingColumnError
from ..settings import InputSettings

OPTIONAL_COLUMNS = ("action", "regulation", "received_at", "org")
LONG_COLUMNS = ("namespace", "value")


@dataclass(frozen=True)
class IdentityColumn:
    """A wide-layout column holding identities of one namespace and type."""

    column: str
    namespace: str
    type: str


@dataclass(frozen=True)
class Layout:
    """The resolved roles of a file's columns (actual header spellings)."""

    layout: str  # "wide" | "long"
    key_column: str | None
    action_column: str | None
    regulation_column: str | None
    received_column: str | None
    identities: tuple[IdentityColumn, ...] = ()
    namespace_column: str | None = None
    value_column: str | None = None
    type_column: str | None = None
    ignored: tuple[str, ...] = ()
    org_column: str | None = None  # the [[orgs]] name of the row (empty: [job] org)


def canonical_namespace(namespace: str, kind: str) -> str:
    """The wire spelling of a standard namespace (``Email`` -> ``email``); others unchanged."""
    if kind == "standard" and namespace.lower() in constants.STANDARD_NAMESPACES:
        return constants.STANDARD_NAMESPACES[namespace.lower()][0]
    return namespace


def resolve_layout(
    columns: tuple[str, ...], settings: InputSettings, path: str, layout: str | None = None
) -> Layout:
    """Map header ``columns`` to roles; raise :class:`MissingColumnError` for a required one."""
    by_lower = {c.lower(): c for c in columns}
    layout = layout or settings.layout
    key = by_lower.get(settings.key_column.lower())
    optional = {name: by_lower.get(name) for name in OPTIONAL_COLUMNS}
    if layout == "long":
        if key is None:
            raise MissingColumnError(settings.key_column, path)
        for name in LONG_COLUMNS:
            if name not in by_lower:
                raise MissingColumnError(name, path)
        return Layout(
            layout="long",
            key_column=key,
            action_column=optional["action"],
            regulation_column=optional["regulation"],
            received_column=optional["received_at"],
            org_column=optional["org"],
            namespace_column=by_lower["namespace"],
            value_column=by_lower["value"],
            type_column=by_lower.get("type"),
        )
    identities: list[IdentityColumn] = []
    mapped = {name.lower(): spec for name, spec in settings.columns.items()}
    for name, spec in mapped.items():
        if spec.type not in constants.ID_TYPES:
            raise ConfigError(f"[input.columns] {name}: unknown type {spec.type!r}")
        if name not in by_lower:
            raise MissingColumnError(name, path)
    taken = {v for v in optional.values() if v} | ({key} if key else set())
    ignored: list[str] = []
    for column in columns:
        lower = column.lower()
        if column in taken:
            continue
        if lower in mapped:
            spec = mapped[lower]
            namespace = canonical_namespace(spec.namespace, spec.type)
            identities.append(IdentityColumn(column, namespace, spec.type))
        elif lower in constants.STANDARD_NAMESPACES:
            identities.append(
                IdentityColumn(column, constants.STANDARD_NAMESPACES[lower][0], "standard")
            )
        else:
            ignored.append(column)
    if not identities:
        raise MissingColumnError(
            "an identity column (email, ecid, phone, ... or one mapped in [input.columns])", path
        )
    return Layout(
        layout="wide",
        key_column=key,
        action_column=optional["action"],
        regulation_column=optional["regulation"],
        received_column=optional["received_at"],
        org_column=optional["org"],
        identities=tuple(identities),
        ignored=tuple(ignored),
    )
