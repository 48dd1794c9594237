"""Fixtures for tests/reports: defined with the shared helpers in ``tests/helpers/reports.py``."""

from __future__ import annotations

from tests.helpers.reports import run

__all__ = [
    "run",
]
