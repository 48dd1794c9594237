"""A local emulator of the Adobe Experience Platform Privacy Service API.

Imports nothing from the rest of ``pipeline``. Start it with :class:`EmulatorServer` (own
thread), :func:`start_emulator` (in the running loop) or ``dsar emulator``; drive it with the
control endpoints under ``/_emulator/``.
"""

from .backend import PrivacyBackend
from .config import EmulatorConfig, load_config
from .server import EmulatorServer, RunningEmulator, serve_forever, start_emulator

__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "PrivacyBackend",
    "RunningEmulator",
    "load_config",
    "serve_forever",
    "start_emulator",
]
