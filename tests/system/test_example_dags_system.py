"""
The gate example DAG under a real Airflow deployment: scheduler (LocalExecutor), DAG processor,
triggerer and API server as separate processes, SQLite, no ``dag.test()``.

One run of ``example_voicetrack_gate``, triggered through the REST API while the emulator's calls
are still in progress, proves what ``dag.test()`` cannot: the sensor's trigger is serialized to the
database and runs in the triggerer process while the task is ``deferred``; the sensor then resumes
on a worker; XCom flows to the downstream task; and the extraction emits an Asset event.

One run of ``example_voicetrack_extract`` for 2026-11-02, started while that day's calls are still
in progress, proves the same of the extraction's wait for its calls: it counts on the worker,
defers to the trigger in count-only mode, and resumes on a worker to write final statuses only.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow_deployment import REPO, AirflowDeployment, wait_until

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.process import EmulatorProcess

# The first test's setup starts the deployment and waits for the run: more than the default 300 s.
pytestmark = [pytest.mark.system, pytest.mark.timeout(540)]

DAG_ID = "example_voicetrack_gate"
EXTRACT_DAG_ID = "example_voicetrack_extract"
EXTRACT_TASK = "extract_voice_messages"
SENSOR = "wait_for_calls"
TRIGGER_CLASSPATH = "airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger"
#: The DAG's default params: the emulator's "Black Friday 2026" campaign on 2026-11-02.
CAMPAIGN_ID = "456a29f3-8d99-53bc-aea6-33373cc58bac"
DAY_START = datetime(2026, 11, 2, tzinfo=timezone.utc)
DAY_END = datetime(2026, 11, 3, tzinfo=timezone.utc)
#: Seconds over which the emulator's calls finish, counted from when the sensor task starts.
SETTLE_SECONDS = 20.0
RUN_TIMEOUT_S = 240
NOT_STARTED = (None, "scheduled", "queued")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """The default data set with calls in progress for ``SETTLE_SECONDS`` after each reset."""
    with EmulatorProcess(messages=10_000, seed=1, settle_seconds=SETTLE_SECONDS) as emu:
        yield emu


@pytest.fixture(scope="module")
def output_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voicetrack-output")


@pytest.fixture(scope="module")
def airflow(
    deployment_factory: Callable[..., AirflowDeployment], emulator: EmulatorProcess, output_base: Path
) -> AirflowDeployment:
    """The deployment, with the gate DAG parsed and unpaused (the other example DAGs stay paused
    until a test unpauses them)."""
    deployment = deployment_factory(
        REPO / "example_dags",
        {
            "AIRFLOW_CONN_VOICETRACK_DEFAULT": emulator.connection_json(),
            "VOICETRACK_OUTPUT_BASE": output_base.as_uri(),
        },
    )
    for dag_id in (DAG_ID, EXTRACT_DAG_ID):
        wait_until(
            lambda dag_id=dag_id: deployment.api("GET", f"/dags/{dag_id}"),
            timeout=120,
            what=f"{dag_id} to be parsed",
        )
    deployment.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    return deployment


def watch_run(
    airflow: AirflowDeployment,
    emulator: EmulatorProcess,
    dag_id: str,
    task_id: str,
    logical_date: str | None,
    first_look: str | None = None,
) -> dict[str, Any]:
    """
    Trigger one run of ``dag_id`` and watch ``task_id`` until the run ends.

    The emulator's status clock restarts until the task starts (or, with ``first_look``, until its
    log holds that text: a task that counts on the worker may take longer to get there than the
    calls take to finish on this loaded machine), so the calls are still in progress when the task
    (or its trigger) first looks, however long the deployment takes to get there. Returns the run,
    every state the task was seen in and its task instance as seen while deferred.
    """
    run = airflow.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date})
    run_path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
    seen_states: list[str | None] = []
    deferred: dict[str, Any] = {}

    task_log = (
        airflow.home
        / "logs"
        / f"dag_id={dag_id}"
        / f"run_id={run['dag_run_id']}"
        / f"task_id={task_id}"
        / "attempt=1.log"
    )
    looked: list[bool] = []

    def before_first_look(state: str | None) -> bool:
        # Resuming after the trigger fired goes through "scheduled" and "queued" again: only the
        # states before the first start count.
        if looked:
            return False
        if first_look is None:
            waiting = all(seen in NOT_STARTED for seen in [*seen_states, state])
        else:
            # Deferred, it has counted too (should its log not be written as it runs).
            logged = task_log.exists() and first_look in task_log.read_text(errors="replace")
            waiting = state != "deferred" and not logged
        if not waiting:
            looked.append(True)
        return waiting

    def finished() -> str | None:
        airflow.assert_running()
        task = airflow.api("GET", f"{run_path}/taskInstances/{task_id}")
        if before_first_look(task["state"]):
            emulator.reset()
        if not seen_states or seen_states[-1] != task["state"]:
            seen_states.append(task["state"])
        if task["state"] == "deferred" and task.get("trigger") and task.get("triggerer_job"):
            deferred.setdefault("ti", task)
        state = airflow.api("GET", run_path)["state"]
        return state if state in ("success", "failed") else None

    started = time.monotonic()
    state = wait_until(finished, timeout=RUN_TIMEOUT_S, what=f"the {dag_id} run to finish", every=0.5)
    return {
        "run": run,
        "run_path": run_path,
        "state": state,
        "seconds": time.monotonic() - started,
        "seen_states": seen_states,
        "deferred_ti": deferred.get("ti"),
    }


@pytest.fixture(scope="module")
def gate_run(airflow: AirflowDeployment, emulator: EmulatorProcess) -> dict[str, Any]:
    """One run of the gate DAG, its sensor watched (it sends no request before it defers)."""
    return watch_run(airflow, emulator, DAG_ID, SENSOR, None)


@pytest.fixture(scope="module")
def extract_run(
    airflow: AirflowDeployment, emulator: EmulatorProcess, gate_run: dict[str, Any]
) -> dict[str, Any]:
    """
    One run of the daily extraction of 2026-11-02, after the gate run, its task watched: its first
    count finds the day's calls in progress. Unpausing also lets the scheduler start the latest
    interval's run, of a day without calls: it extracts at once and is not watched.
    """
    airflow.api("PATCH", f"/dags/{EXTRACT_DAG_ID}", json={"is_paused": False})
    return watch_run(
        airflow, emulator, EXTRACT_DAG_ID, EXTRACT_TASK, DAY_END.isoformat(), first_look="Check 1: "
    )


def campaign_truth(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    return emulator.truth(date_start=DAY_START, date_end=DAY_END, campaign_tracking_id=CAMPAIGN_ID)


def xcom(airflow: AirflowDeployment, run_path: str, task_id: str) -> Any:
    return airflow.api("GET", f"{run_path}/taskInstances/{task_id}/xcomEntries/return_value")["value"]


def test_gate_run_succeeds(gate_run: dict[str, Any]) -> None:
    assert gate_run["state"] == "success", gate_run


def test_sensor_waits_in_the_deferred_state(gate_run: dict[str, Any]) -> None:
    assert "deferred" in gate_run["seen_states"]
    assert gate_run["seen_states"][-1] == "success"


def sensor_log(airflow: AirflowDeployment, gate_run: dict[str, Any], suffix: str = "") -> str:
    """The sensor's task log (``suffix=""``) or the log its trigger wrote in the triggerer."""
    folder = airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={gate_run['run']['dag_run_id']}"
    return (folder / f"task_id={SENSOR}" / f"attempt=1.log{suffix}").read_text()


