"""Writes the hostile input corpus (``tests/hostile/corpus/``) and its large test-time files.

``python -m tests.hostile.make_corpus`` rewrites the committed corpus (deterministic: the same
bytes every time). :func:`write_large` makes the files too big to commit (a single line of
tens of megabytes, 10,000 columns) in a test's temporary directory.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CORPUS = Path(__file__).parent / "corpus"
HEADER = "subject_key,email,ecid,action\n"


def _ecid(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(38))


def _rows(n: int, seed: int = 1, *, action: str = "access") -> str:
    rng = random.Random(seed)
    return "".join(f"H{i:05d},hostile.{i}@example.org,{_ecid(rng)},{action}\n" for i in range(n))


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def _zip_of(name: str, text: str) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), text)
    return sink.getvalue()


def _files() -> dict[str, Callable[[], bytes]]:
    rng = random.Random(20261128)
    good = HEADER + _rows(5)
    valid_parquet = _parquet(
        pa.table({"subject_key": ["P1", "P2"], "email": ["p1@example.org", "p2@example.org"]})
    )
    return {
        # not a table at all
        "binary_garbage.bin": lambda: bytes(rng.randrange(256) for _ in range(4096)),
        "binary_garbage.csv": lambda: bytes(rng.randrange(1, 256) for _ in range(4096)),
        "gzip_csv_without_extension": lambda: _gzip(good),
        "gzip_csv_named.csv": lambda: _gzip(good),
        "zip_archive_named.csv": lambda: _zip_of("subjects.csv", good),
        "html_error_page.csv": lambda: (
            b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
            b"<body><h1>Bad Gateway</h1></body></html>\n"
        ),
        "pdf_named.csv": lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        # empty in every way
        "empty.csv": lambda: b"",
        "whitespace_only.csv": lambda: b"  \n\t\r\n   \n",
        "bom_only.csv": lambda: b"\xef\xbb\xbf",
        "header_only.csv": lambda: HEADER.encode(),
        "empty.parquet": lambda: _parquet(
            pa.table({"subject_key": pa.array([], pa.string()), "email": pa.array([], pa.string())})
        ),
        "no_columns.parquet": lambda: _parquet(pa.table({})),
        # broken containers
        "truncated.parquet": lambda: valid_parquet[: len(valid_parquet) // 2],
        "csv_named.parquet": lambda: good.encode(),
        "parquet_named.csv": lambda: valid_parquet,
        "nested_types.parquet": lambda: _parquet(
            pa.table(
                {
                    "subject_key": ["N1", "N2"],
                    "email": [["n1@example.org", "x@example.org"], ["n2@example.org"]],
                    "ecid": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
                }
            )
        ),
        "malformed.json": lambda: b'{"users": [{"key": "J1", "action": ["access"], ',
        "array_top_level.json": lambda: b'[{"key": "J1"}]',
        "users_not_objects.json": lambda: b'{"users": ["J1", 42, null]}',
        # encodings and bytes
        "nul_bytes.csv": lambda: (
            HEADER + "N1,nul\x00one@example.org,,access\n"
            "N2,two@example.org\x00,,delete\n\x00\x00\x00\n"
            "N3,three@example.org,,access\n"
        ).encode(),
        "mixed_encodings.csv": lambda: (
            HEADER.encode()
            + "M1,jos\u00e9@example.org,,access\n".encode()
            + "M2,jos\u00e9@example.org,,access\n".encode("latin-1")
            + "M3,plain@example.org,,access\n".encode("cp1252")
        ),
        "utf16_with_bom.csv": lambda: (HEADER + _rows(3)).encode("utf-16"),
        "control_characters.csv": lambda: (
            HEADER + "C1,\x1b[2J\x1b[31mred@example.org,,access\n"
            "C2,bell\x07@example.org,,delete\n"
            "C3\x1b]0;title\x07,ok@example.org,,access\n"
        ).encode(),
        "invalid_utf8_in_header.csv": lambda: (
            b"subject_key,em\xffail,action\nK1,a@example.org,access\n"
        ),
        # cells and shapes
        "formula_injection.csv": lambda: (
            b"subject_key,email,action\n"
            b"\"=cmd|' /C calc'!A0\",f1@example.org,access\n"
            b"+SUM(1+1),f2@example.org,access\n"
            b"@SUM(A1),f3@example.org,access\n"
            b"-2+3,f4@example.org,access\n"
            b'F5,"=HYPERLINK(""http://evil.example"",""x"")",access\n'
            b'F6,f6@example.org,"=1+1"\n'
        ),
        "duplicate_headers.csv": lambda: (
            b"subject_key,email,email,action\nD1,d1@example.org,d1b@example.org,access\n"
        ),
        "ragged_rows.csv": lambda: (
            HEADER + "R1,r1@example.org\nR2,r2@example.org,,access,extra,more\n"
            "R3,r3@example.org,,access\n"
        ).encode(),
        "unterminated_quote.csv": lambda: (
            HEADER + 'Q1,"q1@example.org,,access\nQ2,q2@example.org,,access\n'
        ).encode(),
        "very_long_cell.csv": lambda: (
            HEADER + f"L1,{'a' * 300_000}@example.org,,access\nL2,l2@example.org,,access\n"
        ).encode(),
        "long_header_names.csv": lambda: (
            ",".join(["subject_key", "email", "x" * 200_000]) + "\nK1,k1@example.org,v\n"
        ).encode(),
        "no_identity_columns.csv": lambda: b"name,city\nAlice,Paris\nBob,Lyon\n",
        "only_empty_cells.csv": lambda: (HEADER + ",,,\n,,,\n").encode(),
        "unknown_actions_and_bad_ids.csv": lambda: (
            HEADER + "U1,u1@example.org,,obliterate\nU2,not-an-email,,access\n"
            "U3,u3@example.org,12345,access\nU4,u4@example.org,,delete\n"
        ).encode(),
        "conflicting_rows.csv": lambda: (
            HEADER + "K1,k1@example.org,,access\nK1,k1@example.org,,delete\n"
            "K2,k2@example.org,,access\n"
        ).encode(),
        "sql_and_path_keys.csv": lambda: (
            b"subject_key,email,action\n"
            b'"\'); DROP TABLE job;--",s1@example.org,access\n'
            b"../../../etc/passwd,s2@example.org,access\n"
            b"%s%s%n%x,s3@example.org,delete\n"
        ),
        "semicolon_crlf_mixed_newlines.csv": lambda: (
            b"subject_key;email;action\r\nS1;s1@example.org;access\nS2;s2@example.org;delete\r\n"
        ),
    }


def write_corpus(directory: Path = CORPUS) -> list[Path]:
    """Write every corpus file into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in _files().items():
        path = directory / name
        path.write_bytes(make())
        paths.append(path)
    return paths


