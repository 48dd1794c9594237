"""The input's org column: each row's [[orgs]] name groups its users into that org's requests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.settings import load_settings
from tests.helpers.input import org_table, plan_file, settings_with

Write = Callable[..., Path]


ORGS = [org_table("eu"), org_table("us", ["analytics"])]


def test_each_org_gets_requests_of_its_own_with_its_products(write: Write) -> None:
    rows = "a,a@x.org,eu\nb,b@x.org,us\nc,c@x.org,\nd,d@x.org,eu\n"
    settings = settings_with(orgs=ORGS, job={"org": "us"})  # type: ignore[arg-type]
    planned = plan_file(write("subject_key,email,org\n" + rows), settings)
    groups = sorted(
        (b.options.org, b.options.include, sorted(u.subject_key for u in b.users))
        for b in planned.batches
    )
    assert groups == [
        ("eu", settings.job.include, ["a", "d"]),
        ("us", ("analytics",), ["b", "c"]),  # an empty cell is [job] org's
    ]
    assert planned.rejects == []


def test_an_unknown_org_is_a_reject_and_an_empty_one_without_a_default_too(write: Write) -> None:
    rows = "a,a@x.org,eu\nb,b@x.org,apac\nc,c@x.org,\n"
    planned = plan_file(write("subject_key,email,org\n" + rows), settings_with(orgs=ORGS))  # type: ignore[arg-type]
    assert planned.reasons() == {1: "UNKNOWN_ORG", 2: "UNKNOWN_ORG"}
    assert {r["message"] for r in planned.rejects} == {
        "org is not the name of an [[orgs]] table",
        "org is empty, and several orgs are configured without [job] org",
    }
    assert [u.subject_key for u in planned.users] == ["a"]
    assert {r["input_row"]: r["org"] for r in planned.rejects} == {1: "apac", 2: None}


def test_rows_of_one_subject_in_two_orgs_conflict(write: Write) -> None:
    rows = "a,a@x.org,eu\na,a2@x.org,us\nb,b@x.org,us\n"
    planned = plan_file(write("subject_key,email,org\n" + rows), settings_with(orgs=ORGS))  # type: ignore[arg-type]
    assert planned.reasons() == {0: "CONFLICTING_ROWS", 1: "CONFLICTING_ROWS"}
    assert [r["org"] for r in sorted(planned.rejects, key=lambda r: r["input_row"])] == [
        "eu",
        "us",
    ]


def test_without_orgs_the_org_column_may_only_say_default(write: Write) -> None:
    rows = "a,a@x.org,default\nb,b@x.org,\nc,c@x.org,eu\n"
    planned = plan_file(write("subject_key,email,org\n" + rows))
    assert planned.reasons() == {2: "UNKNOWN_ORG"}
    assert {b.options.org for b in planned.batches} == {"default"}


def test_the_two_org_sample_plans_per_org_requests_and_rejects_its_stray_org(
    tmp_path: Path,
) -> None:
    root = Path(__file__).parents[2]
    settings = load_settings(root / "configs" / "two_orgs.toml", env={})
    sample = tmp_path / "two_orgs.csv"  # rejects are written beside the input
    sample.write_bytes((root / "data" / "sample_two_orgs.csv").read_bytes())
    planned = plan_file(sample, settings)
    assert sorted((b.options.org, b.options.regulation) for b in planned.batches) == [
        ("eu", "gdpr"),
        ("us", "ccpa"),
    ]
    assert list(planned.reasons().values()) == ["UNKNOWN_ORG"]
    us = next(b for b in planned.batches if b.options.org == "us")
    assert us.options.include == ("aepDataLake", "profileService")
