"""The emulator as a separate process that tests can SIGKILL and restart on the same port.

``python -m tests.helpers.emuproc CONFIG_JSON [PORT]`` serves an emulator configured by the JSON
file (an :class:`~pipeline.emulator.EmulatorConfig` update) on 127.0.0.1, port ``PORT`` (default
0, an ephemeral port), prints ``READY <port>`` once it accepts connections, and serves until it
is killed or its stdin closes. :class:`EmulatorProcess` drives it from a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.emulator import EmulatorConfig, EmulatorServer

READY_TIMEOUT_S = 20.0


class EmulatorProcess:
    """A ``python -m tests.helpers.emuproc`` child: start, stop (SIGKILL), restart, control."""

    def __init__(self, config: Mapping[str, Any], workdir: Path) -> None:
        self.config = EmulatorConfig().updated(config)
        self.config_path = workdir / "emulator.json"
        self.config_path.write_text(json.dumps(dict(config)), encoding="utf-8")
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def start(self) -> EmulatorProcess:
        """Start the child (on the same port as before, after the first start)."""
        cmd = [sys.executable, "-m", "tests.helpers.emuproc", str(self.config_path), str(self.port)]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the child is serving (or has died)
        if not line.startswith("READY "):
            proc.kill()
            proc.wait(READY_TIMEOUT_S)
            raise RuntimeError(f"the emulator process did not start: {line!r}")
        self.port = int(line.split()[1])
        self.proc = proc
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL the child and reap it."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(READY_TIMEOUT_S)
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.proc = None

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def env(self) -> dict[str, str]:
        """The environment that points dsar at this emulator."""
        client = self.config.clients[0]
        return {
            "DSAR_API_BASE_URL": f"{self.root_url}data/core/privacy/",
            "DSAR_IMS_URL": self.root_url,
            "ADOBE_CLIENT_ID": client.client_id,
            "ADOBE_CLIENT_SECRET": client.client_secret,
            "ADOBE_ORG_ID": client.org_id,
        }

    def control(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call ``/_emulator/<path>`` (POST with a JSON body, GET without)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.root_url}_emulator/{path}", data=data, method="POST" if data else "GET"
        )
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _serve(config_path: Path, port: int) -> None:
    config = EmulatorConfig().updated(json.loads(config_path.read_text(encoding="utf-8")))
    server = EmulatorServer(config, port=port).start()
    print(f"READY {server.port}", flush=True)
    sys.stdin.read()  # returns when the parent closes our stdin (or we are killed)
    server.stop()


if __name__ == "__main__":
    os.umask(0o077)
    _serve(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
