"""Fixtures for tests/emulator: defined with the shared helpers in ``tests/helpers/emulator.py``."""

from __future__ import annotations

from tests.helpers.emulator import api, config, emu, monotonic, other_api, session

__all__ = ["api", "config", "emu", "monotonic", "other_api", "session"]
