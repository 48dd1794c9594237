"""[results] encrypt_to: results are stored as age files, and no plaintext ZIP touches the disk.

The run downloads from the emulator with every file the process opens for writing recorded
(``os.open`` is watched), so a plaintext ZIP written for an instant and removed would be seen.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyrage import decrypt_io, x25519

from tests.helpers.purge import only_run
from tests.helpers.run import run_cli, write_config, write_subjects


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_results_are_encrypted_as_they_stream_and_decrypt_to_the_services_zip(
    tmp_path: Path, emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory()
    identity = x25519.Identity.generate()
    write_subjects(tmp_path / "in.csv", 20, actions=("access",))
    cfg = write_config(tmp_path / "c.toml", results={"encrypt_to": [str(identity.to_public())]})
    ws = tmp_path / "ws"
    created: list[str] = []
    real_open = os.open

    def watched_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created.append(str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", watched_open)
    argv = ["run", str(tmp_path / "in.csv"), "--config", str(cfg), "--workspace", str(ws)]
    assert run_cli(argv, emu.env, monkeypatch) in (0, 1)
    monkeypatch.setattr(os, "open", real_open)
    run_dir = only_run(ws)

    in_results = [Path(p).name for p in created if f"{os.sep}results{os.sep}" in p]
    assert in_results, "no result was downloaded"
    assert all(n.endswith((".zip.age", ".zip.age.part")) for n in in_results), in_results
    stored = sorted((run_dir / "results").iterdir())
    assert stored
    assert all(p.name.endswith(".zip.age") for p in stored)

    status = pq.read_table(run_dir / "status.parquet").to_pylist()
    rows = {r["result_path"]: r for r in status if r["result_path"]}
    assert len(rows) == len(stored)
    plain_dir = tmp_path / "plain"
    for path in stored:
        row = rows[f"results/{path.name}"]
        ciphertext = path.read_bytes()
        assert not ciphertext.startswith(b"PK")
        assert row["result_sha256"] == hashlib.sha256(ciphertext).hexdigest()
        plain = io.BytesIO()
        decrypt_io(io.BytesIO(ciphertext), plain, [identity])
        assert plain.getvalue().startswith(b"PK")
        assert row["result_plain_sha256"] == hashlib.sha256(plain.getvalue()).hexdigest()
        # the service's own ZIP of the job, fetched again without encryption
        job = ["jobs", "download", row["job_id"], "--out", str(plain_dir)]
        assert run_cli(job, emu.env, monkeypatch) == 0
        again = (plain_dir / f"{row['job_id']}.zip").read_bytes()
        assert _members(again) == _members(plain.getvalue())  # the ZIP's own times differ
    assert run_cli(["verify", str(run_dir)], {}, monkeypatch) == 0
