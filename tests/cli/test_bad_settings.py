"""A user's mistake in the settings or on the command line ends as one ``dsar:`` line, exit 2.

Each bad setting (TOML, environment, flag) and each bad command line goes through the real CLI
in-process. It must exit 2 before any file is written or any API call is made, print exactly
one line on stderr that starts with ``dsar:`` and names the key (or flag), and show no
traceback, no "internal error" and no secret.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main
from tests.privacy import scan as privacy

SECRET = "p8e-BAD-SETTINGS-SECRET-4242"  # in the environment of every case
URL_PASSWORD = "Pw-in-the-URL-977"  # a password inside a base URL, never to be echoed
# an age recipient whose last character (part of its bech32 checksum) was changed
BAD_CHECKSUM = "age1nka2f4r0tu5fh4z74mqrs460yy9mel7y3zytwr08d5qwc267csqsa329fq"
GOOD_RECIPIENT = "age1nka2f4r0tu5fh4z74mqrs460yy9mel7y3zytwr08d5qwc267csqsa329fa"

# one good [[orgs]] table (name "eu"), and the variable keys of another
VARS = 'client_id_env = "ORG_ID_VAR"\nclient_secret_env = "ORG_SECRET_VAR"\n'
ORGS = '[[orgs]]\nname = "eu"\norg_id = "A@AdobeOrg"\n' + VARS

# (TOML text, a piece of the one error line that names the key)
BAD_TOML: list[tuple[str, str]] = [
    ('[api]\nbase_url = "ftp://example.org/"', "[api] base_url"),
    ('[api]\nbase_url = "example.org/data/core/privacy/"', "[api] base_url"),
    ('[api]\nbase_url = "https://"', "[api] base_url"),
    ("[api]\nbase_url = 42", "[api] base_url"),
    (f'[api]\nbase_url = "gopher://u:{URL_PASSWORD}@example.org/"', "[api] base_url"),
    ('[api]\nims_url = "file:///etc/passwd"', "[api] ims_url"),
    ("[api]\ntimeout_s = 0", "[api] timeout_s"),
    ("[api]\ntimeout_s = 60", "[api] timeout_s"),
    ('[api]\ntimeout_s = "30"', "[api] timeout_s"),
    ("[api]\nconnect_timeout_s = -1", "[api] connect_timeout_s"),
    ("[api]\nmax_retries = -1", "[api] max_retries"),
    ("[api]\nmax_retries = 1.5", "[api] max_retries"),
    ("[api]\nbackoff_cap_s = 0.1", "[api] backoff_cap_s"),
    (f'[api]\nclient_secret = "{SECRET}"', "[api] client_secret"),
    ("[api]\nbase_uri = 1", "base_uri"),
    ('[job]\nregulation = "nope"', "[job] regulation"),
    ("[job]\nregulation = 5", "[job] regulation"),
    ('[job]\ninclude = ["x"]', "[job] include"),
    ("[job]\ninclude = []", "[job] include"),
    ('[job]\ninclude = "aepDataLake"', "[job] include"),
    ('[job]\ninclude = ["analytics", "Analytics"]', "[job] include"),
    ('[job]\ndefault_action = "erase"', "[job] default_action"),
    ('[job]\npriority = "urgent"', "[job] priority"),
    ('[job]\nexpand_ids = "yes"', "[job] expand_ids"),
    ('[job]\nmerge_policy_id = ""', "[job] merge_policy_id"),
    ('[job]\nopt_out_via = "email"', "[job] opt_out_via"),
    ("[job]\ncanary_users = -1", "[job] canary_users"),
    ("[job]\ncanary_users = 2.5", "[job] canary_users"),
    ('[job]\ncanary_users = "10"', "[job] canary_users"),
    ("[job]\ncanary_wait_s = 0", "[job] canary_wait_s"),
    ("[job]\ncanary_max_error = 1.5", "[job] canary_max_error"),
    ("[job]\ncanary_max_error = -0.1", "[job] canary_max_error"),
    ("[job]\ncanary_max_error = true", "[job] canary_max_error"),
    ("[job]\ncooldown_days = -1", "[job] cooldown_days"),
    ("[job]\ncooldown_days = 1.5", "[job] cooldown_days"),
    ('[job]\ncooldown_days = "30"', "[job] cooldown_days"),
    ('[input]\nlayout = "tall"', "[input] layout"),
    ('[input]\nkey_column = ""', "[input] key_column"),
    ('[input]\non_too_many_ids = "drop"', "[input] on_too_many_ids"),
    ('[input]\ndelimiter = ";;"', "[input] delimiter"),
    ("[input]\nbatch_rows = 0", "[input] batch_rows"),
    ('[input]\nkey_secret_env = "not a name"', "[input] key_secret_env"),
    ('[input.columns]\ncrm = { namespace = "crmId" }', "[input] columns"),
    ('[input.columns]\ncrm = { namespace = "crmId", type = "weird" }', "[input] columns"),
    ('[input.columns]\ncrm = { namespace = " ", type = "custom" }', "[input] columns"),
    ("[input.columns]\ncrm = 5", "[input] columns"),
    ('[input]\ncolumns = "email"', "[input] columns"),
    ("[limits]\nrequests_per_second = -1", "[limits] requests_per_second"),
    ("[limits]\nrequests_per_second = 0", "[limits] requests_per_second"),
    ("[limits]\nrequests_per_second = nan", "[limits] requests_per_second"),
    ("[limits]\nmax_in_flight = 0", "[limits] max_in_flight"),
    ("[limits]\ndaily_job_cap = 0", "[limits] daily_job_cap"),
    ("[limits]\nusers_per_request = 1001", "[limits] users_per_request"),
    ("[limits]\nsubmit_workers = 2.5", "[limits] submit_workers"),
    ("[limits]\nmax_jobs = 0", "[limits] max_jobs"),
    ('[limits]\nmax_jobs = "all"', "[limits] max_jobs"),
    ("[limits]\nrequests_per_sec = 3", "requests_per_sec"),
    ("[poll]\ninterval_s = 0", "[poll] interval_s"),
    ('[poll]\nstrategy = "each"', "[poll] strategy"),
    ("[poll]\npage_size = 5000", "[poll] page_size"),
    ('[output]\nworkspace = ""', "[output] workspace"),
    ("[output]\nrun_dir = 7", "[output] run_dir"),
    ('[results]\nencrypt_to = "age1abc"', "[results] encrypt_to"),
    ('[results]\nencrypt_to = ["ssh-ed25519 AAAA"]', "[results] encrypt_to"),
    (f'[results]\nencrypt_to = ["{BAD_CHECKSUM}"]', "[results] encrypt_to"),
    ("[retention]\nresults_days = -1", "[retention] results_days"),
    ('[retention]\nresults_days = "30d"', "[retention] results_days"),
    ("[retention]\nidentities_days = 1.5", "[retention] identities_days"),
    ("[retention]\nidentities_days = 100000", "[retention] identities_days"),
    ("[retention]\nkeep_forever = true", "keep_forever"),
    ('[job]\norg = "eu"', "[job] org"),  # no [[orgs]] tables
    ('[job]\norg = "has space"', "[job] org"),
    (ORGS + '[job]\norg = "us"', "[job] org"),  # names no table
    (ORGS + '[[orgs]]\nname = "eu"\norg_id = "B@AdobeOrg"\n' + VARS, "[[orgs]] 'eu'"),
    (
        ORGS + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\nclient_id_env = "US_ID"',
        "client_secret_env",
    ),
    (ORGS + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\nregion = "us"\n' + VARS, "region"),
    (
        ORGS + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\nclient_secret = "x"\n' + VARS,
        "client_secret",
    ),
    (
        ORGS
        + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\n'
        + 'client_id_env = "not a var"\nclient_secret_env = "S"',
        "client_id_env",
    ),
    (
        ORGS + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\ndaily_job_cap = 0\n' + VARS,
        "daily_job_cap",
    ),
    (
        ORGS + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\nrequests_per_second = 0\n' + VARS,
        "requests_per_second",
    ),
    (ORGS + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\ninclude = ["x"]\n' + VARS, "include"),
    (
        ORGS + '[[orgs]]\nname = "us"\norg_id = "B@AdobeOrg"\nbase_url = "ftp://x/"\n' + VARS,
        "base_url",
    ),
    ('[[orgs]]\norg_id = "B@AdobeOrg"\n' + VARS, "[[orgs]] #1: missing name"),
    ("orgs = 3", "[[orgs]]"),
    ("[nope]\na = 1", "[nope]"),
    ("job = 3", "[job]"),
    ("[job\nregulation = 'gdpr'", "c.toml"),
]

# (environment, a piece of the error line)
BAD_ENV: list[tuple[dict[str, str], str]] = [
    ({"DSAR_API_BASE_URL": f"ftp://u:{URL_PASSWORD}@example.org/"}, "DSAR_API_BASE_URL"),
    ({"DSAR_API_BASE_URL": "not a url"}, "DSAR_API_BASE_URL"),
    ({"DSAR_API_BASE_URL": "https://example.org:port/"}, "DSAR_API_BASE_URL"),
    ({"DSAR_IMS_URL": "ims-na1.adobelogin.com"}, "DSAR_IMS_URL"),
    (
        {"ADOBE_CLIENT_SECRET": "", "ADOBE_CLIENT_SECRET_FILE": "/nonexistent/secret.txt"},
        "ADOBE_CLIENT_SECRET_FILE",
    ),
]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with one input file and a file where a directory is expected."""
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith(("ADOBE_", "DSAR_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ADOBE_CLIENT_SECRET", SECRET)
    privacy.register([SECRET, URL_PASSWORD], "secret")
    (tmp_path / "in.csv").write_text("subject_key,email\nK1,ann@example.org\n", encoding="utf-8")
    privacy.register(["ann@example.org"])
    (tmp_path / "a-file").write_text("not a directory\n", encoding="utf-8")
    return tmp_path


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def _fails_as_usage(argv: list[str], root: Path, capsys: Any, names: str) -> str:
    """Run ``dsar ARGV``; assert exit 2, one ``dsar:`` line naming ``names``, nothing written."""
    before = _files(root)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit, after its one line
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("dsar: ")
    assert names in lines[0]
    for bad in ("Traceback", "internal error", SECRET, URL_PASSWORD):
        assert bad not in out + err
    assert _files(root) == before, "a file was written before the mistake was reported"
    return lines[0]


@pytest.mark.parametrize(("toml", "names"), BAD_TOML, ids=[n for _, n in BAD_TOML])
def test_a_bad_setting_in_the_config_file_is_named_with_exit_2(
    sandbox: Path, capsys: Any, toml: str, names: str
) -> None:
    (sandbox / "c.toml").write_text(toml + "\n", encoding="utf-8")
    argv = ["run", "in.csv", "--config", "c.toml", "--yes"]
    _fails_as_usage(argv, sandbox, capsys, names)


@pytest.mark.parametrize(("env", "names"), BAD_ENV, ids=[n for _, n in BAD_ENV])
def test_a_bad_setting_in_the_environment_is_named_with_exit_2(
    sandbox: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: str
) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    _fails_as_usage(["run", "in.csv", "--workspace", "ws", "--yes"], sandbox, capsys, names)


def test_an_org_whose_secret_variable_is_not_set_is_named_with_exit_2(
    sandbox: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EU_ID", "eu-client")
    monkeypatch.setenv("US_ID", "us-client")
    monkeypatch.setenv("US_SECRET", SECRET)
    orgs = "".join(
        f'[[orgs]]\nname = "{n}"\norg_id = "{n}@AdobeOrg"\nbase_url = "https://x.example/"\n'
        f'client_id_env = "{n.upper()}_ID"\nclient_secret_env = "{n.upper()}_SECRET"\n'
        for n in ("eu",)
    )
    (sandbox / "c.toml").write_text(orgs, encoding="utf-8")
    argv = ["run", "in.csv", "--config", "c.toml", "--workspace", "ws", "--yes"]
    line = _fails_as_usage(argv, sandbox, capsys, "[[orgs]] 'eu'")
    assert "EU_SECRET" in line
    assert "US_SECRET" not in line
    assert "EU_ID" not in line


BAD_FLAGS: list[tuple[list[str], str]] = [
    (["run", "in.csv", "--workspace", "a-file", "--yes"], "--workspace"),
    (["run", "in.csv", "--config", "missing.toml"], "missing.toml"),
    (["run", "in.csv", "--config", "."], "config ."),
    (["validate", "in.csv", "--workspace", "a-file"], "--workspace"),
    (["run", "in.csv", "--workspace", "ws", "--yes"], "api.base_url"),  # credentials, no URL
]


@pytest.mark.parametrize(("argv", "names"), BAD_FLAGS, ids=[n for _, n in BAD_FLAGS])
def test_a_bad_setting_on_the_command_line_is_named_with_exit_2(
    sandbox: Path, capsys: Any, argv: list[str], names: str
) -> None:
    _fails_as_usage(argv, sandbox, capsys, names)


BAD_COMMAND_LINES: list[tuple[list[str], str]] = [
    (["jobs", "list", "--regulation", "nope"], "--regulation"),
    (
        ["jobs", "list", "--regulation", "gdpr", "--from", "2026-01-10", "--to", "2026-01-01"],
        "--to",
    ),
    (["jobs", "list", "--regulation", "gdpr", "--from", "2026-01-10"], "--from"),
    (["jobs", "list", "--regulation", "gdpr", "--from", "01/10/2026", "--to", "x"], "--from"),
    (["jobs", "list", "--regulation", "gdpr", "--status", "done"], "--status"),
    (["jobs", "list"], "--regulation"),
    (["jobs", "get", ""], "JOB_ID"),
    (["jobs", "download", "../../etc/passwd"], "JOB_ID"),
    (["run", "in.csv", "--max-runtime", "0"], "--max-runtime"),
    (["run", "in.csv", "--max-runtime", "soon"], "--max-runtime"),
    (["run", "in.csv", "--run-dir", "a-file", "--dry-run"], "a-file"),
    (["run"], "input"),
    (["resume", "--all", "a-file"], "a-file"),
    (["status", "."], "holds no run journal"),
    (["emulator", "--port", "70000"], "--port"),
    (["emulator", "--port", "http"], "--port"),
    (["validate", "in.csv", "--out", "a-file"], "--out"),
    (["jobs", "download", "abc-123", "--out", "a-file"], "--out"),
    (["jobs", "list", "--regulation", "gdpr", "--out", "no-such-dir/jobs.parquet"], "--out"),
    (["jobs", "list", "--regulation", "gdpr", "--org", "nope"], "known: default"),
    (["jobs", "get", "abc-123", "--org", "nope"], "--org 'nope'"),
    (["export", ".", "--format", "xml", "--out", "x.xml"], "--format"),
    (["export", ".", "--out", "no-such-dir/x.csv"], "--out"),
    (["purge", "."], "holds no run journal"),
    (["purge", ".", "--older-than", "30d"], "--older-than"),
    (["purge", "--all", ".", "--older-than", "soon"], "--older-than"),
    (["purge", "--all", ".", "--force"], "--force"),
    (["purge", "--all", "a-file"], "a-file"),
    (["run", "in.csv", "--log-format", "xml"], "--log-format"),
    (["run", "in.csv", "--canary", "0"], "--canary"),
    (["run", "in.csv", "--canary", "ten"], "--canary"),
    (["run", "in.csv", "--canary", "5", "--canary-wait", "0"], "--canary-wait"),
    (["run", "in.csv", "--canary", "5", "--canary-max-error", "1.5"], "--canary-max-error"),
    (["run", "in.csv", "--canary", "5", "--canary-max-error", "-1%"], "--canary-max-error"),
    (["run", "in.csv", "--canary-wait", "1h", "--dry-run"], "--canary-wait needs a canary"),
    (["run", "in.csv", "--canary-max-error", "0.1", "--dry-run"], "--canary-max-error needs"),
    (["run", "in.csv", "--max-jobs", "0"], "--max-jobs"),
    (["resume", ".", "--max-jobs", "-3"], "--max-jobs"),
    (["submit", ".", "--max-jobs", "many"], "--max-jobs"),
    (["erase-everything"], "erase-everything"),
]


@pytest.mark.parametrize(
    ("argv", "names"), BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES]
)
def test_a_bad_command_line_is_one_dsar_line_with_exit_2(
    sandbox: Path, capsys: Any, argv: list[str], names: str
) -> None:
    line = _fails_as_usage(argv, sandbox, capsys, names)
    assert "\n" not in line


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('[limits]\nrequests_per_second = "x"', "requests_per_second"),
        ("nope = 1", "nope"),
        ("[limits\n", "emu.toml"),
    ],
)
def test_a_bad_emulator_config_is_one_dsar_line_with_exit_2(
    sandbox: Path, capsys: Any, toml: str, names: str
) -> None:
    (sandbox / "emu.toml").write_text(toml + "\n", encoding="utf-8")
    _fails_as_usage(["emulator", "--port", "0", "--config", "emu.toml"], sandbox, capsys, names)


def test_encryption_without_pyrage_is_a_config_error_naming_the_extra(
    sandbox: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyrage", None)  # as if the extra were not installed
    (sandbox / "c.toml").write_text(f'[results]\nencrypt_to = ["{GOOD_RECIPIENT}"]\n')
    argv = ["run", "in.csv", "--config", "c.toml", "--yes"]
    line = _fails_as_usage(argv, sandbox, capsys, "[results] encrypt_to")
    assert "dsar[encrypt]" in line
