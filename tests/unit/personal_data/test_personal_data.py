"""The personal-data filter: removing and hashing dotted paths, its validation, and its columns."""

from __future__ import annotations

import copy
import csv
import hashlib
import hmac
import io
from typing import Any

import pyarrow.parquet as pq
import pytest
from support.messages import DOCUMENTED_COLUMNS

from airflow_voicetrack.personal_data import MESSAGE_PATHS, PersonalDataFilter, validate_key
from airflow_voicetrack.writers import open_writer

KEY = b"unit-test-key-0123456789abcdef"

MESSAGE: dict[str, Any] = {
    "messageId": "m-1",
    "conversationTrackingId": "c-1",
    "to": "306912345678",
    "from": "302111989100",
    "groups": ["vip", "customers"],
    "country": "GR",
    "status": {"date": "2026-11-01T00:00:05.000Z", "status": "Completed"},
    "campaign": "Payment due",
    "duration": 12,
    "fileURL": None,
    "message": {"gender": "female", "language": "en-GB", "text": "Your balance is 12 EUR"},
    "price": 0.021,
    "recordings": [
        {"trackingId": "r-1", "from": "302111989100", "to": "306912345678", "url": "https://x/r-1.wav"},
        {"trackingId": "r-2", "from": "302111989100", "to": "306900000000", "url": "https://x/r-2.wav"},
    ],
    "answeredBy": "HUMAN",
}


def reference_hash(value: str, key: bytes = KEY) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def filtered(exclude: list[str], hashed: list[str], key: bytes | None = KEY) -> dict[str, Any]:
    return PersonalDataFilter(exclude, hashed, key).apply(copy.deepcopy(MESSAGE))


def test_exclude_removes_top_level_nested_and_per_recording_fields() -> None:
    result = filtered(["to", "message.text", "recordings.url"], [])
    expected = copy.deepcopy(MESSAGE)
    del expected["to"], expected["message"]["text"]
    for recording in expected["recordings"]:
        del recording["url"]
    assert result == expected


def test_exclude_of_an_object_removes_it_whole() -> None:
    result = filtered(["message", "recordings"], [])
    assert "message" not in result and "recordings" not in result
    assert result["to"] == MESSAGE["to"]


def test_hash_replaces_text_by_its_hmac_sha256_everywhere_named() -> None:
    result = filtered([], ["to", "from", "recordings.from", "recordings.to", "groups"])
    assert result["to"] == reference_hash("306912345678")
    assert result["from"] == reference_hash("302111989100")
    recording_to = [reference_hash("306912345678"), reference_hash("306900000000")]
    assert [r["to"] for r in result["recordings"]] == recording_to
    assert [r["from"] for r in result["recordings"]] == [reference_hash("302111989100")] * 2
    assert result["groups"] == [reference_hash("vip"), reference_hash("customers")]
    # Untouched fields stay as they were.
    assert result["message"] == MESSAGE["message"]
    assert [r["url"] for r in result["recordings"]] == ["https://x/r-1.wav", "https://x/r-2.wav"]


def test_same_value_same_hash_so_joins_work_and_another_key_gives_another_hash() -> None:
    result = filtered([], ["to", "recordings.to"])
    assert result["to"] == result["recordings"][0]["to"]
    other = PersonalDataFilter([], ["to"], b"another-key-0123456789abcdef").apply(copy.deepcopy(MESSAGE))
    assert other["to"] != result["to"]


def test_null_and_missing_values_stay_and_non_text_is_hashed_as_json() -> None:
    message = {"messageId": "m", "fileURL": None, "to": 306912345678}
    PersonalDataFilter([], ["fileURL", "to", "from", "message.text"], KEY).apply(message)
    assert message == {"messageId": "m", "fileURL": None, "to": reference_hash("306912345678")}


def test_message_null_is_left_alone() -> None:
    message = {"messageId": "m", "message": None, "recordings": None}
    PersonalDataFilter(["recordings.url"], ["message.text"], KEY).apply(message)
    assert message == {"messageId": "m", "message": None, "recordings": None}


def test_columns_drop_excluded_fields_and_everything_below_an_excluded_object() -> None:
    columns = PersonalDataFilter(["to", "message", "recordings.url"], []).columns()
    dropped = {"to", "message.gender", "message.language", "message.text"}
    assert columns == tuple(c for c in DOCUMENTED_COLUMNS if c not in dropped)


def test_no_options_is_inactive_and_changes_nothing() -> None:
    personal_data = PersonalDataFilter()
    assert not personal_data.active
    assert personal_data.apply(copy.deepcopy(MESSAGE)) == MESSAGE
    assert personal_data.columns() == DOCUMENTED_COLUMNS


def test_repr_shows_the_paths_not_the_key() -> None:
    text = repr(PersonalDataFilter(["to"], ["from"], KEY))
    assert "from" in text and KEY.decode() not in text


@pytest.mark.parametrize(
    ("exclude", "hashed", "match"),
    [
        (["message.txt"], [], r"exclude_fields: unknown field 'message.txt'; use dotted .*message\.text"),
        ([], ["To"], r"hash_fields: unknown field 'To'"),
        (["messageId"], [], r"'messageId' is the record key"),
        ([], ["messageId"], r"'messageId' is the record key"),
        ([], ["price"], r"hash_fields: 'price' does not hold text; .* or put it in exclude_fields"),
        ([], ["message"], r"hash_fields: 'message' does not hold text"),
        (["message"], ["message.text"], r"'message.text' is also removed by exclude_fields 'message'"),
        (["to", "to"], [], r"exclude_fields names 'to' more than once"),
        ("to", [], r"exclude_fields must be a list of dotted paths"),
        ([], [""], r"hash_fields must hold non-empty strings"),
    ],
)
def test_bad_paths_are_refused_naming_the_argument_and_the_fix(exclude: Any, hashed: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PersonalDataFilter(exclude, hashed, KEY)


def test_every_schema_path_is_accepted_for_exclusion() -> None:
    paths = [p for p in MESSAGE_PATHS if p != "messageId"]
    PersonalDataFilter(paths, [])


@pytest.mark.parametrize("key", [None, "", "short-key"])
def test_a_missing_or_short_key_is_refused_naming_where_it_was_read_not_its_value(key: Any) -> None:
    refused = r"hash key in variable 'pii_key' is missing or shorter than 16"
    with pytest.raises(ValueError, match=refused) as err:
        validate_key(key, "variable 'pii_key'")
    if key:
        assert key not in str(err.value)


@pytest.mark.parametrize("output_format", ["csv", "csv.gz", "parquet"])
def test_tabular_writers_write_only_the_columns_given(output_format: str) -> None:
    personal_data = PersonalDataFilter(["to", "message"], ["from"], KEY)
    sink = io.BytesIO()
    writer = open_writer(output_format, sink, personal_data.columns())
    writer.write(personal_data.apply(copy.deepcopy(MESSAGE)))
    writer.close()
    data = sink.getvalue()
    if output_format == "parquet":
        table = pq.read_table(io.BytesIO(data))
        names, row = table.column_names, table.to_pylist()[0]
    else:
        import gzip

        text = (gzip.decompress(data) if output_format.endswith(".gz") else data).decode()
        rows = list(csv.DictReader(io.StringIO(text)))
        names, row = list(rows[0]), rows[0]
    assert tuple(names) == personal_data.columns()
    assert "to" not in names and "message.text" not in names
    assert row["from"] == reference_hash("302111989100")
