"""Fixtures for the privacy and security tests: the run tests' emulator factory."""

from __future__ import annotations

from tests.run.conftest import emulator_factory

__all__ = ["emulator_factory"]
