"""Fixtures for tests/api: defined with the shared helpers in ``tests/helpers/api.py``."""

from __future__ import annotations

from tests.helpers.api import client, clock, mocked, tokens

__all__ = ["client", "clock", "mocked", "tokens"]
