"""Durable files: the one atomic writer (fsync, rename, fsync of the directory) and file digest.

Every file dsar publishes (reports, rejects, summary, manifest, downloaded results) is written
beside its final name, fsynced, renamed over it and made durable by an fsync of the directory,
so a crash leaves either the old file or the new one, never a torn one. Temporary names carry
the writer's pid (``.NAME.PID.tmp``), so a later run can tell a dead writer's leftovers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Self

_CHUNK = 1 << 20


def temp_path(path: Path) -> Path:
    """The temporary name beside ``path`` that this process writes before publishing it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def fsync_dir(directory: Path) -> None:
    """fsync ``directory``, so that a rename or a removal in it survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, path: Path, *, synced: bool = False) -> None:
    """Move the finished file ``tmp`` over ``path`` durably (fsync it first unless ``synced``)."""
    if not synced:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` only when the block ends without an error.

    Written 0600 beside ``path``, flushed and fsynced, renamed over ``path``; the directory is
    fsynced so the rename itself survives a crash. On error the temporary file is removed.
    """
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Closing:
    """``with thing:`` closes ``thing`` on the way out: the one context-manager shape of the
    objects that hold a file or a process open (journal, ledger, registry, plan, the emulator
    child). A subclass defines :meth:`close`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
