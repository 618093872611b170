"""
The operator's asset under a real scheduler: a downstream DAG scheduled on the folder it writes to
runs after each extraction, and the other spelling of that folder fails loudly.

Airflow strips a trailing ``/`` from an asset's URI but keeps it in its name, and matches a DAG's
schedule by both, so ``Asset("file:///x/voice/")`` and ``Asset("file:///x/voice")`` are different
assets. The operator declares the slash-free spelling (the URI Airflow shows); a DAG scheduled on
it must run, with the extracted object's path in its triggering asset event. A DAG scheduled on the
slash spelling cannot be made to run by the same events, and Airflow must say so: an "asset
conflict" DAG warning naming the URI, in the UI and the REST API.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_deployment import AirflowDeployment, wait_until

from airflow_voicetrack.emulator.process import EmulatorProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(540)]

PRODUCER = "voicetrack_producer"
CONSUMER = "consumer_without_slash"
SLASH_CONSUMER = "consumer_with_slash"
HOUR = ("2026-11-02T05:00:00Z", "2026-11-02T06:00:00Z")
RUN_TIMEOUT_S = 240


def dag_files(folder: Path, base: str) -> None:
    """The producer and two consumers, spelling the producer's folder without and with ``/``."""
    common = """
        from datetime import datetime, timezone
        from airflow.sdk import DAG, Asset, task
        from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
        START = datetime(2026, 11, 1, tzinfo=timezone.utc)
    """
    (folder / "producer.py").write_text(
        textwrap.dedent(common)
        + textwrap.dedent(f"""
        with DAG({PRODUCER!r}, schedule=None, start_date=START):
            VoiceTrackingOperator(
                task_id="extract",
                date_start={HOUR[0]!r},
                date_end={HOUR[1]!r},
                output_path={base + "/voice/"!r},
            )
    """)
    )
    for dag_id, uri in ((CONSUMER, base + "/voice"), (SLASH_CONSUMER, base + "/voice/")):
        (folder / f"{dag_id}.py").write_text(
            textwrap.dedent(common)
            + textwrap.dedent(f"""
            with DAG({dag_id!r}, schedule=Asset({uri!r}), start_date=START):

                @task
                def paths(*, triggering_asset_events=None):
                    events = [event for each in triggering_asset_events.values() for event in each]
                    return [event.extra["path"] for event in events]

                paths()
        """)
        )


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=10_000, seed=1) as emu:
        yield emu


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voicetrack-output")


@pytest.fixture(scope="module")
def airflow(
    deployment_factory: Callable[..., AirflowDeployment],
    emulator: EmulatorProcess,
    output: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowDeployment:
    dags = tmp_path_factory.mktemp("dags")
    dag_files(dags, output.as_uri())
    deployment = deployment_factory(
        dags,
        {
            "AIRFLOW_CONN_VOICETRACK_DEFAULT": emulator.connection_json(),
            # Assets are activated (and their conflicts reported) by this periodic scheduler check.
            "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "5",
        },
    )
    for dag_id in (PRODUCER, CONSUMER, SLASH_CONSUMER):
        wait_until(
            lambda dag_id=dag_id: deployment.api("GET", f"/dags/{dag_id}"),
            timeout=120,
            what=f"{dag_id} to be parsed",
        )
        deployment.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    return deployment


def runs(airflow: AirflowDeployment, dag_id: str) -> list[dict[str, Any]]:
    return airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]


def finished_run(airflow: AirflowDeployment, dag_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        airflow.assert_running()
        ended = [run for run in runs(airflow, dag_id) if run["state"] in ("success", "failed")]
        return ended[0] if ended else None

    return wait_until(done, timeout=RUN_TIMEOUT_S, what=f"a finished run of {dag_id}", every=1)


@pytest.fixture(scope="module")
def produced(airflow: AirflowDeployment) -> dict[str, Any]:
    """One extraction, triggered through the REST API; returns the run and its summary."""
    airflow.api("POST", f"/dags/{PRODUCER}/dagRuns", json={"logical_date": None})
    run = finished_run(airflow, PRODUCER)
    log = airflow.home / "logs" / f"dag_id={PRODUCER}" / f"run_id={run['dag_run_id']}" / "task_id=extract"
    assert run["state"] == "success", "\n".join(p.read_text()[-3000:] for p in log.glob("attempt=*.log"))
    summary = airflow.api(
        "GET", f"/dags/{PRODUCER}/dagRuns/{run['dag_run_id']}/taskInstances/extract/xcomEntries/return_value"
    )["value"]
    return {"run": run, "summary": summary}


def test_the_extraction_succeeds(produced: dict[str, Any], output: Path) -> None:
    assert produced["run"]["state"] == "success"
    assert produced["summary"]["path"] == (
        f"{output.as_uri()}/voice/voicetrack_20261102T050000Z_20261102T060000Z.jsonl"
    )


def test_a_dag_scheduled_on_the_slash_free_folder_runs_with_the_objects_path(
    airflow: AirflowDeployment, produced: dict[str, Any]
) -> None:
    run = finished_run(airflow, CONSUMER)
    assert run["state"] == "success"
    assert run["run_type"] == "asset_triggered"
    paths = airflow.api(
        "GET", f"/dags/{CONSUMER}/dagRuns/{run['dag_run_id']}/taskInstances/paths/xcomEntries/return_value"
    )["value"]
    assert paths == [produced["summary"]["path"]]


def test_the_slash_spelling_is_reported_as_an_asset_conflict_and_never_triggered(
    airflow: AirflowDeployment, produced: dict[str, Any], output: Path
) -> None:
    finished_run(airflow, CONSUMER)  # the events have been processed by now

    def conflict() -> list[dict[str, Any]] | None:
        warnings = airflow.api("GET", "/dagWarnings")["dag_warnings"]
        found = [w for w in warnings if w["warning_type"] == "asset conflict"]
        return found or None

    warnings = wait_until(conflict, timeout=60, what="an asset-conflict DAG warning", every=1)
    assert any(f'uri="{output.as_uri()}/voice"' in warning["message"] for warning in warnings), warnings
    assert runs(airflow, SLASH_CONSUMER) == []
