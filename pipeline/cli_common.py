"""What every command module of the CLI shares: common flags and settings from arguments."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from .settings import Settings, load_settings

SubParsers = argparse._SubParsersAction  # the type argparse gives `add_subparsers`
Registrar = Callable[["SubParsers[argparse.ArgumentParser]"], None]


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from ``--config`` (if any), the environment, and the flags in ``args``."""
    path: Path | None = getattr(args, "config", None)
    overrides: dict[str, dict[str, object]] = {}
    workspace = getattr(args, "workspace", None)
    if workspace:
        overrides.setdefault("output", {})["workspace"] = str(workspace)
    return load_settings(path, env=os.environ, overrides=overrides)


def add_common(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--log-format`` and ``--verbose``."""
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
