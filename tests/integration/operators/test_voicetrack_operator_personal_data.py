"""exclude_fields and hash_fields through real Airflow (``dag.test()``) against the emulator, in every
output format and in XCom mode, compared with the emulator's truth transformed independently here."""

from __future__ import annotations

import copy
import csv
import gzip
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support.dags import Run
from support.emulator import api_requests
from support.messages import DOCUMENTED_COLUMNS, by_id, csv_cells, documented_row, read_jsonl

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

RunDag = Callable[..., Run]
#: Six hours of the emulator's default data (a few hundred messages, some with recordings).
RANGE = ("2026-11-02T00:00:00Z", "2026-11-02T06:00:00Z")
KEY = "pii-test-key-7d1f0c55-never-log-me"
KEY_CONN_ID = "pii_hash_key"
EXCLUDE = ["message.text", "recordings.url", "fileURL"]
HASH = ["to", "from", "recordings.from", "recordings.to"]
#: The columns CSV and Parquet keep: every one but the excluded ``message.text`` and ``fileURL``.
KEPT_COLUMNS = [c for c in DOCUMENTED_COLUMNS if c not in ("message.text", "fileURL")]


def digest(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def expected(message: dict[str, Any]) -> dict[str, Any]:
    """The message with EXCLUDE removed and HASH replaced, written out field by field."""
    result = copy.deepcopy(message)
    result.pop("fileURL", None)
    if isinstance(result.get("message"), dict):
        result["message"].pop("text", None)
    for name in ("to", "from"):
        result[name] = digest(result[name])
    for recording in result.get("recordings") or []:
        recording.pop("url", None)
        recording["from"], recording["to"] = digest(recording["from"]), digest(recording["to"])
    return result


@pytest.fixture
def key_connection(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{KEY_CONN_ID.upper()}", json.dumps({"conn_type": "generic", "password": KEY})
    )
    return KEY_CONN_ID


def extract(**kwargs: Any) -> Callable[[], None]:
    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract",
            date_start=RANGE[0],
            date_end=RANGE[1],
            exclude_fields=EXCLUDE,
            hash_fields=HASH,
            **kwargs,
        )

    return build


def truth(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    messages = emulator.truth(date_start=RANGE[0], date_end=RANGE[1])
    # The data must exercise every path: recordings with URLs, spoken text, played files.
    assert any(m["recordings"] for m in messages)
    assert any(m["message"] for m in messages) and any(m["fileURL"] for m in messages)
    return messages


@pytest.mark.parametrize("output_format", ["jsonl", "jsonl.gz"])
def test_json_lines_hold_the_truth_with_fields_removed_and_hashed(
    emulator: EmulatorProcess, run_dag: RunDag, key_connection: str, tmp_path: Path, output_format: str
) -> None:
    path = tmp_path / f"out.{output_format}"
    run = run_dag(
        extract(output_path=f"file://{path}", output_format=output_format, hash_key_conn_id=key_connection)
    )
    assert run.states == {"extract": "success"}, run.error_messages
    data = path.read_bytes()
    written = read_jsonl(gzip.decompress(data) if output_format.endswith(".gz") else data)
    assert by_id(written) == [expected(m) for m in truth(emulator)]


def test_csv_drops_the_removed_columns_and_holds_the_hashes(
    emulator: EmulatorProcess, run_dag: RunDag, key_connection: str, tmp_path: Path
) -> None:
    run = run_dag(
        extract(
            output_path=f"file://{tmp_path}/out.csv", output_format="csv", hash_key_conn_id=key_connection
        )
    )
    assert run.states == {"extract": "success"}, run.error_messages
    with open(tmp_path / "out.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == KEPT_COLUMNS
    assert by_id(rows) == [csv_cells(expected(m), KEPT_COLUMNS) for m in truth(emulator)]


def test_parquet_drops_the_removed_columns_and_holds_the_hashes(
    emulator: EmulatorProcess, run_dag: RunDag, key_connection: str, tmp_path: Path
) -> None:
    run = run_dag(
        extract(
            output_path=f"file://{tmp_path}/out.parquet",
            output_format="parquet",
            hash_key_conn_id=key_connection,
        )
    )
    assert run.states == {"extract": "success"}, run.error_messages
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == KEPT_COLUMNS
    rows = by_id(table.to_pylist())
    wanted = [documented_row(expected(m)) for m in truth(emulator)]
    assert [r["messageId"] for r in rows] == [w["messageId"] for w in wanted]
    for column in ("to", "from", "message.language", "country", "status.status", "groups"):
        assert [r[column] for r in rows] == [w.get(column) for w in wanted], column
    assert [json.loads(r["recordings"]) for r in rows] == [w["recordings"] for w in wanted]


def test_xcom_mode_with_the_key_in_a_variable_keeps_it_out_of_logs_and_xcom(
    emulator: EmulatorProcess,
    run_dag: RunDag,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PII_HASH_KEY", KEY)
    caplog.set_level(logging.INFO)
    run = run_dag(extract(hash_key_variable="pii_hash_key"))
    assert run.states == {"extract": "success"}, run.error_messages
    assert by_id(run.results["extract"]) == [expected(m) for m in truth(emulator)]
    output = capfd.readouterr()
    logged = output.out + output.err + "\n".join(r.getMessage() for r in caplog.records)
    assert (
        "Hashing to, from, recordings.from, recordings.to with the key in variable 'pii_hash_key'" in logged
    )
    assert KEY not in logged
    assert KEY not in json.dumps(run.results)


def test_a_missing_key_fails_the_task_before_any_request_naming_the_source(
    emulator: EmulatorProcess, run_dag: RunDag, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PII_HASH_KEY", "too-short")
    run = run_dag(extract(output_path=f"file://{tmp_path}/out.jsonl", hash_key_variable="pii_hash_key"))
    assert run.states == {"extract": "failed"}
    (message,) = run.error_messages["extract"]
    assert (
        "the hash key in variable 'pii_hash_key' (hash_key_variable) is missing or shorter than 16" in message
    )
    assert "too-short" not in message
    assert api_requests(emulator) == 0
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hash_fields": ["to"]}, "hash_fields needs a key: set hash_key_conn_id"),
        ({"exclude_fields": ["to"], "hash_key_variable": "k"}, "used only with hash_fields"),
        ({"hash_fields": ["to"], "hash_key_variable": "k", "hash_key_conn_id": "c"}, "not both"),
        ({"exclude_fields": ["recordings.uri"]}, "exclude_fields: unknown field 'recordings.uri'"),
    ],
)
def test_bad_personal_data_arguments_fail_when_the_dag_is_built(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VoiceTrackingOperator(task_id="extract", output_path="file:///tmp/x/", **kwargs)
