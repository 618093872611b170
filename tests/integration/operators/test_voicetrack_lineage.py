"""
OpenLineage events of the operator, as Airflow's OpenLineage provider emits them.

One ``airflow dags test`` in a subprocess (so that the provider reads its configuration afresh)
runs a DAG with one extraction per format against the emulator, with the provider's file transport.
The events are read back from that file and compared with what was written and with the emulator's
own count of the interval.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.parquet
import pytest
from support.messages import DOCUMENTED_COLUMNS

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.lineage import LINEAGE_INPUT_NAME
from airflow_voicetrack.output import default_file_name
from airflow_voicetrack.protocol import parse_datetime

# Slow tier (`make test-all`): `airflow dags test` in a subprocess with the OpenLineage listener,
# 20-75 s depending on the machine's load.
pytestmark = pytest.mark.slow

DAG_ID = "voicetrack_lineage"
START, END = "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"
FORMATS = {"jsonl": "extract_jsonl", "csv": "extract_csv", "parquet": "extract_parquet"}

DAG_FILE = """
from airflow.sdk import DAG
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

with DAG({dag_id!r}, schedule=None):
    for output_format, task_id in {formats!r}.items():
        VoiceTrackingOperator(
            task_id=task_id,
            date_start={start!r},
            date_end={end!r},
            output_path={output!r},
            output_format=output_format,
            # Dropped columns must leave the schema facet too.
            exclude_fields=["message.text"] if output_format == "parquet" else None,
        )
"""


@pytest.fixture(scope="module")
def lineage_run(
    tmp_path_factory: pytest.TempPathFactory, emulator_session: EmulatorProcess
) -> dict[str, Any]:
    """Run the DAG once with the file transport; return the events by task, and the paths."""
    root = tmp_path_factory.mktemp("lineage")
    dags, output, events = root / "dags", root / "out", root / "events.jsonl"
    dags.mkdir()
    output_uri = output.as_uri() + "/"
    (dags / "lineage_dag.py").write_text(
        textwrap.dedent(
            DAG_FILE.format(dag_id=DAG_ID, formats=FORMATS, start=START, end=END, output=output_uri)
        )
    )
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_CONN_VOICETRACK_DEFAULT": emulator_session.connection_json(),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "voicetrack-test",
    }
    emulator_session.reset()
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "2026-11-03T00:00:00+00:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    by_task: dict[str, dict[str, dict[str, Any]]] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        task_id = event["job"]["name"].rpartition(".")[2]
        if event["job"]["name"].startswith(f"{DAG_ID}.") and task_id in FORMATS.values():
            by_task.setdefault(task_id, {})[event["eventType"]] = event
    expected = len(emulator_session.truth(date_start=START, date_end=END))
    return {"events": by_task, "output": output, "expected": expected, "emu": emulator_session}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("output_format", list(FORMATS))
def test_start_and_complete_carry_the_api_and_the_object(
    lineage_run: dict[str, Any], output_format: str
) -> None:
    events = lineage_run["events"][FORMATS[output_format]]
    assert {"START", "COMPLETE"} <= set(events), set(events)
    name = default_file_name(parse_datetime(START, "start"), parse_datetime(END, "end"), output_format)
    path = lineage_run["output"] / name
    for kind in ("START", "COMPLETE"):
        event = events[kind]
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
            (lineage_run["emu"].url, LINEAGE_INPUT_NAME)
        ], kind
        # The object, not the output directory.
        assert [d["name"] for d in event["outputs"]] == [str(path)], kind
        assert event["outputs"][0]["namespace"].startswith("file"), kind


@pytest.mark.timeout(300)
@pytest.mark.parametrize("output_format", list(FORMATS))
def test_complete_has_output_statistics_of_what_was_written(
    lineage_run: dict[str, Any], output_format: str
) -> None:
    (output,) = lineage_run["events"][FORMATS[output_format]]["COMPLETE"]["outputs"]
    path = Path(output["name"])
    statistics = output["outputFacets"]["outputStatistics"]
    assert statistics["rowCount"] == lineage_run["expected"] > 0
    assert statistics["size"] == path.stat().st_size
    # START cannot know them yet.
    (started,) = lineage_run["events"][FORMATS[output_format]]["START"]["outputs"]
    assert "outputStatistics" not in started.get("outputFacets", {})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("output_format", list(FORMATS))
def test_schema_facet_for_csv_and_parquet_matches_the_written_object(
    lineage_run: dict[str, Any], output_format: str
) -> None:
    for kind in ("START", "COMPLETE"):
        (output,) = lineage_run["events"][FORMATS[output_format]][kind]["outputs"]
        schema = output.get("facets", {}).get("schema")
        if output_format == "jsonl":
            assert schema is None, kind  # JSON Lines keeps the API's own objects: no fixed columns
            continue
        fields = [(f["name"], f["type"]) for f in schema["fields"]]
        path = Path(output["name"])
        if output_format == "csv":
            with path.open(newline="") as lines:
                header = next(csv.reader(lines))
            assert fields == [(name, "string") for name in header] and header == list(DOCUMENTED_COLUMNS), (
                kind
            )
        else:
            written = pyarrow.parquet.read_schema(path)
            assert [name for name, _ in fields] == written.names, kind
            types = dict(fields)
            assert types.pop("groups") == "list<string>", kind
            assert types == {field.name: str(field.type) for field in written if field.name != "groups"}, kind
            assert "message.text" not in types and types["duration"] == "double", kind
