"""Helpers and fixtures shared between test packages; test modules import them from here.

One module per tested package (``api``, ``emulator``, ``input``, ``reports``, ``run``) plus
cross-package tools (``vclock``, ``plans``, ``recorder``, ``emuproc``, ``peak_rss``). Fixtures
defined here are registered by the conftest of the directory that uses them.
"""
