"""``dsar validate`` and ``dsar bench`` through ``pipeline.cli.main``: exit codes, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_clean_input_exits_0_and_prints_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("subject_key,email,action\nk1,a@example.com,access+delete\nk2,b@example.com,\n")
    code, out, _ = _run(capsys, "validate", str(src), "--out", str(tmp_path / "o"))
    assert code == 0
    for label, value in (("rows", 2), ("subjects", 2), ("users", 2), ("requests", 1),
                         ("jobs", 3), ("days", 1)):  # fmt: skip
        assert any(line.split()[:2] == [label, str(value)] for line in out.splitlines()), label
    assert pq.read_table(tmp_path / "o" / "rejects.parquet").num_rows == 0


def test_rejected_rows_exit_1_and_land_in_the_rejects_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("subject_key,email\nk1,a@example.com\nk2,private-but-bad\n")
    code, out, err = _run(capsys, "validate", str(src), "--out", str(tmp_path))
    assert code == 1
    rejects = pq.read_table(tmp_path / "rejects.parquet")
    assert rejects.column_names == ["input_row", "subject_key", "reason_code", "message", "org"]
    assert rejects.to_pylist()[0]["reason_code"] == "BAD_EMAIL"
    assert "private-but-bad" not in out + err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"subject_key,email\n", "no data rows"),
        (b"subject_key,name\nk1,Ann\n", "identity column"),
        (b"email\nk1\xfe@example.com\n", "data row 0"),
        (b"email\nnot-an-email\n", "no valid row"),
    ],
)
def test_unusable_input_exits_3_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str
) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    code, _, err = _run(capsys, "validate", str(src), "--out", str(tmp_path))
    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("dsar:")]
    assert len(lines) == 1
    assert needle in lines[0]


def test_a_long_layout_config_naming_a_missing_column_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[input]\nlayout = "long"\n')
    src = tmp_path / "in.csv"
    src.write_text("subject_key,value\nk1,a@example.com\n")
    code, _, err = _run(capsys, "validate", str(src), "--config", str(config), "--out",
                        str(tmp_path))  # fmt: skip
    assert code == 3
    assert "required column 'namespace' is missing" in err


def test_the_committed_sample_validates_with_some_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2] / "data"
    for name in ("sample_subjects.csv", "sample_subjects.parquet"):
        code, out, _ = _run(capsys, "validate", str(root / name), "--out", str(tmp_path))
        assert code == 1
        assert "subjects" in out


@pytest.mark.slow
@pytest.mark.timeout(600)  # a safety net: the bench takes over a minute on a loaded machine
def test_bench_quick_input_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "bench.json"
    code, out, _ = _run(capsys, "bench", "--quick", "--only", "input", "--out", str(out_file))
    assert code == 0
    figures = orjson.loads(out_file.read_bytes())["figures"]
    names = [f["name"] for f in figures]
    assert any("csv" in n and f["unit"] == "rows/s" for n, f in zip(names, figures, strict=True))
    assert all(f["baseline"] for f in figures)
    assert "pyarrow read only" in out


def test_bench_refuses_an_unknown_section(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "bench", "--only", "nope")
    assert code == 2
    assert "nope" in err
