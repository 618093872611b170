"""Streaming, atomic writers on the local file system (no sockets)."""

from __future__ import annotations

import csv
import gc
import gzip
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath
from support.messages import DOCUMENTED_COLUMNS

from airflow_voicetrack import writers
from airflow_voicetrack.writers import (
    CSV_COLUMNS,
    FORMATS,
    TEMP_MARKER,
    flatten_message,
    object_uri,
    write_messages,
)

#: The operator's reference page, which documents the CSV and Parquet columns.
OPERATOR_PAGE = Path(__file__).resolve().parents[3] / "docs" / "reference" / "operator.md"

MESSAGE: dict[str, Any] = {
    "messageId": "m-1",
    "conversationTrackingId": "c-1",
    "to": "306912345678",
    "from": "Routee",
    "groups": ["vip", "test"],
    "country": "GR",
    "status": {"date": "2026-11-01T00:00:05Z", "status": "Completed", "reason": "answered"},
    "campaign": "autumn",
    "direction": "Outbound",
    "duration": 12,
    "message": {"gender": "female", "language": "en-US", "text": 'Hello, "world"\nbye'},
    "price": 0.021,
    "recordings": [{"trackingId": "r-1", "duration": 3}],
    "answeredBy": "HUMAN",
    "brandNewField": {"nested": [1, 2]},
    "nullField": None,
}


def messages(n: int) -> list[dict[str, Any]]:
    return [{**MESSAGE, "messageId": f"m-{i:05d}"} for i in range(n)]


def local(tmp_path: Path, name: str) -> ObjectStoragePath:
    return ObjectStoragePath(f"file://{tmp_path / name}")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(f"*{TEMP_MARKER}*"))


def test_jsonl_keeps_every_message_as_returned(tmp_path: Path) -> None:
    path = local(tmp_path, "out.jsonl")
    result = write_messages(messages(3), path, "jsonl")
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == messages(3)
    assert result.records == 3
    assert result.bytes == (tmp_path / "out.jsonl").stat().st_size


def test_jsonl_gz_decompresses_to_the_messages(tmp_path: Path) -> None:
    write_messages(messages(3), local(tmp_path, "out.jsonl.gz"), "jsonl.gz")
    text = gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()).decode()
    assert [json.loads(line) for line in text.splitlines()] == messages(3)


def test_csv_gz_decompresses_to_the_csv(tmp_path: Path) -> None:
    write_messages(messages(2), local(tmp_path, "a.csv"), "csv")
    write_messages(messages(2), local(tmp_path, "a.csv.gz"), "csv.gz")
    assert gzip.decompress((tmp_path / "a.csv.gz").read_bytes()) == (tmp_path / "a.csv").read_bytes()


def test_flatten_message_puts_unknown_fields_and_nested_keys_in_extra() -> None:
    row = flatten_message(MESSAGE)
    assert row["status.status"] == "Completed"
    assert row["message.text"] == MESSAGE["message"]["text"]
    assert row["extra"] == {
        "status.reason": "answered",
        "brandNewField": {"nested": [1, 2]},
        "nullField": None,
    }
    assert set(row) <= set(CSV_COLUMNS)


def test_flatten_message_leaves_the_columns_of_a_null_nested_field_empty() -> None:
    # ``message`` is documented (null when the call played a file): nothing for ``extra``.
    assert flatten_message({"messageId": "x", "message": None}) == {"messageId": "x", "extra": None}


def test_flatten_message_keeps_a_non_object_nested_field_in_extra() -> None:
    assert flatten_message({"messageId": "x", "status": "Completed"})["extra"] == {"status": "Completed"}


def test_the_operator_page_documents_the_columns_these_tests_hold() -> None:
    page = " ".join(OPERATOR_PAGE.read_text().split())
    assert "CSV and Parquet columns, in this order: `" + ", ".join(DOCUMENTED_COLUMNS) + "`" in page


def test_csv_has_the_documented_header_and_flattened_cells(tmp_path: Path) -> None:
    write_messages(messages(2), local(tmp_path, "out.csv"), "csv")
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == DOCUMENTED_COLUMNS
    first = dict(zip(DOCUMENTED_COLUMNS, rows[1], strict=True))
    assert first["messageId"] == "m-00000"
    assert first["message.text"] == 'Hello, "world"\nbye'
    assert json.loads(first["groups"]) == ["vip", "test"]
    assert json.loads(first["recordings"]) == MESSAGE["recordings"]
    assert first["duration"] == "12"
    assert first["fileURL"] == ""
    assert json.loads(first["extra"])["brandNewField"] == {"nested": [1, 2]}
    assert len(rows) == 3


def test_parquet_has_the_fixed_schema_and_values(tmp_path: Path) -> None:
    write_messages(messages(2), local(tmp_path, "out.parquet"), "parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert tuple(table.schema.names) == DOCUMENTED_COLUMNS
    row = table.to_pylist()[0]
    assert row["messageId"] == "m-00000"
    assert row["groups"] == ["vip", "test"]
    assert row["price"] == pytest.approx(0.021)
    assert row["status.date"] == "2026-11-01T00:00:05Z"
    assert json.loads(row["recordings"]) == MESSAGE["recordings"]
    assert json.loads(row["extra"])["status.reason"] == "answered"


def test_documented_buffer_and_row_group_sizes() -> None:
    assert writers.BUFFER_BYTES == 1_048_576  # 1 MiB
    assert writers.PARQUET_ROW_GROUP_SIZE == 10_000


def test_parquet_row_groups_hold_10000_rows_by_default(tmp_path: Path) -> None:
    write_messages(messages(10_001), local(tmp_path, "out.parquet"), "parquet")
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [10_000, 1]


def test_parquet_is_written_in_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "PARQUET_ROW_GROUP_SIZE", 10)
    write_messages(messages(25), local(tmp_path, "out.parquet"), "parquet")
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert (metadata.num_row_groups, metadata.num_rows) == (3, 25)


