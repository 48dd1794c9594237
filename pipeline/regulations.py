"""Regulation values: the current list, and deprecated values mapped to their successors.

The service moved to state-suffixed values on 12 June 2025 (``ucpa_usa`` -> ``ucpa_ut_usa``)
and stopped accepting the old ones after 28 July 2025. dsar accepts the old spellings from
input files and configuration, maps them, and logs a warning naming only the two values.
"""

from __future__ import annotations

import logging

from . import constants
from .errors import ConfigError

log = logging.getLogger("dsar.regulations")


def is_current(value: str) -> bool:
    """True when ``value`` is a regulation the service accepts today."""
    return value in constants.REGULATIONS


def normalize_regulation(value: str, *, warn: bool = True) -> str:
    """The current regulation value for ``value``: itself, or its successor if deprecated.

    Case and surrounding spaces are ignored. A deprecated value is mapped with a warning
    (unless ``warn`` is false); an unknown value raises :class:`~pipeline.errors.ConfigError`.
    """
    cleaned = value.strip().lower()
    if cleaned in constants.REGULATIONS:
        return cleaned
    successor = constants.DEPRECATED_REGULATIONS.get(cleaned)
    if successor is None:
        raise ConfigError(
            f"unknown regulation {value.strip()[:40]!r} (e.g. gdpr, ccpa, cpra_ca_usa)"
        )
    if warn:
        log.warning(
            "regulation %r is deprecated (the service refuses it since 28 July 2025); using %r",
            cleaned,
            successor,
        )
    return successor
