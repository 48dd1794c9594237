"""A headless Chromium driven over the DevTools protocol, with the network blocked.

Just enough of the protocol for the report's browser test: start Chromium with a throw-away
profile and a proxy to a dead port (so any request leaving the machine fails), learn its
DevTools address from the line it prints on stderr (no polling), open a page, wait for its
load event, and record what the page did: every request, every failed request, every console
message and every uncaught exception. Then evaluate script and take screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "chromium"
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    # every request that would leave the machine goes to a port where nothing listens
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    "--window-size=1100,1400",
)
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium_path() -> str | None:
    """The chromium executable on PATH, or None."""
    return shutil.which(CHROMIUM)


@dataclass
class PageRecord:
    """What a page did while it loaded."""

    requests: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def console_errors(self) -> list[dict[str, Any]]:
        """Console and log entries at error level."""
        return [c for c in self.console if c.get("level") == "error"]


class Page:
    """One tab, attached with a flat DevTools session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str) -> None:
        self._ws = ws
        self._session = session_id
        self._ids = itertools.count(1000)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loaded = asyncio.Event()
        self.record = PageRecord()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command to the tab and wait for its result."""
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self._ws.send_json(
            {"id": msg_id, "method": method, "params": params, "sessionId": self._session}
        )
        return await future

    def dispatch(self, msg: dict[str, Any]) -> None:
        """Route one message of this session: a result, or an event to record."""
        if "id" in msg and msg["id"] in self._pending:
            future = self._pending.pop(msg["id"])
            if "error" in msg:
                future.set_exception(RuntimeError(f"DevTools error: {msg['error']}"))
            else:
                future.set_result(msg.get("result", {}))
            return
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            self.record.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            self.record.failed.append(params)
        elif method == "Runtime.consoleAPICalled":
            level = "error" if params.get("type") in ("error", "assert") else params.get("type")
            self.record.console.append({"level": level, "args": params.get("args")})
        elif method == "Log.entryAdded":
            self.record.console.append(params["entry"])
        elif method == "Runtime.exceptionThrown":
            self.record.exceptions.append(params)
        elif method == "Page.loadEventFired":
            self._loaded.set()

    async def open(self, url: str) -> None:
        """Enable the event domains, navigate to ``url`` and wait for its load event."""
        for domain in ("Page", "Network", "Runtime", "Log"):
            await self.call(f"{domain}.enable")
        self._loaded.clear()
        await self.call("Page.navigate", url=url)
        await self._loaded.wait()

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` evaluated in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self) -> bytes:
        """A PNG of the whole page, beyond the viewport."""
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])


class Browser:
    """A running headless Chromium; use :func:`launch`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._results: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[msg_id] = future
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        return await future

    async def pump(self) -> None:
        """Read messages until the socket closes, routing each to its waiter or page."""
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            msg = message.json()
            if "sessionId" in msg and msg["sessionId"] in self._pages:
                self._pages[msg["sessionId"]].dispatch(msg)
            elif "id" in msg and msg["id"] in self._results:
                self._results.pop(msg["id"]).set_result(msg.get("result", {}))

    async def new_page(self) -> Page:
        """A new blank tab with its own session."""
        target = await self._call("Target.createTarget", url="about:blank")
        attached = await self._call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        page = Page(self._ws, attached["sessionId"])
        self._pages[attached["sessionId"]] = page
        return page


@contextlib.asynccontextmanager
async def launch(profile_dir: Path) -> AsyncIterator[Browser]:
    """Start Chromium with ``profile_dir`` as its profile; stop it on exit."""
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("chromium is not on PATH")
    proc = await asyncio.create_subprocess_exec(
        exe, *_FLAGS, f"--user-data-dir={profile_dir}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    drain: asyncio.Task[None] | None = None
    try:
        url = await _devtools_url(proc.stderr)
        # keep reading stderr so Chromium never blocks on a full pipe
        drain = asyncio.create_task(_drain(proc.stderr))
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, max_msg_size=0) as ws,
        ):
            browser = Browser(ws)
            pump = asyncio.create_task(browser.pump())
            try:
                yield browser
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        if drain is not None:
            await drain


async def _devtools_url(stderr: asyncio.StreamReader) -> str:
    """The browser's DevTools websocket URL, from the line Chromium prints at start."""
    while line := await stderr.readline():
        match = _LISTENING.search(line)
        if match:
            return match.group(1).decode()
    raise RuntimeError("chromium exited before it opened its DevTools port")


async def _drain(stderr: asyncio.StreamReader) -> None:
    while await stderr.readline():
        pass
