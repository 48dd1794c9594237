"""Fixtures for the reliability tests: the run tests' emulator factory, shared run checks."""

from __future__ import annotations

from tests.helpers.run import emulator_factory

__all__ = ["emulator_factory"]
