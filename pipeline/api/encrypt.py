"""Encryption at rest of downloaded results: an age stream written as the download arrives.

:class:`AgeWriter` takes the plaintext chunks of a download and hands them through a pipe to a
thread that runs ``pyrage.encrypt_io`` into the destination file, so the plaintext is never
written to disk and never held whole in memory. ``pyrage`` is an optional dependency
(``pip install 'dsar[encrypt]'``); the setting that asks for encryption is refused at load
time without it (:mod:`pipeline.settings_check`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, PipelineError

_NEEDS = "[results] encrypt_to needs the optional package pyrage: pip install 'dsar[encrypt]'"


def age_recipients(recipients: Sequence[str]) -> list[Any]:
    """The parsed age recipients; :class:`ConfigError` without pyrage."""
    try:
        from pyrage import x25519
    except ImportError:
        raise ConfigError(_NEEDS) from None
    return [x25519.Recipient.from_str(r) for r in recipients]


class AgeWriter:
    """Plaintext in (:meth:`write`), an age file out on ``out_fd`` (written by a thread)."""

    def __init__(self, out_fd: int, recipients: Sequence[str]) -> None:
        import pyrage

        parsed = age_recipients(recipients)
        read_fd, write_fd = os.pipe()
        self._plain = os.fdopen(write_fd, "wb")
        self._src = os.fdopen(read_fd, "rb")
        self._out = os.fdopen(os.dup(out_fd), "wb")
        self._error: BaseException | None = None

        def encrypt() -> None:
            try:
                pyrage.encrypt_io(self._src, self._out, parsed)
                self._out.flush()
            except BaseException as exc:  # reported by close(); keep the pipe drained
                self._error = exc
                while self._src.read(1 << 16):
                    pass

        self._thread = threading.Thread(target=encrypt, name="dsar-age", daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        """Encrypt ``chunk`` (blocks while the encrypting thread is a pipe's length behind)."""
        self._plain.write(chunk)

    def close(self) -> None:
        """End the stream and wait for the last ciphertext; raises what the encryption raised."""
        self._finish()
        if self._error is not None:
            raise PipelineError(f"age encryption failed ({type(self._error).__name__})")

    def abort(self) -> None:
        """Stop after an error elsewhere; what was written is discarded by the caller."""
        with contextlib.suppress(OSError):
            self._finish()

    def _finish(self) -> None:
        if not self._plain.closed:
            self._plain.close()
        self._thread.join()
        if not self._src.closed:
            self._src.close()
        if not self._out.closed:
            self._out.close()
