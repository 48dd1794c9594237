"""What every command module of the CLI shares: common flags and settings from arguments."""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..settings import Settings, load_settings

SubParsers = argparse._SubParsersAction  # the type argparse gives `add_subparsers`
Registrar = Callable[["SubParsers[argparse.ArgumentParser]"], None]


# errno values of a path the user named that cannot be used as given: a usage error (exit 2)
USER_PATH_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EACCES, errno.EPERM,
     errno.EROFS, errno.ENAMETOOLONG}
)  # fmt: skip


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from ``--config`` (if any), the environment, and the flags in ``args``."""
    path: Path | None = getattr(args, "config", None)
    overrides: dict[str, dict[str, object]] = {}
    workspace = getattr(args, "workspace", None)
    if workspace:
        overrides.setdefault("output", {})["workspace"] = str(workspace)
    for flag, key in _JOB_FLAGS.items():
        value = getattr(args, flag.removeprefix("--").replace("-", "_"), None)
        if value is not None:
            overrides.setdefault("job", {})[key] = value
    labels = {("output", "workspace"): "--workspace"}
    labels.update({("job", key): flag for flag, key in _JOB_FLAGS.items()})
    settings = load_settings(path, env=os.environ, overrides=overrides, labels=labels)
    if not settings.job.canary_users:
        for flag in ("--canary-wait", "--canary-max-error"):
            if getattr(args, flag.removeprefix("--").replace("-", "_"), None) is not None:
                raise ConfigError(f"{flag} needs a canary: add --canary N")
    return settings


# flags that set a [job] key for one run (journalled with the plan)
_JOB_FLAGS = {
    "--canary": "canary_users",
    "--canary-wait": "canary_wait_s",
    "--canary-max-error": "canary_max_error",
}


def check_out_flag(out: Path | None, *, directory: bool) -> None:
    """:class:`ConfigError` for an ``--out`` that cannot be used, before any work is done: a
    directory that is a file, or a file whose directory does not exist."""
    if out is None:
        return
    if directory and out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, not a directory")
    if not directory and not out.parent.is_dir():
        raise ConfigError(f"--out: {out.parent} is not a directory")


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: the file, and what the system said."""
    reason = exc.strerror or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def port_number(text: str) -> int:
    """A TCP port for ``--port``: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text[:20]!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is 0..65535")
    return port


def add_common(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--log-format`` and ``--verbose``."""
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
