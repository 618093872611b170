"""Every example DAG through ``dag.test()`` against the emulator; outputs read back against its truth."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.process import EmulatorProcess

DAY_START = datetime(2026, 11, 2, tzinfo=timezone.utc)
DAY_END = datetime(2026, 11, 3, tzinfo=timezone.utc)
#: The gate DAG's default campaign: the emulator's "Black Friday 2026".
CAMPAIGN_ID = "456a29f3-8d99-53bc-aea6-33373cc58bac"


def task_results(dag_run: Any) -> dict[str, Any]:
    """Return value (XCom) of every task instance of a finished run, by ``task_id`` or ``task_id[i]``."""
    results = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        results[key] = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
    return results


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as lines:
        return [json.loads(line) for line in lines]


def by_id(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {message["messageId"]: message for message in messages}


def test_extract_dag_writes_the_days_messages_to_a_file_named_after_the_interval(
    emulator: EmulatorProcess, output_base: Path, load_example_dag: Callable[[str], DAG]
) -> None:
    dag = load_example_dag("example_voicetrack_extract")

    # CronDataIntervalTimetable: the run with logical date 2026-11-03 covers 2026-11-02.
    dag_run = dag.test(logical_date=DAY_END)

    assert dag_run.state == "success"
    path = output_base / "voicetrack" / "daily" / "voicetrack_20261102T000000Z_20261103T000000Z.jsonl"
    written = read_jsonl(path)
    expected = emulator.truth(date_start=DAY_START, date_end=DAY_END)
    assert len(written) == len(expected) > 1000
    assert by_id(written) == by_id(expected)
    summary = task_results(dag_run)["extract_voice_messages"]
    assert summary["path"] == path.as_uri()
    assert summary["records"] == len(expected)


def test_extract_dag_rerun_replaces_the_intervals_object(
    emulator: EmulatorProcess, output_base: Path, load_example_dag: Callable[[str], DAG]
) -> None:
    dag = load_example_dag("example_voicetrack_extract")
    dag.test(logical_date=DAY_END)

    dag_run = dag.test(logical_date=DAY_END)

    assert dag_run.state == "success"
    files = list((output_base / "voicetrack" / "daily").iterdir())
    assert [file.name for file in files] == ["voicetrack_20261102T000000Z_20261103T000000Z.jsonl"]
    assert len(read_jsonl(files[0])) == len(emulator.truth(date_start=DAY_START, date_end=DAY_END))


def test_gate_dag_waits_for_the_calls_then_counts_the_extracted_messages_per_status(
    progressing: EmulatorProcess, output_base: Path, load_example_dag: Callable[[str], DAG]
) -> None:
    dag = load_example_dag("example_voicetrack_gate")
    progressing.reset()  # the calls start now, right before the run
    before = progressing.truth(date_start=DAY_START, date_end=DAY_END, campaign_tracking_id=CAMPAIGN_ID)
    assert any(message["status"]["status"] not in DEFAULT_TERMINAL_STATUSES for message in before)

    dag_run = dag.test()

    assert dag_run.state == "success"
    truth = progressing.truth(date_start=DAY_START, date_end=DAY_END, campaign_tracking_id=CAMPAIGN_ID)
    expected_counts = dict(sorted(Counter(message["status"]["status"] for message in truth).items()))
    assert set(expected_counts) <= DEFAULT_TERMINAL_STATUSES
    results = task_results(dag_run)
    assert results["count_by_status"] == expected_counts
    assert results["wait_for_calls"]["total"] == len(truth)
    written = read_jsonl(
        output_base
        / "voicetrack"
        / "campaigns"
        / CAMPAIGN_ID
        / Path(results["extract_campaign"]["path"]).name
    )
    assert by_id(written) == by_id(truth)


def test_backfill_dag_maps_one_extraction_per_window_and_sums_their_records(
    emulator: EmulatorProcess, output_base: Path, load_example_dag: Callable[[str], DAG]
) -> None:
    dag = load_example_dag("example_voicetrack_backfill")
    start, end = "2026-11-01T00:00:00Z", "2026-11-03T12:00:00Z"

    dag_run = dag.test(run_conf={"date_start": start, "date_end": end, "window_hours": 24})

    assert dag_run.state == "success"
    results = task_results(dag_run)
    windows = sorted(
        summary["date_start"] for key, summary in results.items() if key.startswith("extract_window[")
    )
    assert windows == ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]
    truth = emulator.truth(date_start=start, date_end=end)
    assert results["total_records"] == len(truth)
    files = sorted((output_base / "voicetrack" / "backfill").iterdir())
    assert [file.name for file in files] == [
        "voicetrack_20261101T000000Z_20261102T000000Z.jsonl",
        "voicetrack_20261102T000000Z_20261103T000000Z.jsonl",
        "voicetrack_20261103T000000Z_20261103T120000Z.jsonl",
    ]
    assert by_id([message for file in files for message in read_jsonl(file)]) == by_id(truth)
