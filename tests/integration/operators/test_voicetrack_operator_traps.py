"""Traps of a first DAG that must fail loudly or work: one object for every run, the asset's spelling.

Parse-time checks go through Airflow's own DAG parsing (``DagBag``); run-time checks through
``dag.test()`` against the emulator, which counts the requests a refused task must not send.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable
from support.dags import LOGICAL_DATE, START_DATE, Run
from support.messages import by_id

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

RunDag = Callable[..., Run]
DAILY = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def parse(dag_folder: Path, source: str) -> dict[str, str]:
    """Parse one DAG file the way the DAG processor does; return its import errors by file."""
    from airflow.dag_processing.dagbag import DagBag

    (dag_folder / "dag.py").write_text(textwrap.dedent(source))
    bag = DagBag(dag_folder=str(dag_folder))
    return dict(bag.import_errors)


def dag_file(output_path: str, schedule: str, extra: str = "") -> str:
    return f"""
        from datetime import datetime, timezone
        from airflow.sdk import DAG, CronDataIntervalTimetable
        from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

        with DAG("hourly", schedule={schedule}, start_date=datetime(2026, 11, 1, tzinfo=timezone.utc)):
            VoiceTrackingOperator(task_id="extract", output_path={output_path!r}{extra})
    """


@pytest.mark.parametrize(
    "schedule", ['"@hourly"', 'CronDataIntervalTimetable("0 * * * *", timezone="UTC")', '"@continuous"']
)
def test_a_scheduled_dag_with_one_fixed_object_fails_to_parse_naming_the_fix(
    tmp_path: Path, schedule: str
) -> None:
    extra = ", max_active_runs=1" if "continuous" in schedule else ""
    source = dag_file("s3://bucket/voicetrack/calls.jsonl", schedule).replace(
        "tzinfo=timezone.utc)", f"tzinfo=timezone.utc){extra}"
    )
    [error] = parse(tmp_path, source).values()
    assert "output_path 's3://bucket/voicetrack/calls.jsonl' names one object" in error
    assert "DAG 'hourly' has a schedule" in error
    assert "End output_path with '/'" in error
    assert "{{ data_interval_start | ds }}" in error
    assert "overwrite_each_run=True" in error


@pytest.mark.parametrize(
    ("output_path", "schedule", "extra"),
    [
        ("s3://bucket/voicetrack/", '"@hourly"', ""),  # a directory: one object per interval
        ("s3://bucket/voicetrack/{{ data_interval_start | ds }}.jsonl", '"@hourly"', ""),
        ("s3://bucket/voicetrack/calls.jsonl", '"@hourly"', ", overwrite_each_run=True"),
        ("s3://bucket/voicetrack/calls.jsonl", "None", ""),  # manual runs only
        ("s3://bucket/voicetrack/calls.jsonl", '"@once"', ""),
    ],
)
def test_paths_that_cannot_silently_overwrite_parse(
    tmp_path: Path, output_path: str, schedule: str, extra: str
) -> None:
    assert parse(tmp_path, dag_file(output_path, schedule, extra)) == {}


def test_a_mapped_task_with_one_fixed_object_fails_to_parse() -> None:
    with DAG("mapped", schedule=None, start_date=START_DATE), pytest.raises(ValueError) as raised:
        VoiceTrackingOperator.partial(task_id="extract", output_path="file:///tmp/one.jsonl").expand_kwargs(
            [{"date_start": "2026-11-01T00:00:00Z", "date_end": "2026-11-02T00:00:00Z"}]
        )
    assert "every mapped task instance writes it" in str(raised.value)
    assert "End output_path with '/'" in str(raised.value)


def test_a_task_added_to_a_scheduled_dag_later_fails_at_run_time_before_any_request(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    """The schedule is not known when the operator is built, so execute() checks before any request."""
    task = VoiceTrackingOperator(task_id="extract", output_path=f"file://{tmp_path}/calls.jsonl", retries=0)
    dag = DAG("traps_added_later", schedule=DAILY, start_date=START_DATE, catchup=False)
    dag.add_task(task)
    run = run_dag(dag, logical_date=LOGICAL_DATE)
    assert run.states == {"extract": "failed"}
    [error] = run.error_messages["extract"]
    assert "has a schedule" in error
    assert "End output_path with '/'" in error
    assert emulator.stats()["total"] == 0
    assert list(tmp_path.iterdir()) == []


def test_overwrite_each_run_writes_one_object_under_a_schedule(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract", output_path=f"file://{tmp_path}/latest.jsonl", overwrite_each_run=True
        )

    run = run_dag(build, schedule=DAILY)
    assert run.states == {"extract": "success"}
    assert [p.name for p in tmp_path.iterdir()] == ["latest.jsonl"]
    start, end = run.dag_run.data_interval_start, run.dag_run.data_interval_end
    assert end - start == timedelta(days=1)
    assert run.results["extract"]["records"] == len(
        emulator.truth(date_start=start.isoformat(), date_end=end.isoformat())
    )


def test_the_interval_templated_into_the_path_names_the_intervals_own_day(
    emulator: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    """``data_interval_start | ds`` is the day extracted; ``ds`` (the logical date) is the next one."""

    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract", output_path=f"file://{tmp_path}/{{{{ data_interval_start | ds }}}}.jsonl"
        )

    run = run_dag(build, schedule=DAILY)  # logical date 2026-11-03: the interval is 2026-11-02
    assert run.states == {"extract": "success"}
    start = run.dag_run.data_interval_start
    assert (f"{start:%Y-%m-%d}", f"{LOGICAL_DATE:%Y-%m-%d}") == ("2026-11-02", "2026-11-03")
    assert [p.name for p in tmp_path.iterdir()] == [f"{start:%Y-%m-%d}.jsonl"]
    written = [json.loads(line) for line in (tmp_path / f"{start:%Y-%m-%d}.jsonl").read_text().splitlines()]
    assert by_id(written) == emulator.truth(
        date_start=start.isoformat(), date_end=run.dag_run.data_interval_end.isoformat()
    )


@pytest.mark.parametrize(
    "output_path", ["s3://bucket/voice/", "s3://bucket/voice/{{ data_interval_start | ds }}.jsonl"]
)
def test_the_output_asset_is_spelt_without_the_trailing_slash(output_path: str) -> None:
    task = VoiceTrackingOperator(task_id="extract", output_path=output_path)
    assert task.outlets == [Asset("s3://bucket/voice")]
    assert task.outlets[0].name == task.outlets[0].uri == "s3://bucket/voice"


def test_mapped_tasks_declare_the_output_asset_from_partial() -> None:
    with DAG("mapped_asset", schedule=None, start_date=START_DATE) as dag:
        VoiceTrackingOperator.partial(task_id="extract", output_path="s3://bucket/voice/").expand_kwargs(
            [{"date_start": "2026-11-01T00:00:00Z", "date_end": "2026-11-02T00:00:00Z"}]
        )
    assert dag.get_task("extract").outlets == [Asset("s3://bucket/voice")]


def test_an_outlet_spelt_with_the_trailing_slash_warns_at_parse_time() -> None:
    with pytest.warns(UserWarning, match=r"Use Asset\('s3://bucket/voice'\)"):
        VoiceTrackingOperator(
            task_id="extract", output_path="s3://bucket/voice/", outlets=[Asset("s3://bucket/voice/")]
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VoiceTrackingOperator(
            task_id="extract", output_path="s3://bucket/voice/", outlets=[Asset("s3://bucket/voice")]
        )
