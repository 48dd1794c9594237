"""Fixtures for tests/run: defined with the shared helpers in ``tests/helpers/run.py``."""

from __future__ import annotations

from tests.helpers.run import emulator_factory

__all__ = [
    "emulator_factory",
]
