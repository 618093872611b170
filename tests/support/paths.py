"""The ways data leaves the API, each run against ``voicetrack_default`` and read back as an :class:`Outcome`.

Paths: the hook's search, the operator writing a local file, the operator writing to S3 (moto's
server over HTTP) and the deferrable sensor (its trigger, rebuilt from the deferral, run with
asyncio, its event handed back to the sensor). Shared by the fault matrix (faults the API answers
with) and the TCP fault suite (faults below HTTP).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.exceptions import TaskDeferred

from airflow_voicetrack.exceptions import VoiceTrackError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
from airflow_voicetrack.output import default_file_name
from airflow_voicetrack.protocol import parse_datetime
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor
from support.dags import Run
from support.emulator import END, START
from support.messages import duplicates, files_under, read_jsonl, status_counts
from support.s3 import S3Bucket

#: The object the operator writes for [START, END) into a directory output path.
FILE_NAME = default_file_name(parse_datetime(START, "start"), parse_datetime(END, "end"), "jsonl")
#: The sensor's failure status and a threshold it never reaches: the final poke samples failed ids.
SENSOR_FAILURE = "Failed"
#: How long the deferred trigger may take to fire its event, in seconds.
TRIGGER_BOUND = 120.0


@dataclass
class Outcome:
    """What one path produced: the messages (or the sensor's summary), or the error it failed with."""

    messages: list[dict[str, Any]] | None = None
    summary: dict[str, Any] | None = None
    error: BaseException | None = None
    #: files (or S3 keys) at the output location after the run
    left: list[str] = field(default_factory=list)
    #: searches a clean run needs (hook and operators: the pages; sensor: its counts and sample)
    pages: int | None = None


def through_hook(**_: Any) -> Outcome:
    """Search [START, END) with :class:`VoiceTrackHook`."""
    hook = VoiceTrackHook()
    try:
        messages = list(hook.search_messages(START, END))
    except VoiceTrackError as error:
        return Outcome(error=error)
    return Outcome(messages=messages, pages=(hook.last_search_stats or {})["pages"])


def _operator_run(run_dag: Callable[..., Run], output_path: str, **kwargs: Any) -> Run:
    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract", date_start=START, date_end=END, output_path=output_path, **kwargs
        )

    return run_dag(build)


def through_operator_file(run_dag: Callable[..., Run], tmp_path: Path, **_: Any) -> Outcome:
    """Extract [START, END) to a JSON-lines file under ``tmp_path`` with ``dag.test()``."""
    out = tmp_path / "out"
    out.mkdir()
    run = _operator_run(run_dag, f"file://{out}/")
    if run.states["extract"] != "success":
        [error] = run.errors["extract"]
        return Outcome(error=error, left=files_under(out))
    assert files_under(out) == [FILE_NAME]
    return Outcome(
        messages=read_jsonl((out / FILE_NAME).read_bytes()),
        left=files_under(out),
        pages=run.results["extract"]["pages"],
    )


def through_operator_s3(run_dag: Callable[..., Run], s3: S3Bucket, **_: Any) -> Outcome:
    """Extract [START, END) to an S3 object with ``dag.test()``."""
    run = _operator_run(run_dag, f"s3://{s3.name}/run/", output_conn_id=s3.conn_id)
    if run.states["extract"] != "success":
        [error] = run.errors["extract"]
        return Outcome(error=error, left=s3.object_keys())
    assert s3.object_keys() == [f"run/{FILE_NAME}"]
    return Outcome(
        messages=read_jsonl(s3.read(f"run/{FILE_NAME}")),
        left=s3.object_keys(),
        pages=run.results["extract"]["pages"],
    )


def through_deferrable_sensor(**_: Any) -> Outcome:
    """Defer the sensor, run the trigger it hands over (rebuilt from its serialization), resume it."""
    sensor = VoiceMessageStatusSensor(
        task_id="wait",
        date_start=START,
        date_end=END,
        failure_statuses={SENSOR_FAILURE},
        failure_threshold=0.99,
        poke_interval=0.1,
        timeout=120,
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as deferral:
        sensor.execute({})  # type: ignore[arg-type]
    classpath, kwargs = deferral.value.trigger.serialize()
    trigger = import_string(classpath)(**kwargs)

    async def first_event() -> dict[str, Any]:
        return (await anext(trigger.run())).payload

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=TRIGGER_BOUND))
    try:
        summary = sensor.execute_complete({}, event)  # type: ignore[arg-type]
    except Exception as error:
        return Outcome(error=error)
    # One count of pending messages, one per terminal status, one sample search of failed ids.
    return Outcome(summary=summary, pages=1 + len(summary["by_status"]) + 1)


def assert_sensor_summary(summary: dict[str, Any], before: list[dict], after: list[dict]) -> None:
    """The summary counts every message (between the truth before and after) and samples real ids."""
    low, high = status_counts(before), status_counts(after)
    assert summary["pending"] == 0
    assert len(before) <= summary["total"] <= len(after)
    assert summary["total"] == sum(summary["by_status"].values())
    assert set(summary["by_status"]) == set(low)
    for status, count in summary["by_status"].items():
        assert low[status] <= count <= high[status], status
    failed = {m["messageId"] for m in after if m["status"]["status"] == SENSOR_FAILURE}
    sampled = summary["failed_ids"][SENSOR_FAILURE]
    assert sampled and set(sampled) <= failed and not duplicates([{"messageId": i} for i in sampled])
    if before == after:
        assert summary["by_status"] == low
        assert len(sampled) == min(20, low[SENSOR_FAILURE])


RUNNERS: dict[str, Callable[..., Outcome]] = {
    "hook": through_hook,
    "operator_file": through_operator_file,
    "operator_s3": through_operator_s3,
    "deferrable_sensor": through_deferrable_sensor,
}
