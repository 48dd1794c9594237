"""The privacy scan: what a test registered as sensitive must not show up in what it produced.

A test (or a helper it calls, such as ``write_subjects`` or the emulator fixtures) registers
the identity values, tokens and secrets it used with :func:`register`. At teardown the plugin
in ``tests/conftest.py`` scans, for each of them: the test's captured stdout/stderr (dsar logs
go to stderr), everything ``capsys.readouterr()`` handed to the test, log records seen by
``caplog``, the message of any exception the test raised, and the ``summary.json`` and
``manifest.json`` files under the test's ``tmp_path``. A hit fails the test; the failure names
the place and the kind of value, never the value itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Values shorter than this would match by accident (e.g. "1" in a count): not registered.
MIN_LENGTH = 8
SCANNED_FILES = ("summary.json", "manifest.json")


@dataclass
class PrivacyScan:
    """Sensitive values of one test and the texts it produced."""

    values: dict[str, str] = field(default_factory=dict)  # value -> kind
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    files: list[Path] = field(default_factory=list)

    def register(self, values: Iterable[str], kind: str = "identity") -> None:
        """Mark ``values`` as sensitive for this test."""
        for value in values:
            if value and len(value) >= MIN_LENGTH:
                self.values.setdefault(value, kind)

    def add_text(self, where: str, text: str) -> None:
        """Record output to scan at teardown."""
        if text:
            self.texts.append((where, text))

    def add_file(self, path: Path) -> None:
        """Record a file to scan at teardown (if it exists then)."""
        self.files.append(path)

    def files_under(self, root: Path) -> None:
        """Record every summary.json and manifest.json under ``root``."""
        for depth in range(4):  # tmp/summary.json ... tmp/a/b/c/summary.json, not results/
            for name in SCANNED_FILES:
                self.files.extend(root.glob("*/" * depth + name))

    def hits(self) -> list[str]:
        """One line per (place, kind of value) where a sensitive value appears."""
        if not self.values:
            return []
        sources = list(self.texts)
        for path in self.files:
            if path.is_file():
                sources.append((path.name, path.read_text(encoding="utf-8", errors="replace")))
        found: list[str] = []
        for where, text in sources:
            kinds = sorted({kind for value, kind in self.values.items() if value in text})
            found += [f"{kind} value found in {where}" for kind in kinds]
        return sorted(set(found))


_current: list[PrivacyScan] = []


def begin() -> PrivacyScan:
    """Start the scan of one test (called by the autouse fixture)."""
    scan = PrivacyScan()
    _current.append(scan)
    return scan


def end(scan: PrivacyScan) -> None:
    """Stop collecting for ``scan``."""
    if scan in _current:
        _current.remove(scan)


def register(values: Iterable[str], kind: str = "identity") -> None:
    """Register sensitive values with the running test's scan (no-op outside a test)."""
    if _current:
        _current[-1].register(values, kind)


def record_text(where: str, text: str) -> None:
    """Record output with the running test's scan (no-op outside a test)."""
    if _current:
        _current[-1].add_text(where, text)
