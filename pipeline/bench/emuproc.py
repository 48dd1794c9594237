"""The emulator in a separate process: start, control, watch, measure, kill, restart, stop.

:class:`EmulatorProcess` runs :class:`~pipeline.emulator.EmulatorServer` in a ``spawn`` child,
so that the client under test never shares an interpreter (or its GIL) with the service it
talks to. Besides the HTTP control plane (``/_emulator/...``) the parent can ask the child to
report, over a pipe, the moment the first request of an endpoint arrives (:meth:`watch`): an
event to wait on, not a state to poll. The benchmarks measure against it, and the reliability
tests SIGKILL it mid-run (:meth:`kill`) and start it again on the same port (:meth:`start`),
as a service restart looks to a client. The one emulator child of the project.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import time
import urllib.request
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from ..files import Closing

START_TIMEOUT_S = 30.0

# Simulated processing of a minute to an hour; with a simulated day per real second every job
# is done about 0.05 s after it is created. Limits off: the client is what is measured.
FAST = {"ack_delay_s": [1.0, 60.0], "processing_s": [60.0, 3600.0]}
NO_LIMITS = {"requests_per_second": 0, "daily_job_cap": 1_000_000_000}


def _child(control: Connection, events: Connection, config: dict[str, Any], port: int) -> None:
    from ..emulator import EmulatorConfig, EmulatorServer

    os.umask(0o077)  # persistence files of a child are private, like dsar's own
    server = EmulatorServer(EmulatorConfig().updated(config), port=port).start()
    client = server.config.clients[0]
    stats = server.backend.stats
    record = stats.record_request
    watched: set[str] = set()

    def recording(endpoint: str, status: str, at: float) -> None:
        record(endpoint, status, at)
        if endpoint in watched:
            watched.discard(endpoint)
            events.send((endpoint, time.monotonic()))

    stats.record_request = recording  # type: ignore[method-assign]
    control.send(
        {
            "base_url": server.base_url,
            "ims_url": server.ims_url,
            "root_url": server.root_url,
            "port": str(server.port),
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "org_id": client.org_id,
        }
    )
    try:
        while True:
            command, arg = control.recv()
            if command == "stop":
                break
            if command == "watch":
                watched.add(arg)  # set membership: safe to read from the server's thread
                control.send("armed")
    except EOFError:
        pass
    finally:
        server.stop()


class EmulatorProcess(Closing):
    """A running emulator child; a context manager. ``config`` is a partial EmulatorConfig."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self.urls: dict[str, str] = {}
        self.starts = 0
        self.start()

    def start(self) -> EmulatorProcess:
        """Start the child: on an ephemeral port the first time, on the same port after
        :meth:`kill` (with ``persistence_path`` set it comes back with its jobs)."""
        port = int(self.urls.get("port", "0"))
        ctx = mp.get_context("spawn")
        self._control, child_control = ctx.Pipe()
        self._events, child_events = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_child, args=(child_control, child_events, self._config, port), daemon=True
        )
        self._process.start()
        child_control.close()
        child_events.close()
        if not self._control.poll(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("the emulator process did not start in time")
        self.urls = self._control.recv()
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL the child (a crash of the service: nothing is flushed) and reap it."""
        if self._process.is_alive() and self._process.pid is not None:
            os.kill(self._process.pid, signal.SIGKILL)
        self._process.join(START_TIMEOUT_S)
        self._control.close()
        self._events.close()

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a dsar process at this emulator."""
        u = self.urls
        return {
            "DSAR_API_BASE_URL": u["base_url"],
            "DSAR_IMS_URL": u["ims_url"],
            "ADOBE_CLIENT_ID": u["client_id"],
            "ADOBE_CLIENT_SECRET": u["client_secret"],
            "ADOBE_ORG_ID": u["org_id"],
        }

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call ``/_emulator/<path>`` (POST with a JSON body, GET without)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.urls["root_url"] + "_emulator/" + path,
            data=data,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def requests(self) -> dict[str, int]:
        """API requests answered so far, by endpoint (every status together)."""
        stats = self.control("stats")["requests"]
        return {endpoint: sum(by.values()) for endpoint, by in stats.items()}

    def advance(self, seconds: float) -> None:
        """Move the emulator clock forward."""
        self.control("advance", {"seconds": seconds})

    def watch(self, endpoint: str) -> None:
        """Arm a one-shot report of the next request of ``endpoint`` (e.g. ``GET jobs``)."""
        self._control.send(("watch", endpoint))
        self._control.recv()

    def wait_seen(self, timeout_s: float) -> float | None:
        """The monotonic time the watched endpoint was first called, or None on timeout."""
        if not self._events.poll(timeout_s):
            return None
        _endpoint, at = self._events.recv()
        return float(at)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the emulator process has used so far."""
        with open(f"/proc/{self._process.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> Any:
        """The emulator's ``/_emulator/stats``."""
        return self.control("stats")

    def stop(self) -> None:
        """Stop the emulator and reap the child."""
        if self._control.closed:
            return  # killed, and not started again
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # the child is gone already
                self._control.send(("stop", None))
            self._process.join(START_TIMEOUT_S)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
        self._control.close()
        self._events.close()

    def close(self) -> None:
        """:meth:`stop` (what leaving a ``with`` block does)."""
        self.stop()
