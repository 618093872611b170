"""
The provider on a production-shaped stack: PostgreSQL, ``CeleryExecutor`` on Redis with two Celery
workers as separate processes, scheduler, DAG processor, triggerer, API server, the emulator and
S3 on moto's server, all started here and stopped at the end. Run with ``make test-stack``.

The tests run in file order on one deployment and each builds on the state the previous left:

1. ``example_voicetrack_backfill`` over 14 windows in a pool of :data:`POOL_SIZE` slots: both
   workers run windows, every window's object lands in S3 once, the sum equals the emulator's
   truth, and the emulator never sees more than :data:`POOL_SIZE` searches in flight at once.
2. ``example_voicetrack_gate``: the sensor's wait is deferred to the triggerer, which is stopped and
   started again mid-wait; the wait resumes in the new triggerer and the extraction runs on a worker.
3. A worker's process tree is killed with SIGKILL while it streams a window to S3: the retry on the
   other worker writes the complete object, and the final path never holds a partial one.
4. No secret in any process's output or any task's log.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow_deployment import REPO, wait_until
from stack import CeleryDeployment, PostgresServer, RedisServer
from support.s3 import S3_BUCKET, S3_CONN_ID, S3Bucket, moto_s3_server, s3_client, s3_connection_json

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.operators.voicetrack import split_interval
from airflow_voicetrack.output import default_file_name

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

BACKFILL = "example_voicetrack_backfill"
GATE = "example_voicetrack_gate"
POOL = "routee_api"
#: The pool's size; each window takes 2 slots (the example's max_concurrency=2), so 2 run at once.
POOL_SIZE = 4
RANGE = ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")
WINDOW_HOURS = 12
#: Each search is held this long by the emulator, so concurrent requests overlap and are counted.
LATENCY_MS = 300
SETTLE_SECONDS = 30.0
SEARCH = "POST /voice/tracking"
GATE_CAMPAIGN = "456a29f3-8d99-53bc-aea6-33373cc58bac"
GATE_DAY = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
FINISHED = ("success", "failed")
#: What the test measured, printed at the end for the issue's closing note.
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=10_000, seed=1, settle_seconds=SETTLE_SECONDS) as emu:
        yield emu


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> S3Bucket:
    return S3Bucket(s3_client(s3_endpoint))


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess, s3_endpoint: str
) -> Iterator[CeleryDeployment]:
    """PostgreSQL, Redis and the Airflow services with two Celery workers; everything stopped at the end."""
    started = time.monotonic()
    postgres, redis = PostgresServer(), RedisServer()
    deployment: CeleryDeployment | None = None
    try:
        postgres.start()
        redis.start()
        deployment = CeleryDeployment(
            tmp_path_factory.mktemp("airflow-home"),
            REPO / "example_dags",
            {
                # The connection allows 4 requests in flight; the pool slots (2) cap each task lower.
                "AIRFLOW_CONN_VOICETRACK_DEFAULT": emulator.connection_json(page_size=50, max_concurrency=4),
                f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": s3_connection_json(s3_endpoint),
                "VOICETRACK_OUTPUT_BASE": f"s3://{S3_BUCKET}",
                "VOICETRACK_OUTPUT_CONN_ID": S3_CONN_ID,
                "VOICETRACK_API_POOL": POOL,
                # One retry, soon, and a lost worker noticed after 20 s rather than 5 minutes.
                "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            },
            database_url=postgres.url,
            broker_url=redis.url,
        )
        deployment.start()
        deployment.cli("pools", "set", POOL, str(POOL_SIZE), "The Routee API's shared request budget")
        for name in deployment.workers:
            wait_until(
                lambda name=name: deployment.assert_running() or "ready." in deployment.log_text(name),  # type: ignore[union-attr]
                timeout=120,
                what=f"Celery {name} to be ready",
            )
        for dag_id in (BACKFILL, GATE):
            wait_until(
                lambda dag_id=dag_id: deployment.api("GET", f"/dags/{dag_id}"), timeout=180, what=dag_id
            )  # type: ignore[union-attr]
            deployment.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        FIGURES["startup_seconds"] = round(time.monotonic() - started, 1)
        yield deployment
    finally:
        if deployment is not None:
            deployment.stop()
        redis.stop()
        postgres.stop()
        FIGURES["total_seconds"] = round(time.monotonic() - started, 1)
        print(f"\nstack test figures: {json.dumps(FIGURES)}")


def trigger(stack: CeleryDeployment, dag_id: str, conf: dict[str, Any]) -> str:
    run = stack.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    return f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"


def finished(stack: CeleryDeployment, run_path: str) -> str | None:
    stack.assert_running()
    state = stack.api("GET", run_path)["state"]
    return state if state in FINISHED else None


def task_instances(stack: CeleryDeployment, run_path: str, task_id: str) -> list[dict[str, Any]]:
    return [
        ti
        for ti in stack.api("GET", f"{run_path}/taskInstances", params={"limit": 100})["task_instances"]
        if ti["task_id"] == task_id
    ]


def xcom(stack: CeleryDeployment, run_path: str, task_id: str) -> Any:
    return stack.api("GET", f"{run_path}/taskInstances/{task_id}/xcomEntries/return_value")["value"]


def message_ids(data: bytes) -> list[str]:
    return [json.loads(line)["messageId"] for line in data.splitlines()]


def window_key(window: dict[str, str]) -> str:
    start, end = (
        datetime.fromisoformat(window[k].replace("Z", "+00:00")) for k in ("date_start", "date_end")
    )
    return f"voicetrack/backfill/{default_file_name(start, end, 'jsonl')}"


def calls_finished(emulator: EmulatorProcess, date_range: tuple[str, str]) -> None:
    """
    Zero the emulator's counters and faults, and wait until every call of ``date_range`` is final:
    the gate's resets put them in progress again, and an extraction would then wait for them (its
    default ``wait_for_terminal``), which these backfill tests are not about.
    """
    emulator.reset_stats()
    emulator.clear_faults()

    def final() -> bool:
        truth = emulator.truth(date_start=date_range[0], date_end=date_range[1])
        return all(message["status"]["status"] in DEFAULT_TERMINAL_STATUSES for message in truth)

    wait_until(final, timeout=SETTLE_SECONDS + 60, what=f"the calls of {date_range} to finish")


# -- 1. the backfill fan-out, in a shared pool ---------------------------------------------------


@pytest.fixture(scope="module")
def backfill(stack: CeleryDeployment, emulator: EmulatorProcess) -> dict[str, Any]:
    calls_finished(emulator, RANGE)
    emulator.set_faults(latency_ms=LATENCY_MS)
    started = time.monotonic()
    run_path = trigger(
        stack, BACKFILL, {"date_start": RANGE[0], "date_end": RANGE[1], "window_hours": WINDOW_HOURS}
    )
    state = wait_until(lambda: finished(stack, run_path), timeout=600, what="the backfill run")
    seconds = time.monotonic() - started
    stats = emulator.stats()
    emulator.clear_faults()
    return {"run_path": run_path, "state": state, "stats": stats, "seconds": seconds}


def test_backfill_succeeds_over_at_least_eight_windows(
    backfill: dict[str, Any], stack: CeleryDeployment
) -> None:
    assert backfill["state"] == "success"
    windows = task_instances(stack, backfill["run_path"], "extract_window")
    assert len(windows) == len(split_interval(*RANGE, timedelta(hours=WINDOW_HOURS))) == 14
    assert all(ti["state"] == "success" for ti in windows)
    FIGURES["backfill_seconds"] = round(backfill["seconds"], 1)


def test_mapped_windows_run_on_both_workers(backfill: dict[str, Any], stack: CeleryDeployment) -> None:
    windows = task_instances(stack, backfill["run_path"], "extract_window")
    per_worker = Counter(ti["hostname"] for ti in windows)
    FIGURES["windows_per_worker"] = dict(sorted(per_worker.items()))
    assert set(per_worker) == set(stack.workers), per_worker
    # The hostname is the worker's own: each worker's log shows the tasks it received.
    for name in stack.workers:
        assert stack.log_text(name).count("] received") >= per_worker[name] > 0


def test_each_window_object_lands_once_and_the_sum_equals_the_truth(
    backfill: dict[str, Any], stack: CeleryDeployment, bucket: S3Bucket, emulator: EmulatorProcess
) -> None:
    windows = split_interval(*RANGE, timedelta(hours=WINDOW_HOURS))
    keys = [key for key in bucket.object_keys() if key.startswith("voicetrack/backfill/")]
    assert keys == sorted(window_key(window) for window in windows)
    for window in windows:
        ids = message_ids(bucket.read(window_key(window)))
        truth = emulator.truth(date_start=window["date_start"], date_end=window["date_end"])
        assert len(ids) == len(set(ids)), f"duplicate lines in {window}"
        assert sorted(ids) == [message["messageId"] for message in truth]  # the truth is in id order
    total = len(emulator.truth(date_start=RANGE[0], date_end=RANGE[1]))
    assert xcom(stack, backfill["run_path"], "total_records") == total > 0
    FIGURES["backfill_records"] = total


def test_the_pool_caps_the_searches_in_flight_across_workers(
    backfill: dict[str, Any], stack: CeleryDeployment
) -> None:
    windows = task_instances(stack, backfill["run_path"], "extract_window")
    assert {(ti["pool"], ti["pool_slots"]) for ti in windows} == {(POOL, 2)}
    most = backfill["stats"]["search_in_flight_max"]
    FIGURES["max_searches_in_flight"] = most
    FIGURES["pool_size"] = POOL_SIZE
    assert 1 <= most <= POOL_SIZE
    # Each task kept at most min(connection's 4, pool_slots 2) requests in flight, and said so.
    task_log = stack.home / "logs" / f"dag_id={BACKFILL}" / f"run_id={backfill['run_path'].rsplit('/', 1)[1]}"
    logs = [path.read_text() for path in task_log.glob("task_id=extract_window/*/attempt=1.log")]
    assert len(logs) == len(windows)
    assert all("Keeping at most 2 requests in flight: the connection allows 4" in log for log in logs)


# -- 2. the gate: a deferred wait that survives a triggerer restart ------------------------------


@pytest.fixture(scope="module")
def gate(stack: CeleryDeployment, emulator: EmulatorProcess) -> dict[str, Any]:
    """
    Trigger the gate DAG; once the sensor is deferred, stop the triggerer, check the sensor stays
    deferred, start a new triggerer and make the calls unsettled again (an emulator reset restarts
    the status clock), so the new triggerer has to wait too; then wait for the run to end.
    """
    run_path = trigger(stack, GATE, {})
    seen: list[str | None] = []

    def sensor_state() -> str | None:
        stack.assert_running()
        state = stack.api("GET", f"{run_path}/taskInstances/wait_for_calls")["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if all(s in (None, "scheduled", "queued") for s in seen):
            emulator.reset()  # the calls stay unsettled until the sensor has started
        return state if state == "deferred" else None

    wait_until(sensor_state, timeout=300, what="the sensor to defer", every=0.5)
    first_triggerer = wait_until(
        lambda: (stack.api("GET", f"{run_path}/taskInstances/wait_for_calls").get("triggerer_job") or {}).get(
            "id"
        ),
        timeout=60,
        what="a triggerer to take the trigger",
    )
    folder = stack.home / "logs" / f"dag_id={GATE}" / f"run_id={run_path.rsplit('/', 1)[1]}"
    first_log = folder / "task_id=wait_for_calls" / f"attempt=1.log.trigger.{first_triggerer}.log"
    wait_until(
        lambda: "not in a terminal status yet" in first_log.read_text(),
        timeout=120,
        what="the first triggerer to poll calls in progress",
    )
    stack.stop_service("triggerer")
    # Without a triggerer nothing watches the calls: the sensor stays deferred.
    time.sleep(3)
    state_without_triggerer = stack.api("GET", f"{run_path}/taskInstances/wait_for_calls")["state"]
    stack.start_service("triggerer")

    def new_triggerer() -> bool:
        jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob"})["jobs"]
        return any(job["id"] != first_triggerer and job["state"] == "running" for job in jobs)

    wait_until(new_triggerer, timeout=180, what="the new triggerer to run")
    emulator.reset()  # the calls are in progress again: the new triggerer has to wait as well
    state = wait_until(lambda: finished(stack, run_path), timeout=300, what="the gate run", every=0.5)
    return {
        "run_path": run_path,
        "run_id": run_path.rsplit("/", 1)[1],
        "state": state,
        "seen": seen,
        "first_triggerer": first_triggerer,
        "state_without_triggerer": state_without_triggerer,
    }


def test_gate_run_succeeds_after_a_triggerer_restart(gate: dict[str, Any]) -> None:
    assert gate["state"] == "success", gate
    assert gate["state_without_triggerer"] == "deferred"


def test_the_new_triggerer_resumes_the_wait(gate: dict[str, Any], stack: CeleryDeployment) -> None:
    triggerers = stack.api("GET", "/jobs", params={"job_type": "TriggererJob"})["jobs"]
    later = [job["id"] for job in triggerers if job["id"] != gate["first_triggerer"]]
    assert len(later) == 1, triggerers
    folder = stack.home / "logs" / f"dag_id={GATE}" / f"run_id={gate['run_id']}" / "task_id=wait_for_calls"
    resumed = (folder / f"attempt=1.log.trigger.{later[0]}.log").read_text()
    # The new triggerer polled calls still in progress, then fired.
    assert "messages are not in a terminal status yet" in resumed
    assert "Trigger fired event" in resumed
    assert (folder / f"attempt=1.log.trigger.{gate['first_triggerer']}.log").exists()


def test_the_gate_extraction_runs_on_a_celery_worker(
    gate: dict[str, Any], stack: CeleryDeployment, bucket: S3Bucket, emulator: EmulatorProcess
) -> None:
    (extract,) = task_instances(stack, gate["run_path"], "extract_campaign")
    assert extract["state"] == "success"
    assert extract["hostname"] in stack.workers
    summary = xcom(stack, gate["run_path"], "extract_campaign")
    truth = emulator.truth(date_start=GATE_DAY[0], date_end=GATE_DAY[1], campaign_tracking_id=GATE_CAMPAIGN)
    key = summary["path"].removeprefix(f"s3://{S3_BUCKET}/")
    assert sorted(message_ids(bucket.read(key))) == [message["messageId"] for message in truth]


# -- 3. a worker killed mid-extraction -----------------------------------------------------------


@pytest.fixture(scope="module")
def killed(stack: CeleryDeployment, emulator: EmulatorProcess, bucket: S3Bucket) -> dict[str, Any]:
    """
    Run the backfill over one window with slow searches; once the window's first page has been
    answered (its other pages are requested only then, so a third search, after the count of the
    calls not yet final and page 0, means the messages are being streamed to the S3 object),
    SIGKILL its worker's whole process tree.
    """
    window_range = ("2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z")
    calls_finished(emulator, window_range)
    emulator.set_faults(latency_ms=4000)
    run_path = trigger(
        stack, BACKFILL, {"date_start": window_range[0], "date_end": window_range[1], "window_hours": 24}
    )

    def streaming() -> dict[str, Any] | None:
        stack.assert_running()
        if emulator.stats()["requests"].get(SEARCH, 0) < 3:
            return None
        running = [
            ti
            for ti in task_instances(stack, run_path, "extract_window")
            if ti["state"] == "running" and ti["hostname"] in stack.workers
        ]
        return running[0] if running else None

    victim = wait_until(streaming, timeout=300, what="an extraction streaming to S3", every=0.3)
    worker = victim["hostname"]
    window = split_interval(*window_range, timedelta(hours=24))[victim["map_index"]]
    stack.stop_service(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    keys_after_kill = bucket.object_keys()
    emulator.set_faults(latency_ms=0)
    state = wait_until(lambda: finished(stack, run_path), timeout=400, what="the run after the kill")
    return {
        "run_path": run_path,
        "state": state,
        "worker": worker,
        "map_index": victim["map_index"],
        "window": window,
        "keys_after_kill": keys_after_kill,
        "recovery_seconds": time.monotonic() - killed_at,
    }


def test_the_killed_window_is_retried_on_the_other_worker(
    killed: dict[str, Any], stack: CeleryDeployment
) -> None:
    assert killed["state"] == "success"
    (ti,) = [
        ti
        for ti in task_instances(stack, killed["run_path"], "extract_window")
        if ti["map_index"] == killed["map_index"]
    ]
    (survivor,) = [name for name in stack.workers if name != killed["worker"]]
    assert ti["try_number"] == 2
    assert ti["hostname"] == survivor
    FIGURES["kill_recovery_seconds"] = round(killed["recovery_seconds"], 1)


def test_the_retry_writes_the_complete_object_without_duplicates(
    killed: dict[str, Any], bucket: S3Bucket, emulator: EmulatorProcess
) -> None:
    key = window_key(killed["window"])
    # Nothing at the final path while the killed attempt had it half written.
    assert key not in killed["keys_after_kill"]
    ids = message_ids(bucket.read(key))
    truth = emulator.truth(date_start=killed["window"]["date_start"], date_end=killed["window"]["date_end"])
    assert len(ids) == len(set(ids))
    assert sorted(ids) == [message["messageId"] for message in truth]


# -- 4. secrets ----------------------------------------------------------------------------------


def test_no_secret_in_any_process_output_or_task_log(
    stack: CeleryDeployment, emulator: EmulatorProcess, backfill: dict[str, Any], gate: dict[str, Any]
) -> None:
    basic = base64.b64encode(f"{emulator.client_id}:{emulator.client_secret}".encode()).decode()
    hits, scanned = stack.scan_logs({"client secret": emulator.client_secret, "Basic credentials": basic})
    assert hits == []
    # The scan read what it claims: every service's and worker's output, and the runs' task logs.
    for service in stack.commands:
        assert scanned[stack.log_path(service)].strip(), f"{service} wrote no output"
    task_logs = [path for path in scanned if path.name.startswith("attempt=")]
    assert sum(f"dag_id={BACKFILL}" in str(path) for path in task_logs) >= 14
    assert any(f"dag_id={GATE}" in str(path) for path in task_logs)
