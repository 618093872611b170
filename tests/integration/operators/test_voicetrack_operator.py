"""VoiceTrackingOperator through real Airflow (``dag.test()``) against the emulator over HTTP."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath
from airflow.timetables.interval import CronDataIntervalTimetable
from support.dags import Run
from support.emulator import faults_fired
from support.messages import DOCUMENTED_COLUMNS, by_id
from support.s3 import S3Bucket

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator, split_interval
from airflow_voicetrack.writers import FORMATS, TEMP_MARKER

#: Runs a DAG through ``dag.test()`` (the ``run_dag`` fixture of ``tests/integration/conftest.py``).
RunDag = Callable[..., Run]
#: A day of the emulator's default data (2026-11-01 .. 2026-11-08, 10,000 messages).
DAY = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


#: Three messages of the emulator's default data, created in [00:05, 00:07) on 2026-11-02: one that
#: played a file (null ``campaign`` and ``message``, no ``collectedTones`` or ``answeredBy``), one
#: text-to-speech call, one with a recording.
THREE = ("2026-11-02T00:05:00Z", "2026-11-02T00:07:00Z")
GREEK_GREETING = (  # "Hello, this is an automated call." (escaped: Greek letters look like Latin ones)
    "\u0393\u03b5\u03b9\u03b1 \u03c3\u03b1\u03c2, \u03b1\u03c5\u03c4\u03ae \u03b5\u03af\u03bd\u03b1\u03b9 "
    "\u03bc\u03b9\u03b1 \u03b1\u03c5\u03c4\u03cc\u03bc\u03b1\u03c4\u03b7 \u03ba\u03bb\u03ae\u03c3\u03b7."
)
RECORDING = {
    "trackingId": "372eeba1-225e-4776-95cd-9c61d2aeb8ae",
    "start": "2026-11-02T00:07:19.658Z",
    "end": "2026-11-02T00:09:17.658Z",
    "from": "4930901820",
    "to": "306914784295",
    "url": "https://files.routee.net/recordings/cef1d24e-4629-4d9b-8c87-533e6b51b7e4.wav",
    "voiceTrackingIds": ["cef1d24e-4629-4d9b-8c87-533e6b51b7e4"],
    "conversationTrackingId": "7964cd5b-1ed2-4bb1-aa70-06baa4fa44e0",
    "duration": 118,
}
#: Their rows as README documents the CSV: every column, in order; strings as they are, null or
#: missing values as empty cells; numbers, lists and objects JSON-encoded (here decoded, so that the
#: comparison does not depend on how the JSON is spaced).
THREE_CSV_ROWS = [
    {
        "messageId": "20afd380-e03c-4387-b77b-7c41b0841f7f",
        "conversationTrackingId": "822f975a-fbce-48ec-843d-555554c6d8d7",
        "to": "12340226868",
        "from": "4930901820",
        "groups": ["newsletter", "reminders", "vip"],
        "country": "US",
        "status.status": "Unknown",
        "status.date": "2026-11-02T00:05:24.236Z",
        "campaign": "",
        "applicationName": "helpdesk",
        "originatingService": "Voice",
        "direction": "Outbound",
        "duration": 0,
        "fileURL": "https://files.routee.net/voice/prompt.wav",
        "message.gender": "",
        "message.language": "",
        "message.text": "",
        "price": 0.0,
        "chargeInterval": 1,
        "collectedTones": "",
        "recordings": [],
        "answeredBy": "",
        "extra": None,
    },
    {
        "messageId": "59d16996-c013-485a-95f2-3e0562e14b7b",
        "conversationTrackingId": "6cfbe9ae-1f20-493a-aa75-d694dbd62c6f",
        "to": "393471163570",
        "from": "4930901820",
        "groups": ["staff"],
        "country": "IT",
        "status.status": "Completed",
        "status.date": "2026-11-02T00:07:02.348Z",
        "campaign": "Winback",
        "applicationName": "crm-integration",
        "originatingService": "Campaign",
        "direction": "Outbound",
        "duration": 13,
        "fileURL": "",
        "message.gender": "female",
        "message.language": "it-IT",
        "message.text": "Buongiorno, questa \u00e8 una chiamata automatica.",
        "price": 0.005,
        "chargeInterval": 1,
        "collectedTones": "",
        "recordings": [],
        "answeredBy": "MACHINE",
        "extra": None,
    },
    {
        "messageId": "cef1d24e-4629-4d9b-8c87-533e6b51b7e4",
        "conversationTrackingId": "7964cd5b-1ed2-4bb1-aa70-06baa4fa44e0",
        "to": "306914784295",
        "from": "4930901820",
        "groups": ["reminders", "vip"],
        "country": "GR",
        "status.status": "Completed",
        "status.date": "2026-11-02T00:09:17.658Z",
        "campaign": "Payment due",
        "applicationName": "helpdesk",
        "originatingService": "Campaign",
        "direction": "Outbound",
        "duration": 118,
        "fileURL": "",
        "message.gender": "female",
        "message.language": "el-GR",
        "message.text": GREEK_GREETING,
        "price": 0.0413,
        "chargeInterval": 1,
        "collectedTones": "7593",
        "recordings": [RECORDING],
        "answeredBy": "HUMAN",
        "extra": None,
    },
]
#: Columns the CSV holds JSON-encoded (an empty cell: null or missing).
JSON_CELLS = frozenset({"groups", "duration", "price", "chargeInterval", "recordings", "extra"})
#: The same rows as the Parquet schema types them: ``groups`` a list of strings, the numbers doubles,
#: ``recordings`` and ``extra`` JSON text (decoded here), null where the CSV has an empty cell.
NUMBER_CELLS = frozenset({"duration", "price", "chargeInterval"})


def as_parquet(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row as the Parquet schema types it: empty cells null, the numbers doubles."""
    return {
        column: None if value == "" else float(value) if column in NUMBER_CELLS else value
        for column, value in row.items()
    }