@pytest.mark.parametrize(
    ("output_format", "read"),
    [
        ("jsonl", lambda p: p.read_bytes()),
        ("jsonl.gz", lambda p: gzip.decompress(p.read_bytes())),
        ("csv", lambda p: p.read_text()),
        ("parquet", lambda p: pq.read_table(p).schema.names),
    ],
)
def test_no_messages_write_a_valid_empty_object(tmp_path: Path, output_format: str, read: Any) -> None:
    result = write_messages([], local(tmp_path, f"out.{output_format}"), output_format)
    expected = {"jsonl": b"", "jsonl.gz": b"", "csv": ",".join(DOCUMENTED_COLUMNS) + "\n"}
    assert read(tmp_path / f"out.{output_format}") == expected.get(output_format, list(DOCUMENTED_COLUMNS))
    assert result.records == 0


def test_no_messages_and_write_empty_false_write_nothing(tmp_path: Path) -> None:
    result = write_messages([], local(tmp_path, "out.jsonl"), "jsonl", write_empty=False)
    assert result.path is None
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_the_object(tmp_path: Path) -> None:
    path = local(tmp_path, "out.jsonl")
    write_messages(messages(5), path, "jsonl")
    write_messages(messages(2), path, "jsonl")
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 2


def test_failure_keeps_the_previous_object_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = local(tmp_path, "out.jsonl")
    write_messages(messages(1), path, "jsonl")
    before = (tmp_path / "out.jsonl").read_bytes()

    def failing() -> Iterator[dict[str, Any]]:
        yield from messages(3)
        assert leftovers(tmp_path), "the messages go to a temporary sibling while writing"
        raise RuntimeError("API went away")

    with pytest.raises(RuntimeError, match="API went away"):
        write_messages(failing(), path, "jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("output_format", FORMATS)
def test_a_failure_mid_write_leaves_no_writer_to_fail_when_collected(
    tmp_path: Path, output_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def failing() -> Iterator[dict[str, Any]]:
        yield from messages(3)
        raise RuntimeError("API went away")

    with pytest.raises(RuntimeError, match="API went away"):
        write_messages(failing(), local(tmp_path, "out.bin"), output_format)
    gc.collect()
    assert [u.exc_value for u in unraisable] == []
    assert leftovers(tmp_path) == []


def test_temporary_sibling_is_hidden_from_readers_and_recognizable(tmp_path: Path) -> None:
    temporary = writers.temporary_path(local(tmp_path, "out.jsonl"))
    assert temporary.parent == local(tmp_path, "out.jsonl").parent
    assert temporary.name.startswith("_out.jsonl" + TEMP_MARKER)


def test_writes_reach_the_store_before_the_input_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writers, "BUFFER_BYTES", 4096)
    seen_sizes = []

    def observed() -> Iterator[dict[str, Any]]:
        for message in messages(200):
            yield message
            seen_sizes.extend(p.stat().st_size for p in tmp_path.glob(f"*{TEMP_MARKER}*"))

    write_messages(observed(), local(tmp_path, "out.jsonl"), "jsonl")
    assert max(seen_sizes) > 0
    assert max(seen_sizes) < (tmp_path / "out.jsonl").stat().st_size


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    write_messages(messages(1), local(tmp_path, "a/b/out.jsonl"), "jsonl")
    assert (tmp_path / "a" / "b" / "out.jsonl").exists()


def test_unknown_format_is_rejected_naming_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"jsonl, jsonl\.gz, csv, csv\.gz, parquet"):
        writers.open_writer("xml", io.BytesIO())


class KeptBytes(io.BytesIO):
    """A binary sink that keeps its bytes readable after the writer closes it."""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()


def read_back(output_format: str, data: bytes) -> list[str]:
    """:return: the messageIds in ``data`` read as ``output_format``, by that format's own reader."""
    if output_format.endswith(".gz"):
        data = gzip.decompress(data)
    if output_format.startswith("jsonl"):
        return [json.loads(line)["messageId"] for line in data.splitlines()]
    if output_format.startswith("csv"):
        return [row["messageId"] for row in csv.DictReader(io.StringIO(data.decode(), newline=""))]
    return pq.read_table(io.BytesIO(data)).column("messageId").to_pylist()


@pytest.mark.parametrize("output_format", FORMATS)
def test_every_format_has_a_writer_of_that_format(output_format: str) -> None:
    sink = KeptBytes()
    writer = writers.open_writer(output_format, sink)
    for message in messages(3):
        writer.write(message)
    writer.close()
    data = sink.kept if sink.closed else sink.getvalue()
    assert read_back(output_format, data) == ["m-00000", "m-00001", "m-00002"]


def test_object_uri_has_no_connection_id() -> None:
    assert object_uri(ObjectStoragePath("file:///data/out.jsonl")) == "file:///data/out.jsonl"
    assert object_uri(ObjectStoragePath("s3://bucket/a/out.jsonl")) == "s3://bucket/a/out.jsonl"
