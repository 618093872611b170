"""VoiceMessageStatusSensor and its trigger against the emulator over HTTP, with real Airflow.

Statuses progress on the emulator's clock: it settles every message within :data:`SETTLE` seconds
after a reset, and the tests freeze that clock and let it tick :data:`TICK` seconds after each API
request, so a sensor sees the calls progress one step per poke, however loaded the machine is, and
no test sleeps through the settle window. DAGs run with ``dag.test()``, which runs a deferred
task's trigger inline.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum
import pytest
import support
from airflow.sdk import DAG, task
from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred
from airflow.utils.state import DagRunState, TaskInstanceState
from support.dags import Run

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor
from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger
from airflow_voicetrack.waiting import FAILED_IDS_CAP

START, END = "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"


#: Seconds (emulator time) after a reset by which every message is final.
SETTLE = 60.0
#: Seconds the emulator's frozen clock steps after each API request: a few pokes cover SETTLE.
TICK = 15.0


@pytest.fixture(scope="module")
def progressing_settings() -> dict[str, Any]:
    """300 messages, every one final :data:`SETTLE` s (emulator time) after a reset."""
    return {"messages": 300, "settle_seconds": SETTLE}


@pytest.fixture
def progressing(progressing: EmulatorProcess) -> EmulatorProcess:
    """The progressing emulator with its clock frozen, ticking :data:`TICK` s per API request."""
    progressing.freeze_clock(tick=TICK)
    return progressing


SEARCH = "POST /voice/tracking"
GET_ONE = "GET /voice/tracking/{message_id}"
#: Runs a DAG through ``dag.test()`` (the ``run_dag`` fixture of ``tests/integration/conftest.py``).
RunDag = Callable[[DAG], Run]


def by_status(messages: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(m["status"]["status"] for m in messages)
    return {status: counts.get(status, 0) for status in sorted(DEFAULT_TERMINAL_STATUSES)}


def wait_until_settled(emu: EmulatorProcess) -> None:
    """Step the emulator's clock past the settle window: every message is terminal."""
    emu.advance_clock(SETTLE)
    assert all(m["status"]["status"] in DEFAULT_TERMINAL_STATUSES for m in emu.truth(START, END))


def api_requests(emu: EmulatorProcess, route: str = SEARCH) -> int:
    return int(emu.stats()["requests"].get(route, 0))


def calls_placed_when_started(emu: EmulatorProcess) -> Callable[[Any], None]:
    """A sensor's ``pre_execute`` that restarts the emulator's status progression when the sensor
    first starts (not when it resumes or is rescheduled), its clock frozen and ticking per request:
    every call is still in progress at the first poke, as in the system test."""
    started: list[bool] = []

    def place_calls(context: Any) -> None:
        if not started:
            started.append(True)
            emu.reset()
            emu.freeze_clock(tick=TICK)

    return place_calls


def sensor_dag(emu: EmulatorProcess, dag_id: str, **sensor_kwargs: Any) -> tuple[DAG, list[Any], list[Any]]:
    """A DAG whose sensor "places the calls" when it starts (:func:`calls_placed_when_started`),
    waits, then hands the summary on.

    :return: the DAG, the list the downstream task appends the summary to, and the list the
        sensor's failure callback appends its exception to.
    """
    summaries: list[Any] = []
    errors: list[Any] = []
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
        wait = VoiceMessageStatusSensor(
            task_id="wait",
            on_failure_callback=lambda context: errors.append(context["exception"]),
            pre_execute=calls_placed_when_started(emu),
            **{"poke_interval": 0.1, "timeout": 60, **sensor_kwargs},
        )

        @task
        def report(summary: dict[str, Any]) -> None:
            summaries.append(summary)

        report(wait.output)
    return dag, summaries, errors


def sensor_ti(run: Run) -> Any:
    return run.dag_run.get_task_instance("wait")