def leftovers(directory: Path) -> list[Path]:
    return list(directory.rglob(f"*{TEMP_MARKER}*"))


def extract(**kwargs: Any) -> Callable[[], None]:
    def build() -> None:
        VoiceTrackingOperator(task_id="extract", **{"date_start": DAY[0], "date_end": DAY[1], **kwargs})

    return build


def test_jsonl_equals_the_emulator_truth(emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path) -> None:
    began = time.monotonic()
    run = run_dag(extract(output_path=f"file://{tmp_path}/day.jsonl", page_size=500))
    wall = time.monotonic() - began
    truth = emulator.truth(date_start=DAY[0], date_end=DAY[1])
    assert run.states == {"extract": "success"}
    assert len(truth) > 1000
    assert by_id(read_jsonl(tmp_path / "day.jsonl")) == truth
    summary = run.results["extract"]
    assert summary == {
        "path": f"file://{tmp_path}/day.jsonl",
        "conn_id": None,
        "records": len(truth),
        "bytes": (tmp_path / "day.jsonl").stat().st_size,
        "format": "jsonl",
        "date_start": DAY[0],
        "date_end": DAY[1],
        "pages": -(-len(truth) // 500),
        "seconds": summary["seconds"],
        "non_terminal": 0,
        "waited_seconds": 0.0,
        "limits": summary["limits"],
    }
    # Nothing throttled: no pause, no 429, no retry; never more in flight than the pool slots.
    limits = summary["limits"]
    assert (limits["paused_seconds"], limits["responses_429"], limits["retries"]) == (0.0, 0, 0)
    assert 1.0 <= limits["concurrency_min"] <= limits["concurrency_mean"] <= limits["concurrency_max"] <= 4
    # The extraction's own duration: a number inside the run's.
    assert isinstance(summary["seconds"], float) and 0 < summary["seconds"] < wall


def test_jsonl_gz_equals_the_emulator_truth(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    run = run_dag(
        extract(output_path=f"file://{tmp_path}/day.jsonl.gz", output_format="jsonl", compression="gzip")
    )
    assert run.states == {"extract": "success"}
    lines = gzip.decompress((tmp_path / "day.jsonl.gz").read_bytes()).splitlines()
    assert by_id([json.loads(line) for line in lines]) == emulator.truth(date_start=DAY[0], date_end=DAY[1])


def test_csv_holds_the_documented_rows(emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path) -> None:
    run = run_dag(
        extract(
            date_start=THREE[0],
            date_end=THREE[1],
            output_path=f"file://{tmp_path}/three.csv",
            output_format="csv",
        )
    )
    assert run.states == {"extract": "success"}
    with open(tmp_path / "three.csv", newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert header == list(DOCUMENTED_COLUMNS)
    decoded = [
        {
            column: (json.loads(cell) if cell else None) if column in JSON_CELLS else cell
            for column, cell in zip(header, row, strict=True)
        }
        for row in sorted(rows)
    ]
    assert decoded == THREE_CSV_ROWS


def test_parquet_holds_the_documented_rows(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    run = run_dag(
        extract(
            date_start=THREE[0],
            date_end=THREE[1],
            output_path=f"file://{tmp_path}/three.parquet",
            output_format="parquet",
        )
    )
    assert run.states == {"extract": "success"}
    table = pq.read_table(tmp_path / "three.parquet")
    assert table.schema.names == list(DOCUMENTED_COLUMNS)
    rows = sorted(table.to_pylist(), key=lambda row: row["messageId"])
    for row in rows:
        assert isinstance(row["recordings"], str), "recordings are JSON text in Parquet"
        row["recordings"] = json.loads(row["recordings"])
        row["extra"] = None if row["extra"] is None else json.loads(row["extra"])
    assert rows == [as_parquet(row) for row in THREE_CSV_ROWS]


def test_csv_and_parquet_hold_every_message_of_a_day(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    csv_run = run_dag(extract(output_path=f"file://{tmp_path}/day.csv", output_format="csv"))
    parquet_run = run_dag(extract(output_path=f"file://{tmp_path}/day.parquet", output_format="parquet"))
    assert (csv_run.states, parquet_run.states) == ({"extract": "success"}, {"extract": "success"})
    truth = emulator.truth(date_start=DAY[0], date_end=DAY[1])
    with open(tmp_path / "day.csv", newline="", encoding="utf-8") as f:
        csv_rows = list(csv.DictReader(f))
    parquet_rows = pq.read_table(tmp_path / "day.parquet").to_pylist()
    for rows in (csv_rows, parquet_rows):
        assert sorted(row["messageId"] for row in rows) == [m["messageId"] for m in truth]
        by_message = {row["messageId"]: row for row in rows}
        assert all(by_message[m["messageId"]]["status.status"] == m["status"]["status"] for m in truth)


def test_rerun_replaces_the_object(emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path) -> None:
    output = f"file://{tmp_path}/day.jsonl"
    run_dag(extract(output_path=output))
    only_completed = [{"fieldName": "status.status", "searchTerm": "Completed"}]
    run = run_dag(extract(output_path=output, filters=only_completed))
    assert run.states == {"extract": "success"}
    truth = emulator.truth(date_start=DAY[0], date_end=DAY[1], filters=only_completed)
    assert 0 < len(truth) < len(emulator.truth(date_start=DAY[0], date_end=DAY[1]))
    assert by_id(read_jsonl(tmp_path / "day.jsonl")) == truth
    assert [p.name for p in tmp_path.iterdir()] == ["day.jsonl"]


def test_directory_output_path_is_partitioned_by_the_data_interval(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(task_id="extract", output_path=f"file://{tmp_path}/voicetrack/")

    run = run_dag(build, schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"))
    interval = run.dag_run.data_interval_start, run.dag_run.data_interval_end
    assert interval[1] - interval[0] == timedelta(days=1)
    name = f"voicetrack_{interval[0]:%Y%m%dT%H%M%SZ}_{interval[1]:%Y%m%dT%H%M%SZ}.jsonl"
    assert [p.name for p in (tmp_path / "voicetrack").iterdir()] == [name]
    written = read_jsonl(tmp_path / "voicetrack" / name)
    assert by_id(written) == emulator.truth(
        date_start=interval[0].isoformat(), date_end=interval[1].isoformat()
    )


def test_zero_width_interval_fails_without_retry_naming_the_fix(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(task_id="extract", output_path=f"file://{tmp_path}/x.jsonl", retries=2)

    run = run_dag(build)  # schedule=None: data_interval_start == data_interval_end
    assert run.states == {"extract": "failed"}
    [error] = run.error_messages["extract"]
    assert "CronDataIntervalTimetable(" in error
    assert "CronTriggerTimetable(" in error
    assert "interval=" in error
    assert emulator.stats()["total"] == 0
    assert list(tmp_path.iterdir()) == []


def test_missing_interval_fails_naming_the_fix(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(task_id="extract", output_path=f"file://{tmp_path}/x.jsonl")

    run = run_dag(build, logical_date=None)
    assert run.states == {"extract": "failed"}
    assert "date_start='None'" in run.error_messages["extract"][0]
    assert "CronDataIntervalTimetable(" in run.error_messages["extract"][0]
    assert emulator.stats()["total"] == 0


def test_zero_width_interval_can_be_skipped(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract", output_path=f"file://{tmp_path}/x.jsonl", empty_interval="skip"
        )

    run = run_dag(build)
    assert run.states == {"extract": "skipped"}
    assert list(tmp_path.iterdir()) == []


def test_zero_width_interval_can_look_back(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract",
            output_path=f"file://{tmp_path}/x.jsonl",
            empty_interval="lookback",
            lookback=timedelta(hours=6),
        )

    run = run_dag(build)  # logical date 2026-11-03, a zero-width data interval
    assert run.states == {"extract": "success"}
    assert run.results["extract"]["date_start"] == "2026-11-02T18:00:00Z"
    truth = emulator.truth(date_start="2026-11-02T18:00:00Z", date_end="2026-11-03T00:00:00Z")
    assert by_id(read_jsonl(tmp_path / "x.jsonl")) == truth


def test_missing_interval_looks_back_from_the_run_after_date(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract",
            output_path=f"file://{tmp_path}/x.jsonl",
            empty_interval="lookback",
            lookback=timedelta(hours=1),
        )

    run = run_dag(build, logical_date=None)
    assert run.states == {"extract": "success"}
    run_after = run.dag_run.run_after.replace(microsecond=0)
    assert run.results["extract"]["date_end"] == run_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run.results["extract"]["date_start"] == (run_after - timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_xcom_mode_returns_the_messages(emulator: EmulatorProcess, run_dag: RunDag) -> None:
    hour = ("2026-11-02T00:00:00Z", "2026-11-02T01:00:00Z")
    run = run_dag(extract(date_start=hour[0], date_end=hour[1]))
    assert run.states == {"extract": "success"}
    truth = emulator.truth(date_start=hour[0], date_end=hour[1])
    assert truth
    assert by_id(run.results["extract"]) == truth


def test_xcom_cap_fails_before_the_search_telling_to_set_output_path(
    emulator: EmulatorProcess, run_dag: RunDag
) -> None:
    run = run_dag(extract(xcom_max_records=100))
    assert run.states == {"extract": "failed"}
    assert "xcom_max_records=100" in run.error_messages["extract"][0]
    assert "output_path" in run.error_messages["extract"][0]
    searches = [n for key, n in emulator.stats()["requests"].items() if "/voice/tracking" in key]
    assert sum(searches) == 2, "only the count requests: the pending messages, then all of them"


def test_empty_interval_writes_a_valid_empty_object(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    run = run_dag(
        extract(
            date_start="2027-01-01T00:00:00Z",
            date_end="2027-01-02T00:00:00Z",
            output_path=f"file://{tmp_path}/",
        )
    )
    assert run.states == {"extract": "success"}
    [written] = tmp_path.iterdir()
    assert written.read_bytes() == b""
    assert run.results["extract"]["records"] == 0


def test_empty_interval_with_write_empty_false_writes_nothing(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    run = run_dag(
        extract(
            date_start="2027-01-01T00:00:00Z",
            date_end="2027-01-02T00:00:00Z",
            output_path=f"file://{tmp_path}/x.csv",
            output_format="csv",
            write_empty=False,
        )
    )
    assert run.states == {"extract": "success"}
    assert run.results["extract"]["path"] is None
    assert list(tmp_path.iterdir()) == []


def test_api_failure_mid_write_leaves_no_object_and_no_temporary(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    # The first API call (page 0, no count before it) passes, every later one gets a 401: page 1
    # fails while page 0 is in the temporary object.
    emulator.set_faults(unauthorized_rate=0.99)
    run = run_dag(
        extract(
            output_path=f"file://{tmp_path}/out/day.jsonl",
            page_size=100,
            max_concurrency=1,
            wait_for_terminal=False,
        )
    )
    assert run.states == {"extract": "failed"}
    assert "401" in run.error_messages["extract"][0]
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.slow  # a subprocess importing Airflow, killed after a second of writing: ~7 s
def test_writer_killed_mid_write_leaves_nothing_at_the_final_path(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    final = tmp_path / "day.jsonl"
    emulator.set_faults(latency_ms=300)
    script = (
        "from airflow.sdk import Asset, ObjectStoragePath\n"
        "from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook\n"
        "from airflow_voicetrack.writers import write_messages\n"
        "hook = VoiceTrackHook(page_size=20, max_concurrency=1)\n"
        f"messages = hook.search_messages({DAY[0]!r}, {DAY[1]!r})\n"
        f"write_messages(messages, ObjectStoragePath('file://{final}'), 'jsonl')\n"
    )
    env = {**os.environ, "AIRFLOW_CONN_VOICETRACK_DEFAULT": emulator.connection_json()}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not leftovers(tmp_path):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.05)
        time.sleep(1)  # a few more pages arrive while the object is being written
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert not final.exists()
    assert [p.name.startswith("_day.jsonl" + TEMP_MARKER) for p in leftovers(tmp_path)] == [True]


def test_s3_output_equals_the_truth_and_a_rerun_replaces_it(
    emulator: EmulatorProcess, run_dag: RunDag, s3: S3Bucket
) -> None:
    build = extract(output_path=f"s3://{s3.name}/voicetrack/", output_conn_id=s3.conn_id)
    first = run_dag(build)
    second = run_dag(build)
    assert (first.states, second.states) == ({"extract": "success"}, {"extract": "success"})
    key = "voicetrack/voicetrack_20261102T000000Z_20261103T000000Z.jsonl"
    assert s3.object_keys() == [key]
    body = s3.client.get_object(Bucket=s3.name, Key=key)["Body"].read()
    assert by_id([json.loads(line) for line in body.splitlines()]) == emulator.truth(
        date_start=DAY[0], date_end=DAY[1]
    )
    assert second.results["extract"]["path"] == f"s3://{s3.name}/{key}"
    assert second.results["extract"]["conn_id"] == s3.conn_id


def test_s3_failure_leaves_no_object(emulator: EmulatorProcess, run_dag: RunDag, s3: S3Bucket) -> None:
    emulator.set_faults(unauthorized_rate=0.99)
    run = run_dag(
        extract(output_path=f"s3://{s3.name}/voicetrack/", output_conn_id=s3.conn_id, page_size=100)
    )
    assert run.states == {"extract": "failed"}
    assert s3.object_keys() == []


PREVIOUS = b"the previous run's object, whole\n"


@pytest.mark.parametrize("store", ["file", "s3"])
@pytest.mark.parametrize("output_format", FORMATS)
def test_api_failure_mid_write_leaves_the_previous_object_in_place(
    emulator: EmulatorProcess,
    run_dag: RunDag,
    tmp_path: Path,
    s3: S3Bucket,
    output_format: str,
    store: str,
) -> None:
    key = f"voicetrack/day.{output_format}"
    if store == "s3":
        s3.client.put_object(Bucket=s3.name, Key=key, Body=PREVIOUS)
        target = {"output_path": f"s3://{s3.name}/{key}", "output_conn_id": s3.conn_id}
    else:
        (tmp_path / "voicetrack").mkdir()
        (tmp_path / key).write_bytes(PREVIOUS)
        target = {"output_path": f"file://{tmp_path}/{key}"}
    # No count before the read (wait_for_terminal=False): the first API call is page 0, whose 100
    # messages go to the temporary object; every later call gets a 401, and after three token
    # refreshes page 1 fails: mid-write.
    emulator.set_faults(unauthorized_rate=0.99)
    run = run_dag(
        extract(
            output_format=output_format,
            page_size=100,
            max_concurrency=1,
            wait_for_terminal=False,
            **target,
        )
    )
    assert run.states == {"extract": "failed"}
    assert "401" in run.error_messages["extract"][0]
    searches = emulator.stats()["requests"]["POST /voice/tracking"]
    assert searches - faults_fired(emulator)["unauthorized"] == 1, "one page was read before the failure"
    if store == "s3":
        assert s3.object_keys() == [key]
        assert s3.read(key) == PREVIOUS
    else:
        assert [p.name for p in (tmp_path / "voicetrack").iterdir()] == [f"day.{output_format}"]
        assert (tmp_path / key).read_bytes() == PREVIOUS


def asset_events(run: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(asset URI, extra)`` of every asset event the run emitted, from Airflow's DB."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent.asset)
            .where(AssetEvent.source_run_id == run.dag_run.run_id)
        ).all()
    return [(uri, extra) for uri, extra in rows]


def test_asset_event_is_emitted_with_the_summary(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    run = run_dag(extract(output_path=f"file://{tmp_path}/{{{{ ds_nodash }}}}/day.jsonl"))
    assert run.states == {"extract": "success"}
    assert asset_events(run) == [(f"file://{tmp_path}", run.results["extract"])]
    assert run.results["extract"]["path"] == f"file://{tmp_path}/20261103/day.jsonl"


def test_split_interval_maps_one_task_per_window(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    windows = split_interval("2026-11-02T00:00:00Z", "2026-11-02T12:00:00Z", timedelta(hours=5))

    def build() -> None:
        # partial() declares the output's asset itself (a mapped task's outlets come from partial()).
        VoiceTrackingOperator.partial(task_id="extract", output_path=f"file://{tmp_path}/").expand_kwargs(
            windows
        )

    run = run_dag(build)
    assert run.states == {"extract[0]": "success", "extract[1]": "success", "extract[2]": "success"}
    for index, window in enumerate(windows):
        summary = run.results[f"extract[{index}]"]
        written = read_jsonl(Path(ObjectStoragePath(summary["path"]).path))
        assert by_id(written) == emulator.truth(**window)
    events = asset_events(run)
    assert sorted(extra["date_start"] for _, extra in events) == [w["date_start"] for w in windows]
