"""Fixtures for the privacy and security tests: the run tests' emulator factory."""

from __future__ import annotations

from tests.helpers.run import emulator_factory

__all__ = ["emulator_factory"]
