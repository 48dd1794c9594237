"""Keyed hashes that stand in for personal data: derived subject keys, user keys, key labels.

The one keyed-hash scheme of dsar and the one secret default of ``DSAR_KEY_SECRET``: planning
derives subject keys with it, and the hand-off's ``--redact-keys`` labels keys with it.

Both are vectorised (SipHash-2-4 through pandas' C hashing, two 64-bit lanes under two
sub-keys drawn from the secret), so millions of keys cost no Python loop. A keyed hash cannot be
reversed by hashing a list of candidate emails without the secret.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .constants import KEY_SECRET_ENV

__all__ = [
    "DEFAULT_KEY_SECRET",
    "KEY_SECRET_ENV",
    "LABEL_PREFIX",
    "fingerprints",
    "key_labeller",
    "key_secret",
    "keyed_hex",
    "user_key",
    "user_keys",
]

# Used when the environment variable named by ``input.key_secret_env`` is unset. Derived keys
# are then stable across installations but guessable by someone who has this source and a
# candidate identity: set the variable for anything beyond tests and demos.
DEFAULT_KEY_SECRET = "dsar-default-subject-key-secret"
LABEL_PREFIX = "h:"


def key_secret(env: Mapping[str, str], name: str = KEY_SECRET_ENV) -> bytes:
    """The keyed-hash secret: the variable ``name`` of ``env``, else :data:`DEFAULT_KEY_SECRET`."""
    return (env.get(name) or DEFAULT_KEY_SECRET).encode("utf-8")


def key_labeller(secret: bytes) -> Callable[[str], str]:
    """A function mapping a subject key to ``h:`` + 16 hex digits of its keyed hash."""

    def label(key: str) -> str:
        return LABEL_PREFIX + str(keyed_hex(pa.array([key], pa.string()), secret, 16)[0].as_py())

    return label


def _subkeys(secret: bytes) -> tuple[str, str]:
    raw = base64.b64encode(hashlib.blake2b(secret, digest_size=24).digest()).decode("ascii")
    return raw[:16], raw[16:32]


def keyed_hex(values: pa.Array, secret: bytes, width: int = 20) -> pa.Array:
    """``width`` hex characters (at most 32) of a keyed hash of each string; nulls stay null."""
    if width > 32:
        raise ValueError("width is at most 32 hex characters")
    n = len(values)
    if n == 0:
        return pa.array([], pa.string())
    objects = values.to_numpy(zero_copy_only=False).astype(object)
    first, second = _subkeys(secret)
    lanes = np.empty((n, 2), dtype=">u8")
    lanes[:, 0] = pd.util.hash_array(objects, hash_key=first, categorize=False)
    lanes[:, 1] = pd.util.hash_array(objects, hash_key=second, categorize=False)
    text = lanes.tobytes().hex().encode("ascii")
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    full = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))
    digests = pc.utf8_slice_codeunits(full, 0, width)
    return pc.if_else(pc.is_null(values), pa.scalar(None, pa.string()), digests)


def fingerprints(values: pa.Array, secret: bytes) -> np.ndarray:
    """One signed 64-bit keyed hash per string (the first lane of :func:`keyed_hex`): the
    fingerprint the workspace registry stores instead of a subject key. Nulls hash as ""."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    objects = pc.fill_null(values.cast(pa.string()), "").to_numpy(zero_copy_only=False)
    lane = pd.util.hash_array(
        objects.astype(object), hash_key=_subkeys(secret)[0], categorize=False
    )
    return lane.view(np.int64)


def user_keys(run_id: str, subject_keys: pa.Array, parts: pa.Array) -> pa.Array:
    """The user key of each (subject, part) of run ``run_id``: see :func:`user_key`."""
    digest = keyed_hex(subject_keys.cast(pa.string()), run_id.encode("utf-8"), 20)
    base = pc.binary_join_element_wise(pa.scalar(run_id), digest, "-")
    if not pc.any(pc.greater(parts, 0)).as_py():
        return base
    part_text = pc.binary_join_element_wise("-p", parts.cast(pa.string()), "")
    suffix = pc.if_else(pc.greater(parts, 0), part_text, pa.scalar("", pa.string()))
    return pc.binary_join_element_wise(base, suffix, "")


def user_key(run_id: str, subject_key: str, part: int = 0) -> str:
    """The key sent to the service for ``subject_key`` (part ``part``) in run ``run_id``.

    ``f"{run_id}-{digest}"`` plus ``-p{part}`` for the second and later parts of a split
    subject; ``digest`` is 20 hex characters of a hash keyed by the run id. Deterministic per
    (run, subject, part), unique across runs by its prefix, and free of PII.
    """
    keys = user_keys(run_id, pa.array([subject_key]), pa.array([part], pa.int64()))
    return str(keys[0].as_py())
