"""One implementation per concept: the places that used to hold their own copy now agree."""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path

import pyarrow as pa

from pipeline import constants
from pipeline.api.client import PrivacyServiceClient
from pipeline.api.retry import RetryPolicy
from pipeline.api.transport import Redactor
from pipeline.files import atomic_file, publish, sha256_file, temp_path
from pipeline.input.planning import key_secret as planning_secret
from pipeline.journal.jobs import redact
from pipeline.keys import DEFAULT_KEY_SECRET, KEY_SECRET_ENV, key_labeller, key_secret, keyed_hex
from pipeline.logs import mask_values, masked_values
from pipeline.settings import ApiSettings, Settings


def test_the_client_the_retry_policy_and_the_settings_share_one_set_of_defaults() -> None:
    api = ApiSettings()
    retry = RetryPolicy()
    params = inspect.signature(PrivacyServiceClient.__init__).parameters
    assert retry.max_retries == api.max_retries == constants.DEFAULT_MAX_RETRIES
    assert retry.cap_s == api.backoff_cap_s == constants.DEFAULT_BACKOFF_CAP_S
    assert params["timeout_s"].default == api.timeout_s == constants.DEFAULT_TIMEOUT_S
    assert (
        params["connect_timeout_s"].default
        == api.connect_timeout_s
        == constants.DEFAULT_CONNECT_TIMEOUT_S
    )
    assert constants.DEFAULT_TIMEOUT_S < constants.GATEWAY_TIMEOUT_S


def test_one_masking_rule_for_the_transport_and_the_journal() -> None:
    values = ["ab", "jane@example.org", "jane", "+15550001111"]
    text = "user jane@example.org (jane, ab) phone +15550001111 failed"
    once = mask_values(text, masked_values(values))
    assert once == "user *** (***, ab) phone *** failed"  # 2-char values are left alone
    assert redact(text, values) == once
    assert Redactor(values)(text) == once
    assert redact(None, values) is None
    assert redact("", values) == ""


def test_a_value_holding_another_is_masked_whole() -> None:
    assert masked_values(["jane", "jane.doe", "x"]) == ["jane.doe", "jane"]
    assert mask_values("jane.doe and jane", masked_values(["jane", "jane.doe"])) == "*** and ***"


def test_one_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (3 << 20))
    assert sha256_file(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


def test_the_atomic_writer_publishes_a_0600_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.parquet"  # (a failed write: tests/reports/test_reports.py)
    with atomic_file(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["report.parquet"]


def test_publish_moves_a_finished_temporary_file_into_place(tmp_path: Path) -> None:
    target = tmp_path / "rejects.parquet"
    tmp = temp_path(target)
    assert tmp.name == f".rejects.parquet.{os.getpid()}.tmp"
    tmp.write_bytes(b"rows")
    publish(tmp, target)
    assert target.read_bytes() == b"rows"
    assert not tmp.exists()


def test_one_keyed_hash_and_one_secret_default_for_planning_and_the_hand_off() -> None:
    settings = Settings()
    assert planning_secret(settings, {}) == key_secret({}) == DEFAULT_KEY_SECRET.encode()
    env = {KEY_SECRET_ENV: "s3cret"}
    assert planning_secret(settings, env) == key_secret(env) == b"s3cret"
    label = key_labeller(b"s3cret")("subject-1")
    digest = keyed_hex(pa.array(["subject-1"]), b"s3cret", 16)[0].as_py()
    assert label == f"h:{digest}"
    assert key_labeller(b"other")("subject-1") != label
