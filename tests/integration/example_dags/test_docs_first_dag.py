"""The first DAG of the README and of the site's Getting started runs as printed, against the emulator.

The DAG is read from the documents themselves (the Python block after ``<!-- first-dag -->``), so
a change that breaks the newcomer's first DAG breaks this test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Asset
from support.dags import Run
from support.messages import by_id

from airflow_voicetrack.emulator.process import EmulatorProcess

REPO = Path(__file__).resolve().parents[3]
DOCUMENTS = (REPO / "README.md", REPO / "docs" / "getting-started.md")
FIRST_DAG = re.compile(r"<!-- first-dag -->\n```python\n(?P<code>.*?)```", re.DOTALL)
#: Where the printed DAG writes; the test points it at a temporary folder.
PRINTED_BASE = "file:///tmp/voicetrack"


def first_dag_source() -> str:
    sources = {path.name: FIRST_DAG.search(path.read_text())["code"] for path in DOCUMENTS}  # type: ignore[index]
    assert len(set(sources.values())) == 1, "the README and Getting started print different first DAGs"
    return next(iter(sources.values()))


def test_the_printed_first_dag_declares_the_documented_asset(tmp_path: Path) -> None:
    (tmp_path / "first_dag.py").write_text(first_dag_source())
    dag = DagBag(dag_folder=str(tmp_path)).get_dag("voice_calls_hourly")
    assert dag is not None
    # The README: "Each run emits an event on Asset("file:///tmp/voicetrack")".
    assert dag.get_task("extract_calls").outlets == [Asset(PRINTED_BASE)]


def test_the_printed_first_dag_extracts_the_documented_hour(
    emulator: EmulatorProcess, run_dag: Callable[..., Run], tmp_path: Path
) -> None:
    dags, output = tmp_path / "dags", tmp_path / "out"
    dags.mkdir()
    source = first_dag_source()
    assert PRINTED_BASE in source
    (dags / "first_dag.py").write_text(source.replace(PRINTED_BASE, output.as_uri()))
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    dag = bag.get_dag("voice_calls_hourly")

    # As documented: airflow dags test voice_calls_hourly 2026-11-02T06:00:00+00:00
    run = run_dag(dag, logical_date=pendulum.datetime(2026, 11, 2, 6, tz="UTC"))
    assert run.states == {"extract_calls": "success"}
    written = output / "2026-11-02" / "voicetrack_20261102T050000Z_20261102T060000Z.jsonl"
    assert [p.name for p in (output / "2026-11-02").iterdir()] == [written.name]
    messages = [json.loads(line) for line in written.read_text().splitlines()]
    truth = emulator.truth(date_start="2026-11-02T05:00:00Z", date_end="2026-11-02T06:00:00Z")
    assert by_id(messages) == truth
    assert len(messages) == 60  # the figure Getting started prints in the summary line
