"""Helpers on the raw buffers of Arrow string arrays: checks that avoid copying clean data.

A column that needs no trimming, lower-casing or escaping (the usual case) is detected with a
NumPy scan of its bytes, and the kernel that would copy it is skipped.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NULL = pa.scalar(None, pa.string())


def string_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (n + 1) and the data bytes of a string array, without copies."""
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    offsets = offsets[values.offset : values.offset + len(values) + 1]
    raw = values.buffers()[2]
    data = np.frombuffer(raw, dtype=np.uint8) if raw is not None else np.zeros(0, np.uint8)
    return offsets, data


def _is_space(byte: np.ndarray) -> np.ndarray:
    # non-ASCII bytes may start or end a Unicode space: let the kernel decide
    space: np.ndarray = (byte == 32) | ((byte >= 9) & (byte <= 13)) | (byte >= 0x80)
    return space


def clean(values: pa.Array) -> pa.Array:
    """Trimmed strings; empty and whitespace-only cells become null.

    The buffers are checked first, so that a clean column (the usual case) is not copied.
    """
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    if len(values) == 0:
        return values
    offsets, data = string_buffers(values)
    lengths = np.diff(offsets)
    full = lengths > 0
    if full.any() and (
        _is_space(data[offsets[:-1][full]]).any() or _is_space(data[offsets[1:][full] - 1]).any()
    ):
        values = pc.utf8_trim_whitespace(values)
        lengths = np.diff(string_buffers(values)[0])
    if (lengths == 0).any():
        values = pc.if_else(pa.array(lengths > 0), values, _NULL)
    return values


def longest(values: pa.Array) -> int:
    """The longest string of ``values`` in bytes (an upper bound of its characters)."""
    offsets, _ = string_buffers(values)
    return int(np.diff(offsets).max()) if len(values) else 0


def has_upper(values: pa.Array) -> bool:
    """True if lower-casing could change ``values`` (ASCII capitals or non-ASCII bytes)."""
    offsets, data = string_buffers(values)
    used = data[offsets[0] : offsets[-1]] if len(values) else data[:0]
    return bool((((used >= 65) & (used <= 90)) | (used >= 0x80)).any())


def has_bytes(values: pa.Array, low: int, high: int) -> bool:
    """True if any string of ``values`` holds a byte in ``low..high`` (a scan of the buffer)."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if len(values) == 0 or values.buffers()[2] is None:
        return False
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    first, last = offsets[values.offset], offsets[values.offset + len(values)]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[first:last]
    return (
        bool(((data >= low) & (data <= high)).any()) if low != high else bool((data == low).any())
    )