def test_trigger_is_serialized_and_run_by_the_triggerer_process(
    airflow: AirflowDeployment, gate_run: dict[str, Any]
) -> None:
    ti = gate_run["deferred_ti"]
    assert ti is not None, f"never saw the sensor deferred with its trigger: {gate_run['seen_states']}"
    assert ti["trigger"]["classpath"] == TRIGGER_CLASSPATH
    triggerers = airflow.api("GET", "/jobs", params={"job_type": "TriggererJob"})["jobs"]
    # The private database knows one triggerer: the process this test started.
    assert [job["id"] for job in triggerers] == [ti["triggerer_job"]["id"]]

    trigger_log = sensor_log(airflow, gate_run, f".trigger.{ti['triggerer_job']['id']}.log")

    assert "messages are not in a terminal status yet" in trigger_log
    assert "Trigger fired event" in trigger_log


def test_sensor_resumes_on_a_worker_and_returns_the_summary(
    airflow: AirflowDeployment, gate_run: dict[str, Any], emulator: EmulatorProcess
) -> None:
    summary = xcom(airflow, gate_run["run_path"], SENSOR)

    truth = campaign_truth(emulator)
    assert summary["total"] == len(truth) > 0
    assert summary["pending"] == 0
    task_log = sensor_log(airflow, gate_run)
    deferred_at = task_log.index("Pausing task as DEFERRED")
    # execute_complete logs this line when the task resumes on a worker after the trigger fired.
    assert task_log.index(f"All {len(truth)} messages are in a terminal status", deferred_at)


def test_downstream_task_counts_the_extracted_messages_per_status(
    airflow: AirflowDeployment, gate_run: dict[str, Any], emulator: EmulatorProcess
) -> None:
    counts = xcom(airflow, gate_run["run_path"], "count_by_status")

    statuses = Counter(message["status"]["status"] for message in campaign_truth(emulator))
    assert counts == dict(statuses)
    assert set(counts) <= DEFAULT_TERMINAL_STATUSES


