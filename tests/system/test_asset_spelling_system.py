"""
The operator's asset under a real scheduler: a downstream DAG scheduled on the folder it writes to
runs after each extraction, and the other spelling of that folder fails loudly.

Airflow strips a trailing ``/`` from an asset's URI but keeps it in its name, and matches a DAG's
schedule by both, so ``Asset("file:///x/voice/")`` and ``Asset("file:///x/voice")`` are different
assets with one URI, and only one of them can be active. Whichever is parsed first takes the URI.

- The operator's spelling parsed first (the usual case: the producer and its consumers exist before
  someone mistypes): a DAG scheduled on the slash-free spelling runs, with the extracted object's
  path in its triggering asset event; a DAG scheduled on the slash spelling never runs, and Airflow
  says so with an "asset conflict" DAG warning naming the URI, in the UI and the REST API.
- The slash spelling parsed first: Airflow refuses to run the extraction, before it starts
  (``AirflowInactiveAssetInInletOrOutletException``), and nothing is written.

The DAG files are written in two steps, waiting in between for the first step's assets to be
active, so that the order does not depend on how the DAG processor happens to order its files.
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
SLASH_FIRST = "slash_spelling_first"
LATE_PRODUCER = "producer_after_the_slash_spelling"
HOUR = ("2026-11-02T05:00:00Z", "2026-11-02T06:00:00Z")
RUN_TIMEOUT_S = 240


COMMON = """
    from datetime import datetime, timezone
    from airflow.sdk import DAG, Asset, task
    from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
    START = datetime(2026, 11, 1, tzinfo=timezone.utc)
"""


def write_producer(folder: Path, dag_id: str, output_path: str) -> None:
    (folder / f"{dag_id}.py").write_text(
        textwrap.dedent(COMMON)
        + textwrap.dedent(f"""
        with DAG({dag_id!r}, schedule=None, start_date=START):
            VoiceTrackingOperator(
                task_id="extract",
                date_start={HOUR[0]!r},
                date_end={HOUR[1]!r},
                output_path={output_path!r},
            )
    """)
    )


def write_consumer(folder: Path, dag_id: str, uri: str) -> None:
    """A DAG scheduled on ``Asset(uri)`` that returns the paths of its triggering events."""
    (folder / f"{dag_id}.py").write_text(
        textwrap.dedent(COMMON)
        + textwrap.dedent(f"""
        with DAG({dag_id!r}, schedule=Asset({uri!r}), start_date=START):

            @task
            def paths(*, triggering_asset_events=None):
                events = [event for each in triggering_asset_events.values() for event in each]
                return [event.extra["path"] for event in events]

            paths()
    """)
    )


def active_asset(airflow: AirflowDeployment, name: str) -> bool:
    """Whether Airflow lists the asset named ``name`` as active (the endpoint's default filter)."""
    assets = airflow.api("GET", "/assets", params={"limit": 100})["assets"]
    return any(asset["name"] == name for asset in assets)


def await_parsed(airflow: AirflowDeployment, *dag_ids: str) -> None:
    for dag_id in dag_ids:
        wait_until(
            lambda dag_id=dag_id: airflow.api("GET", f"/dags/{dag_id}"),
            timeout=120,
            what=f"{dag_id} to be parsed",
        )
        airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})


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
    base = output.as_uri()
    # Step 1: the operator's spelling of voice/, and the slash spelling of taken/.
    write_producer(dags, PRODUCER, base + "/voice/")
    write_consumer(dags, CONSUMER, base + "/voice")
    write_consumer(dags, SLASH_FIRST, base + "/taken/")
    deployment = deployment_factory(
        dags,
        {
            "AIRFLOW_CONN_VOICETRACK_DEFAULT": emulator.connection_json(),
            # Conflicting assets are reported by this periodic scheduler check.
            "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "5",
        },
    )
    await_parsed(deployment, PRODUCER, CONSUMER, SLASH_FIRST)
    for name in (base + "/voice", base + "/taken/"):
        wait_until(lambda name=name: active_asset(deployment, name), timeout=60, what=f"{name} to be active")
    # Step 2: the other spelling of each folder.
    write_consumer(dags, SLASH_CONSUMER, base + "/voice/")
    write_producer(dags, LATE_PRODUCER, base + "/taken/")
    await_parsed(deployment, SLASH_CONSUMER, LATE_PRODUCER)
    return deployment


def runs(airflow: AirflowDeployment, dag_id: str) -> list[dict[str, Any]]:
    return airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]


def task_log(airflow: AirflowDeployment, dag_id: str, run: dict[str, Any]) -> str:
    log = airflow.home / "logs" / f"dag_id={dag_id}" / f"run_id={run['dag_run_id']}" / "task_id=extract"
    return "\n".join(p.read_text() for p in log.glob("attempt=*.log"))


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
    assert run["state"] == "success", task_log(airflow, PRODUCER, run)[-3000:]
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


def test_the_slash_spelling_parsed_first_takes_the_uri_and_the_extraction_is_refused_before_it_starts(
    airflow: AirflowDeployment, emulator: EmulatorProcess, output: Path
) -> None:
    emulator.reset_stats()
    airflow.api("POST", f"/dags/{LATE_PRODUCER}/dagRuns", json={"logical_date": None})
    run = finished_run(airflow, LATE_PRODUCER)
    log = task_log(airflow, LATE_PRODUCER, run)
    assert run["state"] == "failed", log[-3000:]
    assert "AirflowInactiveAssetInInletOrOutletException" in log
    assert f"uri='{output.as_uri()}/taken'" in log
    assert emulator.stats()["total"] == 0  # refused before the operator ran: no token, no search
    assert not (output / "taken").exists()
    assert runs(airflow, SLASH_FIRST) == []