HUGE_LINE_BYTES = 64 * 1024**2


def write_huge_single_line(path: Path, size: int = HUGE_LINE_BYTES) -> Path:
    """One line of ``size`` bytes (a header with no newline that never ends)."""
    chunk = b"x" * (1 << 20)
    with path.open("wb") as fh:
        fh.write(b"subject_key,email,")
        for _ in range(size // len(chunk)):
            fh.write(chunk)
    return path


def write_ten_thousand_columns(path: Path, rows: int = 50) -> Path:
    """A CSV of 10,000 columns: a key, an email and 9,998 unmapped ones."""
    names = ["subject_key", "email", *(f"col{i}" for i in range(9998))]
    with path.open("w", encoding="utf-8") as fh:
        fh.write(",".join(names) + "\n")
        filler = ",".join("v" for _ in range(9998))
        for i in range(rows):
            fh.write(f"W{i},w{i}@example.org,{filler}\n")
    return path


def write_many_identity_columns(path: Path, rows: int = 20) -> Path:
    """A CSV of 10,000 columns all named ``ecid``: a standard namespace, repeated."""
    names = ["subject_key", *(["ecid"] * 10_000)]
    with path.open("w", encoding="utf-8") as fh:
        fh.write(",".join(names) + "\n")
        rng = random.Random(3)
        for i in range(rows):
            fh.write(f"E{i}," + ",".join(_ecid(rng) for _ in range(10_000)) + "\n")
    return path


if __name__ == "__main__":
    written = write_corpus()
    print(json.dumps([p.name for p in written]))