def test_extraction_emits_an_asset_event_for_its_output(
    airflow: AirflowDeployment, gate_run: dict[str, Any], output_base: Path
) -> None:
    events = airflow.api(
        "GET",
        "/assets/events",
        params={"source_dag_id": DAG_ID, "source_run_id": gate_run["run"]["dag_run_id"]},
    )["asset_events"]

    assert [event["source_task_id"] for event in events] == ["extract_campaign"]
    event = events[0]
    # Airflow normalizes the folder URI without its trailing slash.
    assert event["uri"] == f"{output_base.as_uri()}/voicetrack/campaigns"
    extracted = xcom(airflow, gate_run["run_path"], "extract_campaign")
    assert event["extra"]["records"] == extracted["records"] > 0
    assert event["extra"]["path"] == extracted["path"]


def test_no_secret_reaches_task_logs_or_process_output(
    airflow: AirflowDeployment, gate_run: dict[str, Any], emulator: EmulatorProcess
) -> None:
    """Real task logs (which ``dag.test()`` does not write) and every service's output carry neither
    the application secret nor the Basic credentials sent to the token endpoint."""
    basic = base64.b64encode(f"{emulator.client_id}:{emulator.client_secret}".encode()).decode()
    hits, scanned = airflow.scan_logs({"client secret": emulator.client_secret, "Basic credentials": basic})
    assert hits == []
    logs = airflow.home / "logs"

    # The scan read what it claims: each task's log of this run, and each service's output.
    run_folder = logs / f"dag_id={DAG_ID}" / f"run_id={gate_run['run']['dag_run_id']}"
    task_ids = [
        ti["task_id"] for ti in airflow.api("GET", f"{gate_run['run_path']}/taskInstances")["task_instances"]
    ]
    assert sorted(task_ids) == ["count_by_status", "extract_campaign", SENSOR]
    for task_id in task_ids:
        task_logs = [path for path in scanned if path.is_relative_to(run_folder / f"task_id={task_id}")]
        assert task_logs, f"no log of {task_id} among {sorted(str(p.relative_to(logs)) for p in scanned)}"
        assert all(scanned[path].strip() for path in task_logs), f"an empty log of {task_id}"
    assert b"Extracted" in scanned[run_folder / "task_id=extract_campaign" / "attempt=1.log"]
    for service in airflow.processes:
        assert scanned[airflow.log_path(service)].strip(), f"{service} wrote no output"


def test_extraction_waits_deferred_in_the_triggerer_and_resumes_on_a_worker(
    airflow: AirflowDeployment, extract_run: dict[str, Any], emulator: EmulatorProcess, output_base: Path
) -> None:
    assert extract_run["state"] == "success", extract_run
    assert "deferred" in extract_run["seen_states"] and extract_run["seen_states"][-1] == "success"
    ti = extract_run["deferred_ti"]
    assert ti is not None, f"never saw the extraction deferred: {extract_run['seen_states']}"
    assert ti["trigger"]["classpath"] == TRIGGER_CLASSPATH
    triggerers = airflow.api("GET", "/jobs", params={"job_type": "TriggererJob"})["jobs"]
    assert [job["id"] for job in triggerers] == [ti["triggerer_job"]["id"]]

    folder = (
        airflow.home
        / "logs"
        / f"dag_id={EXTRACT_DAG_ID}"
        / f"run_id={extract_run['run']['dag_run_id']}"
        / f"task_id={EXTRACT_TASK}"
    )
    trigger_log = (folder / f"attempt=1.log.trigger.{ti['triggerer_job']['id']}.log").read_text()
    assert "Every message is in a terminal status." in trigger_log
    task_log = (folder / "attempt=1.log").read_text()
    deferred_at = task_log.index("Pausing task as DEFERRED")
    assert task_log.index("Check 1: ") < deferred_at
    # The extraction ran after the task resumed on a worker.
    assert task_log.index("Extracted ", deferred_at)

    truth = emulator.truth(date_start=DAY_START, date_end=DAY_END)
    assert {m["status"]["status"] for m in truth} <= DEFAULT_TERMINAL_STATUSES
    summary = xcom(airflow, extract_run["run_path"], EXTRACT_TASK)
    written = [
        json.loads(line)
        for line in (output_base / "voicetrack" / "daily" / Path(summary["path"]).name)
        .read_text()
        .splitlines()
    ]
    assert sorted(written, key=lambda m: m["messageId"]) == truth
    assert summary["non_terminal"] == 0 and summary["waited_seconds"] > 0
    events = airflow.api(
        "GET",
        "/assets/events",
        params={"source_dag_id": EXTRACT_DAG_ID, "source_run_id": extract_run["run"]["dag_run_id"]},
    )["asset_events"]
    assert [event["extra"]["non_terminal"] for event in events] == [0]
    assert events[0]["extra"]["waited_seconds"] == summary["waited_seconds"]
