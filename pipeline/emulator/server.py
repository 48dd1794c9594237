"""Serving the emulator: in the caller's loop, in a background thread, or in the foreground.

- :func:`start_emulator` (``await``, in-loop; for async tests and the run engine's embedded mode)
- :class:`EmulatorServer` (context manager; own thread and loop; for CLI and subprocess tests)
- :func:`serve_forever` (``dsar emulator``)

All three bind to ``host`` on ``port`` (0 = an ephemeral port) and expose ``base_url`` (the API
root, with a trailing slash), ``ims_url`` (the token endpoint is ``ims/token/v3`` under it),
``root_url`` and ``backend``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from aiohttp import web

from .backend import PrivacyBackend
from .catalog import API_PREFIX
from .config import EmulatorConfig, load_config
from .gateway import gateway_middleware, stamp_date
from .keys import BACKEND_KEY
from .persistence import attach_persistence
from .routes import add_routes

log = logging.getLogger("dsar.emulator")
READY_TIMEOUT_S = 15.0


def build_app(backend: PrivacyBackend) -> web.Application:
    """The aiohttp application serving ``backend``."""
    app = web.Application(middlewares=[gateway_middleware], client_max_size=64 * 1024**2)
    app[BACKEND_KEY] = backend
    app.on_response_prepare.append(stamp_date)
    add_routes(app)
    return app


def make_backend(config: EmulatorConfig) -> PrivacyBackend:
    """A backend for ``config``, restored from and saving to SQLite when persistence is set."""
    backend = PrivacyBackend(config)
    if config.persistence_path:
        attach_persistence(backend, Path(config.persistence_path))
    return backend


class _Urls:
    root_url: str
    base_url: str
    ims_url: str

    def _set_urls(self, host: str, port: int) -> None:
        self.root_url = f"http://{host}:{port}/"
        self.ims_url = self.root_url
        self.base_url = f"{self.root_url}{API_PREFIX.strip('/')}/"


class RunningEmulator(_Urls):
    """An emulator served in the current event loop; ``await close()`` (or ``async with``)."""

    def __init__(self, backend: PrivacyBackend, runner: web.AppRunner, host: str, port: int):
        self.backend = backend
        self._runner = runner
        self.port = port
        self._set_urls(host, port)

    async def close(self) -> None:
        """Stop serving and release the port."""
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningEmulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    backend: PrivacyBackend | None = None,
) -> RunningEmulator:
    """Serve an emulator in the running loop; returns once it accepts connections.

    Pass ``backend`` to serve one built by the caller (e.g. with an injected monotonic clock);
    otherwise one is made from ``config`` (default: :class:`EmulatorConfig` defaults).
    """
    backend = backend or make_backend(config or EmulatorConfig())
    runner = web.AppRunner(build_app(backend), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return RunningEmulator(backend, runner, host, bound)


class EmulatorServer(_Urls):
    """An emulator on its own thread and event loop; a context manager.

    ``with EmulatorServer(cfg) as emu:`` returns once the server accepts connections. Without a
    config, the default config with the client from ``ADOBE_CLIENT_ID`` etc. is used; pass
    ``backend`` to serve one built by the caller (e.g. with an injected monotonic clock).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backend: PrivacyBackend | None = None,
    ) -> None:
        self.backend = backend or make_backend(config or load_config(None, os.environ))
        self.config = self.backend.config
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> EmulatorServer:
        """Start serving; raises if the server does not come up."""
        self._thread = threading.Thread(target=self._run, name="dsar-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            raise RuntimeError("the emulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the emulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(build_app(self.backend), access_log=None)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._set_urls(self.host, self.port)
        except BaseException as exc:  # reported to the starting thread, then re-raised
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        """Stop serving and wait for the thread to finish."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(READY_TIMEOUT_S)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(host: str, port: int, config_path: Path | None, env: Mapping[str, str]) -> None:
    """Serve the emulator in the foreground until interrupted (``dsar emulator``)."""
    config = load_config(config_path, env)
    server = EmulatorServer(config, host=host, port=port).start()
    # The line scripts wait for, with the port actually bound (``--port 0`` picks a free one).
    log.info("emulator serving %s (token endpoint %sims/token/v3)", server.base_url, server.ims_url)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()