# -- the three modes under dag.test() -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_every_mode_succeeds_once_every_message_is_terminal(
    progressing: EmulatorProcess, run_dag: RunDag, mode: str
) -> None:
    mode_kwargs = {"deferrable": True} if mode == "deferrable" else {"mode": mode}
    dag, summaries, errors = sensor_dag(
        progressing, f"voicetrack_sensor_{mode}", date_start=START, date_end=END, **mode_kwargs
    )
    run = run_dag(dag)
    assert run.state == DagRunState.SUCCESS, errors
    truth = progressing.truth(START, END)
    assert summaries == [
        {
            "total": len(truth),
            "pending": 0,
            "by_status": by_status(truth),
            "failed_ids": {},
        }
    ]
    # It waited: the first poke (at the reset's instant) saw calls in progress and every poke stepped
    # the clock by TICK, so SETTLE / TICK waiting pokes of 1 search came before the final poke's 1 + 7.
    assert api_requests(progressing) >= SETTLE / TICK + 1 + len(DEFAULT_TERMINAL_STATUSES)


def test_ids_rendered_from_an_upstream_xcom_are_waited_for(
    progressing: EmulatorProcess, run_dag: RunDag
) -> None:
    ids = [m["messageId"] for m in progressing.truth(START, END)[:25]]
    summaries: list[Any] = []
    with DAG(
        "voicetrack_sensor_ids", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")
    ) as dag:

        @task
        def place_calls() -> list[str]:
            return ids

        wait = VoiceMessageStatusSensor(
            task_id="wait",
            message_ids="{{ ti.xcom_pull(task_ids='place_calls') }}",
            poke_interval=0.1,
            timeout=60,
            pre_execute=calls_placed_when_started(progressing),
        )

        @task
        def report(summary: dict[str, Any]) -> None:
            summaries.append(summary)

        place_calls() >> wait
        report(wait.output)

    assert run_dag(dag).state == DagRunState.SUCCESS
    final = [m for m in progressing.truth(START, END) if m["messageId"] in set(ids)]
    assert summaries == [{"total": 25, "pending": 0, "by_status": by_status(final), "failed_ids": {}}]


# -- failures, timeouts and errors --------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_failure_statuses_fail_fast_without_retry(
    progressing: EmulatorProcess, run_dag: RunDag, deferrable: bool
) -> None:
    # Busy, NoAnswer, Terminated and Unknown are not terminal here: those messages stay pending for
    # good, so the sensor can only end by failing fast on the first Failed or Unsent message.
    dag, summaries, errors = sensor_dag(
        progressing,
        f"voicetrack_sensor_failure_{deferrable}",
        date_start=START,
        date_end=END,
        terminal_statuses={"Completed", "Failed", "Unsent"},
        failure_statuses={"Failed", "Unsent"},
        retries=2,
        deferrable=deferrable,
    )
    run = run_dag(dag)
    assert run.state == DagRunState.FAILED
    ti = sensor_ti(run)
    assert (ti.state, ti.try_number) == (TaskInstanceState.FAILED, 1)
    assert summaries == []
    [error] = errors
    assert isinstance(error, AirflowFailException)
    assert "still pending" in str(error)
    assert "ended in failure statuses" in str(error)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_timeout_raises_sensor_timeout(
    progressing: EmulatorProcess, run_dag: RunDag, deferrable: bool
) -> None:
    # Only Completed is terminal: the Busy and NoAnswer messages never are, so the wait cannot end
    # before its 1 s timeout, however slowly the machine runs.
    dag, summaries, errors = sensor_dag(
        progressing,
        f"voicetrack_sensor_timeout_{deferrable}",
        date_start=START,
        date_end=END,
        terminal_statuses={"Completed"},
        poke_interval=0.3,
        timeout=1,
        retries=2,
        deferrable=deferrable,
    )
    run = run_dag(dag)
    assert run.state == DagRunState.FAILED
    assert sensor_ti(run).try_number == 1
    [error] = errors
    assert isinstance(error, AirflowSensorTimeout)
    assert summaries == []


