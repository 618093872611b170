"""The example DAGs parse cleanly, as Airflow's own CLI and DAG processor see them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import CronDataIntervalTimetable

EXAMPLE_DAGS = Path(__file__).resolve().parents[3] / "example_dags"
DAG_IDS = {
    "example_voicetrack_extract",
    "example_voicetrack_gate",
    "example_voicetrack_backfill",
    "example_voicetrack_on_calls_finished",
    "example_voicetrack_on_campaign_finished",
}


def test_airflow_dags_list_import_errors_is_empty_for_example_dags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "list-import-errors", "--local", "--output", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS)},
        timeout=180,
        check=True,
    )
    # Airflow prints its warnings to stdout too; the JSON document is the last line.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_example_dags_folder_holds_the_example_dags_and_nothing_else() -> None:
    dagbag = DagBag(dag_folder=EXAMPLE_DAGS)

    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS
    # .airflowignore keeps the demo runner and the package marker away from the DAG processor.
    assert {Path(path).name for path in dagbag.file_last_changed} == {f"{dag_id}.py" for dag_id in DAG_IDS}


def test_extract_dag_uses_a_data_interval_timetable() -> None:
    dag = DagBag(dag_folder=EXAMPLE_DAGS).get_dag("example_voicetrack_extract")

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
