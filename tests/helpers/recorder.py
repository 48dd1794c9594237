"""A recording reverse proxy: dsar talks to it over real HTTP, it forwards to the emulator.

The emulator validates ``priority``, ``expandIds`` and ``mergePolicyId`` but keeps none of
them; a test that must see them on the wire points ``DSAR_API_BASE_URL`` at this proxy, which
passes every request through unchanged and keeps the bodies of the POSTs it forwarded.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class RecordingProxy(ThreadingHTTPServer):
    """Forwards to ``upstream`` (a root URL ending in ``/``); ``posts`` holds (path, JSON body)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.posts: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def root_url(self) -> str:
        """This proxy's root URL, with a trailing slash."""
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def bodies(self, suffix: str) -> list[Any]:
        """The JSON bodies of the POSTs whose path ends in ``suffix``, in arrival order."""
        with self.lock:
            return [body for path, body in self.posts if path.split("?")[0].endswith(suffix)]


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingProxy

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.posts.append((self.path, orjson.loads(body) if body else None))
        self._forward(body)

    def _forward(self, body: bytes | None) -> None:
        url = self.server.upstream + self.path.lstrip("/")
        request = urllib.request.Request(url, data=body, method=self.command)
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, headers, data = resp.status, resp.headers.items(), resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, data = exc.code, exc.headers.items(), exc.read()
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads :attr:`RecordingProxy.posts`, not a log."""


@contextmanager
def recording_proxy(upstream: str) -> Iterator[RecordingProxy]:
    """A :class:`RecordingProxy` serving on its own thread for the ``with`` block."""
    proxy = RecordingProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, name="recording-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)