def test_an_error_event_is_raised_with_its_message(
    progressing: EmulatorProcess, run_dag: RunDag, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "not-the-secret-0123456789"
    wrong = progressing.connection_json().replace(progressing.client_secret, secret)
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", wrong)
    dag, _, errors = sensor_dag(
        progressing, "voicetrack_sensor_error", date_start=START, date_end=END, deferrable=True
    )
    assert run_dag(dag).state == DagRunState.FAILED
    [error] = errors
    assert isinstance(error, AirflowException)
    assert "VoiceMessageStatusTrigger failed: VoiceTrackAuthError" in str(error)
    assert secret not in str(error)


# -- the trigger on its own ---------------------------------------------------------------------


def deferred_trigger(**sensor_kwargs: Any) -> VoiceMessageStatusTrigger:
    """The trigger a deferrable sensor hands to the triggerer, rebuilt from its serialization."""
    sensor = VoiceMessageStatusSensor(task_id="wait", deferrable=True, **sensor_kwargs)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})  # type: ignore[arg-type]
    classpath, kwargs = info.value.trigger.serialize()
    return import_string(classpath)(**kwargs)


def first_event(trigger: VoiceMessageStatusTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        return (await anext(trigger.run())).payload

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def test_trigger_rebuilt_from_its_serialization_waits_for_the_messages(progressing: EmulatorProcess) -> None:
    trigger = deferred_trigger(
        date_start=START, date_end=END, failure_statuses={"Failed"}, failure_threshold=0.5, poke_interval=0.3
    )
    event = first_event(trigger)
    truth = progressing.truth(START, END)
    failed = [m["messageId"] for m in truth if m["status"]["status"] == "Failed"]
    assert event["status"] == "success"
    assert event["summary"]["by_status"] == by_status(truth)
    assert set(event["summary"]["failed_ids"]["Failed"]) <= set(failed)
    assert len(event["summary"]["failed_ids"]["Failed"]) == min(len(failed), FAILED_IDS_CAP)


def test_trigger_stored_by_0_1_0_still_runs_after_an_upgrade(progressing: EmulatorProcess) -> None:
    # The kwargs 0.1.0's serialize() stored in the trigger table: flat, without target/criteria.
    stored = {
        "voicetrack_conn_id": "voicetrack_default",
        "message_ids": None,
        "date_start": START,
        "date_end": END,
        "filters": [],
        "campaign_id": None,
        "terminal_statuses": sorted(DEFAULT_TERMINAL_STATUSES),
        "failure_statuses": ["Failed"],
        "failure_threshold": 0.5,
        "missing": "fail",
        "wait_for_messages": False,
        "poke_interval": 0.3,
        "timeout_at": None,
    }
    trigger = import_string("airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger")(**stored)
    event = first_event(trigger)
    truth = progressing.truth(START, END)
    assert event["status"] == "success"
    assert event["summary"]["by_status"] == by_status(truth)
    assert event["summary"]["total"] == len(truth)


@pytest.mark.slow  # a fresh process whose every request takes 1.5 s: about 30 s
def test_trigger_never_blocks_the_event_loop(progressing: EmulatorProcess) -> None:
    """
    The triggerer warns when a trigger holds its loop for 0.2 s. Measured in a fresh process, as a
    triggerer runs (see ``support/trigger_loop_probe.py``): every emulator request takes 1.5 s
    there, and asyncio's debug mode reports any callback over 1 s, so a blocking request is caught
    and a loaded machine's CPU delays are not. The control run's blocking request proves the first.
    """
    probe = subprocess.run(
        [
            sys.executable,
            str(Path(support.__file__).parent / "trigger_loop_probe.py"),
            progressing.url,
            str(TICK),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "AIRFLOW_CONN_VOICETRACK_DEFAULT": progressing.connection_json()},
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["event"]["status"] == "success"
    assert result["event"]["summary"]["pending"] == 0
    assert result["slow"] == []
    assert len(result["control"]) == 1 and "took" in result["control"][0]


def test_trigger_turns_repeated_transient_errors_into_an_error_event(
    progressing: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", progressing.connection_json(max_retries=0))
    progressing.set_faults(error_burst=1000, error_status=503)
    event = first_event(deferred_trigger(date_start=START, date_end=END, poke_interval=0.1))
    assert event["status"] == "error"
    assert "3 transient errors in a row" in event["message"]
    assert api_requests(progressing) == 3


def test_trigger_backs_off_at_least_the_servers_retry_after(
    progressing: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", progressing.connection_json(max_retries=0))
    progressing.set_faults(rate_limit_rate=1.0, retry_after_mode="seconds", retry_after=1)
    began = time.monotonic()
    # Without Retry-After the back-off would be about 0.1 s, then 0.2 s.
    event = first_event(deferred_trigger(date_start=START, date_end=END, poke_interval=0.05))
    elapsed = time.monotonic() - began
    assert event["status"] == "error"
    assert "3 transient errors in a row" in event["message"] and "Retry-After: 1 s" in event["message"]
    assert api_requests(progressing) == 3
    assert elapsed >= 2.0  # two waits of at least the 1 s the server asked for


def test_trigger_waits_out_retry_after_no_later_than_its_timeout(
    progressing: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", progressing.connection_json(max_retries=0))
    progressing.set_faults(rate_limit_rate=1.0, retry_after_mode="seconds", retry_after=120)
    began = time.monotonic()
    event = first_event(deferred_trigger(date_start=START, date_end=END, poke_interval=0.05, timeout=2))
    assert event["status"] == "timeout"
    assert "last attempt failed" in event["message"]
    assert time.monotonic() - began < 60  # far from the 120 s the server asked for


def test_trigger_in_ids_mode_fails_on_an_unknown_id(progressing: EmulatorProcess) -> None:
    known = progressing.truth(START, END)[0]["messageId"]
    event = first_event(deferred_trigger(message_ids=[known, "no-such-message"], poke_interval=0.2))
    assert event["status"] == "failure"
    assert "no-such-message" in event["message"]


# -- request budget and ids mode, poke by poke ---------------------------------------------------


def poke(sensor: VoiceMessageStatusSensor) -> Any:
    return sensor.poke({})  # type: ignore[arg-type]


def requests_of_poke(emu: EmulatorProcess, sensor: VoiceMessageStatusSensor) -> tuple[Any, int]:
    """Poke once; :return: the result and the searches it cost (read after any page fetched ahead
    in the background would have arrived)."""
    emu.reset_stats()
    result = poke(sensor)
    time.sleep(0.3)
    return result, api_requests(emu)


@pytest.mark.parametrize("messages", [100, 20_000])
def test_search_pokes_cost_an_exact_number_of_requests(
    messages: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = len(DEFAULT_TERMINAL_STATUSES)
    with EmulatorProcess(messages=messages, settle_seconds=0) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json())

        # A waiting poke (Busy, NoAnswer, ... never become "Completed"): one counting search.
        waiting = VoiceMessageStatusSensor(
            task_id="waiting", date_start=START, date_end=END, terminal_statuses={"Completed"}
        )
        result, requests = requests_of_poke(emu, waiting)
        assert not result.is_done
        assert requests == 1

        # Waiting with failure statuses: the pending count plus one count per terminal status (T=1).
        waiting_failures = VoiceMessageStatusSensor(
            task_id="waiting_failures",
            date_start=START,
            date_end=END,
            terminal_statuses={"Completed"},
            failure_statuses={"Completed"},
            failure_threshold=0.99,
        )
        result, requests = requests_of_poke(emu, waiting_failures)
        assert not result.is_done
        assert requests == 1 + 1

        # A final poke: 1 pending count + T status counts + one one-page search per failure status
        # with failures (F), whatever the number of messages.
        for failure_statuses in ({"Completed"}, {"Completed", "Busy"}):
            final = VoiceMessageStatusSensor(
                task_id="final",
                date_start=START,
                date_end=END,
                failure_statuses=failure_statuses,
                failure_threshold=0.99,
            )
            result, requests = requests_of_poke(emu, final)
            assert result.is_done
            summary = result.xcom_value
            assert summary["total"] == messages
            assert len(summary["failed_ids"]["Completed"]) == FAILED_IDS_CAP
            failing = sum(1 for status in failure_statuses if summary["by_status"][status])
            assert failing == len(failure_statuses)
            assert requests == 1 + terminal + failing


def test_campaign_only_search_reports_failed_ids(progressing: EmulatorProcess) -> None:
    campaign_tracking_id = CAMPAIGNS[0].tracking_id
    wait_until_settled(progressing)
    truth = progressing.truth(campaign_tracking_id=campaign_tracking_id)
    completed = [m["messageId"] for m in truth if m["status"]["status"] == "Completed"]
    assert completed
    sensor = VoiceMessageStatusSensor(
        task_id="wait",
        campaign_tracking_id=campaign_tracking_id,
        failure_statuses={"Completed"},
        failure_threshold=0.99,
    )
    result, requests = requests_of_poke(progressing, sensor)
    assert result.is_done
    assert result.xcom_value["total"] == len(truth)
    ids = result.xcom_value["failed_ids"]["Completed"]
    assert len(ids) == min(len(completed), FAILED_IDS_CAP) and set(ids) <= set(completed)
    assert requests == 1 + len(DEFAULT_TERMINAL_STATUSES) + 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_filters_only_search_reports_failed_ids(progressing: EmulatorProcess, deferrable: bool) -> None:
    filters = [{"fieldName": "country", "searchTerm": "GR"}]
    wait_until_settled(progressing)
    truth = progressing.truth(filters=filters)
    failed = [m["messageId"] for m in truth if m["status"]["status"] == "Completed"]
    assert failed
    kwargs: dict[str, Any] = {
        "filters": filters,
        "failure_statuses": {"Completed"},
        "failure_threshold": 0.99,
    }
    if deferrable:
        event = first_event(deferred_trigger(poke_interval=0.2, **kwargs))
        assert event["status"] == "success"
        summary = event["summary"]
    else:
        summary = poke(VoiceMessageStatusSensor(task_id="wait", **kwargs)).xcom_value
    assert summary["total"] == len(truth)
    ids = summary["failed_ids"]["Completed"]
    assert len(ids) == min(len(failed), FAILED_IDS_CAP) and set(ids) <= set(failed)


def test_ids_mode_rechecks_only_ids_not_yet_terminal(progressing: EmulatorProcess) -> None:
    wait_until_settled(progressing)
    messages = progressing.truth(START, END)[:40]
    ids = [m["messageId"] for m in messages]
    # Only Completed is terminal: the other messages stay pending, whenever the pokes come.
    pending = [m["messageId"] for m in messages if m["status"]["status"] != "Completed"]
    assert 0 < len(pending) < 40
    sensor = VoiceMessageStatusSensor(task_id="wait", message_ids=ids, terminal_statuses={"Completed"})
    for checked in (ids, pending, pending):
        progressing.reset_stats()
        result = poke(sensor)
        assert not result.is_done
        assert api_requests(progressing, GET_ONE) == len(checked)
        assert sensor._ids.pending_ids() == pending  # type: ignore[union-attr]


def test_unknown_id_fails_naming_it(progressing: EmulatorProcess) -> None:
    known = progressing.truth(START, END)[0]["messageId"]
    sensor = VoiceMessageStatusSensor(task_id="wait", message_ids=[known, "no-such-message"])
    with pytest.raises(AirflowFailException, match=r"no-such-message.*missing='wait'"):
        poke(sensor)


def test_unknown_id_keeps_waiting_with_missing_wait(progressing: EmulatorProcess) -> None:
    known = progressing.truth(START, END)[0]["messageId"]
    sensor = VoiceMessageStatusSensor(task_id="wait", message_ids=[known, "no-such-message"], missing="wait")
    wait_until_settled(progressing)
    result = poke(sensor)
    assert not result.is_done
    assert result.xcom_value["missing_ids"] == ["no-such-message"]
    assert sensor._ids.pending_ids() == ["no-such-message"]  # type: ignore[union-attr]
