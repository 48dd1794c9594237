"""Logging set-up: plain text or one JSON object per line, always on stderr.

Nothing logged by dsar carries an identity value, a user key derived from one, or a token;
log calls pass counts, ids dsar generated, and templates of endpoints.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence

import orjson

MIN_MASKED_LEN = 3  # masking one- or two-character values would shred every message
MASK = "***"


def masked_values(values: Iterable[str]) -> list[str]:
    """``values`` worth masking, longest first (a value containing another is masked whole)."""
    return sorted({v for v in values if len(v) >= MIN_MASKED_LEN}, key=len, reverse=True)


def mask_values(text: str, values: Sequence[str]) -> str:
    """``text`` with every occurrence of one of ``values`` (from :func:`masked_values`) masked.

    The one redactor of dsar's messages: the API transport adds patterns (emails, tokens) on
    top of it, the journal applies it to the product messages it stores.
    """
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, and any ``extra`` fields."""

    _SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._SKIP:
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
        return orjson.dumps(out, default=str).decode()


def configure_logging(*, fmt: str = "text", verbose: bool = False) -> None:
    """Route the ``dsar`` loggers to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("dsar")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def json_line(
    msg: str, *, level: str = "info", logger: str = "dsar", fields: Mapping[str, object] = {}
) -> str:
    """One JSON object shaped like a :class:`JsonFormatter` record, with ``fields`` added: what
    a command prints instead of plain text under ``--log-format json`` (summaries, errors)."""
    levelno = logging.getLevelNamesMapping()[level.upper()]
    record = logging.LogRecord(logger, levelno, "", 0, msg, None, None)
    record.__dict__.update(fields)
    return JsonFormatter().format(record)


def say(fmt: str, msg: str, *, level: str = "info", **fields: object) -> None:
    """Print a command's own line on stderr: ``msg`` as is, or a :func:`json_line` under
    ``--log-format json`` (so every line of a JSON-mode command parses)."""
    line = json_line(msg, level=level, fields=fields) if fmt == "json" else msg
    print(line, file=sys.stderr)
