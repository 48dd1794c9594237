"""Stage 1: file formats, encodings and layouts of the input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import InputError, MissingColumnError
from pipeline.input.sources import open_source
from tests.helpers.input import plan_file, settings_with

Write = Callable[..., Path]


def _emails(planned_users: list[object]) -> list[str]:
    return sorted(i.value for u in planned_users for i in u.request.identities)  # type: ignore[attr-defined]


def test_a_utf8_bom_does_not_end_up_in_the_first_column_name(write: Write) -> None:
    path = write(b"\xef\xbb\xbfsubject_key,email\r\nk1,a@example.com\r\n")
    assert open_source(path).columns == ("subject_key", "email")
    planned = plan_file(path)
    assert [u.subject_key for u in planned.users] == ["k1"]


def test_quoted_newlines_stay_inside_one_row(write: Write) -> None:
    path = write(
        'subject_key,email,note\nk1,a@example.com,"line one\nline two"\nk2,b@example.com,x\n'
    )
    planned = plan_file(path)
    assert planned.summary.rows == 2
    assert planned.user("k2").input_rows == (1,)


def test_crlf_line_endings_leave_no_carriage_return_in_values(write: Write) -> None:
    path = write(b"subject_key,ecid\r\nk1,123\r\nk2,456\r\n")
    planned = plan_file(path)
    assert planned.rejects == []
    assert _emails(planned.users) == ["123", "456"]


def test_the_delimiter_is_detected_from_the_header(write: Write) -> None:
    path = write("subject_key;email;phone\nk1;a@example.com;+15550100\n")
    planned = plan_file(path)
    assert len(planned.user("k1").request.identities) == 2


def test_a_configured_delimiter_wins(write: Write) -> None:
    path = write("subject_key|email\nk1|a@example.com\n")
    planned = plan_file(path, settings_with(input={"delimiter": "|"}))
    assert planned.summary.users == 1


def test_an_empty_file_is_unreadable_input(write: Write) -> None:
    with pytest.raises(InputError, match="empty"):
        plan_file(write(b""))


def test_a_header_only_file_has_no_data_rows(write: Write) -> None:
    with pytest.raises(InputError, match="no data rows"):
        plan_file(write("subject_key,email\n"))


def test_a_missing_file_is_unreadable_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        plan_file(tmp_path / "nope.csv")


def test_invalid_utf8_names_the_row(write: Write) -> None:
    path = write(b"subject_key,email\nk1,a@example.com\nk2,b\xff@example.com\n")
    with pytest.raises(InputError, match="data row 1 ") as err:
        plan_file(path)
    assert "example.com" not in str(err.value)


def test_a_long_layout_without_namespace_column_names_it(write: Write) -> None:
    path = write("subject_key,value\nk1,a@example.com\n")
    with pytest.raises(MissingColumnError, match="'namespace'"):
        plan_file(path, settings_with(input={"layout": "long"}))


def test_a_mapped_column_that_is_absent_names_it(write: Write) -> None:
    path = write("subject_key,email\nk1,a@example.com\n")
    mapping = {"loyalty": {"namespace": "loyaltyId", "type": "custom"}}
    with pytest.raises(MissingColumnError, match="'loyalty'"):
        plan_file(path, settings_with(input={"columns": mapping}))


def test_a_wide_file_without_any_identity_column_is_refused(write: Write) -> None:
    with pytest.raises(MissingColumnError, match="identity column"):
        plan_file(write("subject_key,name\nk1,Ann\n"))


def test_parquet_integer_and_null_columns_are_read_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "subjects.parquet"
    table = pa.table(
        {
            "subject_key": pa.array([1, 2, 3], pa.int64()),
            "ecid": pa.array([12345678901234567, None, 42], pa.int64()),
            "email": pa.array([None, None, None], pa.null()),
            "phone": pa.array([15550100.0, None, None], pa.float64()),
        }
    )
    pq.write_table(table, path)
    planned = plan_file(path)
    assert planned.user("1").request.identities[0].value == "12345678901234567"
    assert {i.value for i in planned.user("1").request.identities} == {
        "12345678901234567",
        "15550100",
    }
    assert planned.reasons() == {1: "MISSING_IDENTITY"}


def test_a_parquet_timestamp_becomes_received_at(tmp_path: Path) -> None:
    path = tmp_path / "subjects.parquet"
    stamps = pa.array([1_767_225_600], pa.timestamp("s"))
    pq.write_table(pa.table({"email": ["a@example.com"], "received_at": stamps}), path)
    assert plan_file(path).users[0].received_at == "2026-01-01T00:00:00Z"


def test_a_broken_parquet_file_is_unreadable_input(write: Write) -> None:
    with pytest.raises(InputError, match="Parquet"):
        plan_file(write(b"PAR1 this is not parquet", "broken.parquet"))


def test_the_ui_json_upload_format_is_accepted(write: Write) -> None:
    body = {
        "companyContexts": [{"namespace": "imsOrgID", "value": "ORG@AdobeOrg"}],
        "users": [
            {
                "key": "DavidSmith",
                "action": ["access"],
                "userIDs": [
                    {"namespace": "email", "value": "dsmith@acme.com", "type": "standard"},
                    {
                        "namespace": "ECID",
                        "value": "443636576799758681021090721276",
                        "type": "standard",
                    },
                ],
            },
            {
                "key": "user12345",
                "action": ["access", "delete"],
                "userIDs": [
                    {
                        "namespace": "loyaltyAccount",
                        "value": "12AD45FE30R29",
                        "type": "integrationCode",
                    },
                ],
            },
            {"key": "nobody", "action": ["access"], "userIDs": []},
        ],
        "regulation": "ccpa",
    }
    planned = plan_file(write(orjson.dumps(body), "request.json"))
    smith = planned.user("DavidSmith")
    assert [i.namespace for i in smith.request.identities] == ["email", "ECID"]
    assert [a.value for a in planned.user("user12345").request.actions] == ["access", "delete"]
    assert planned.user("user12345").request.identities[0].type == "integrationCode"
    assert {b.options.regulation for b in planned.batches} == {"ccpa"}
    assert planned.reasons() == {3: "MISSING_IDENTITY"}


def test_json_without_users_array_is_unreadable(write: Write) -> None:
    with pytest.raises(InputError, match="users"):
        plan_file(write(b'{"jobs": []}', "request.json"))


def test_a_ragged_row_is_refused_without_quoting_its_text(write: Write) -> None:
    path = write("subject_key,email\nk1,a@example.com\nk2,secret@example.com,extra\n")
    with pytest.raises(InputError, match="wrong number of fields") as err:
        plan_file(path)
    assert "secret" not in str(err.value)
