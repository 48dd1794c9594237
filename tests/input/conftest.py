"""Fixtures for tests/input: defined with the shared helpers in ``tests/helpers/input.py``."""

from __future__ import annotations

from tests.helpers.input import write

__all__ = [
    "write",
]
