"""
The event-driven example DAGs under a real Airflow deployment: scheduler, DAG processor, triggerer
and API server as processes, ``VoiceTrackEventTrigger`` watchers polling two emulators.

1. ``example_voicetrack_on_campaign_finished`` at the default ``poll_interval`` (60 s), on its own
   emulator whose calls finish 30 s after a reset made just before the watcher starts: exactly one
   run, whose payload equals the emulator's truth, and the delay from the campaign's last final
   status (watched from this test) to the run's start, printed.
2. ``example_voicetrack_on_calls_finished`` with 10 s windows polled every 2 s, while this test adds
   calls (each final within 6 s): every window is announced once, in order, with the emulator's
   counts, and each run extracts what was announced.
3. The triggerer is restarted (SIGTERM): on Airflow 3.3 the watchers resume from the asset state
   store, so no window and not the campaign is announced again.
4. Every API call of the windows watcher fails (403): it keeps running and fires nothing, then
   announces again once the faults are cleared.
5. 50 identical watchers on 50 assets, on a third emulator whose calls never settle: the triggerer
   runs them as one shared poll (Airflow 3.3), one request per poll interval.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow_deployment import REPO, AirflowDeployment, wait_until

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

WINDOWS_DAG, CAMPAIGN_DAG = "example_voicetrack_on_calls_finished", "example_voicetrack_on_campaign_finished"
WINDOWS_ASSET, CAMPAIGN_ASSET = "voicetrack_calls_settled", "voicetrack_campaign_finished"
CAMPAIGN = CAMPAIGNS[0].tracking_id
WINDOW_S, WINDOWS_POLL_S = 10, 2
CAMPAIGN_SETTLE_S = 30.0
#: calls added per second while the windows watcher runs, each final within ARRIVAL_SETTLE_S
ARRIVALS_PER_S, ARRIVAL_SETTLE_S = 3, 6.0


def by_status(messages: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(m["status"]["status"] for m in messages)
    return {status: counts.get(status, 0) for status in sorted(DEFAULT_TERMINAL_STATUSES)}


def api_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Arrivals:
    """New calls created now on an emulator, ``ARRIVALS_PER_S`` a second, from a thread."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.emu = emu
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self.emu.add_messages(ARRIVALS_PER_S)

    def __enter__(self) -> Arrivals:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def windows_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=100, settle_seconds=ARRIVAL_SETTLE_S) as emu:
        yield emu


@pytest.fixture(scope="module")
def campaign_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=2_000, settle_seconds=CAMPAIGN_SETTLE_S) as emu:
        yield emu


@pytest.fixture(scope="module")
def pending_emulator() -> Iterator[EmulatorProcess]:
    """Calls that stay in progress for the whole test: every poll is a steady-state poll."""
    with EmulatorProcess(messages=500, settle_seconds=10**7) as emu:
        yield emu


@pytest.fixture(scope="module")
def airflow(
    deployment_factory: Callable[..., AirflowDeployment],
    windows_emulator: EmulatorProcess,
    campaign_emulator: EmulatorProcess,
    pending_emulator: EmulatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowDeployment:
    """A deployment with an empty DAGs folder: each test copies its example DAG in when it starts."""
    dags = tmp_path_factory.mktemp("dags")
    start = int(time.time()) // WINDOW_S * WINDOW_S
    return deployment_factory(
        dags,
        {
            "AIRFLOW_CONN_VOICETRACK_DEFAULT": windows_emulator.connection_json(max_retry_wait=0.05),
            "AIRFLOW_CONN_VOICETRACK_CAMPAIGN": campaign_emulator.connection_json(max_retry_wait=0.05),
            "AIRFLOW_CONN_VOICETRACK_PENDING": pending_emulator.connection_json(),
            "VOICETRACK_WATCH_CONN_ID": "voicetrack_campaign",
            "VOICETRACK_WATCH_CAMPAIGN": CAMPAIGN,
            "VOICETRACK_WATCH_WINDOW_SECONDS": str(WINDOW_S),
            "VOICETRACK_WATCH_POLL_INTERVAL": str(WINDOWS_POLL_S),
            "VOICETRACK_WATCH_START": datetime.fromtimestamp(start, timezone.utc).isoformat(),
            "VOICETRACK_OUTPUT_BASE": tmp_path_factory.mktemp("output").as_uri(),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        },
    )


def add_dag(airflow: AirflowDeployment, dag_id: str) -> None:
    """Copy the example DAG into the deployment's DAGs folder and wait until it is parsed."""
    dags_folder = Path(airflow.env["AIRFLOW__CORE__DAGS_FOLDER"])
    shutil.copy(REPO / "example_dags" / f"{dag_id}.py", dags_folder)
    wait_until(lambda: airflow.api("GET", f"/dags/{dag_id}"), timeout=120, what=f"{dag_id} to be parsed")


def asset_event_records(airflow: AirflowDeployment, name: str) -> list[dict[str, Any]]:
    """The asset's events as the REST API lists them, oldest first."""
    [asset] = [a for a in airflow.api("GET", "/assets", params={"limit": 100})["assets"] if a["name"] == name]
    return airflow.api(
        "GET", "/assets/events", params={"asset_id": asset["id"], "limit": 1000, "order_by": "timestamp"}
    )["asset_events"]


def asset_events(airflow: AirflowDeployment, name: str) -> list[dict[str, Any]]:
    """The payloads the asset's watcher fired, oldest first."""
    return [event["extra"]["payload"] for event in asset_event_records(airflow, name)]


def dag_runs(airflow: AirflowDeployment, dag_id: str) -> list[dict[str, Any]]:
    return airflow.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]


def xcom(airflow: AirflowDeployment, dag_id: str, run_id: str, task_id: str) -> Any:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return airflow.api("GET", path)["value"]


def settled_windows(airflow: AirflowDeployment, at_least: int, timeout: float) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        airflow.assert_running()
        events = [e for e in asset_events(airflow, WINDOWS_ASSET) if e["count"]]
        return events if len(events) >= at_least else None

    return wait_until(enough, timeout=timeout, what=f"{at_least} settled windows", every=1)


def assert_each_window_once_with_the_truth(events: list[dict[str, Any]], emu: EmulatorProcess) -> None:
    starts = [event["window_start"] for event in events]
    assert len(starts) == len(set(starts)), f"a window was announced twice: {starts}"
    assert starts == sorted(starts)
    for event in events:
        assert api_time(event["window_end"]) - api_time(event["window_start"]) == WINDOW_S
        truth = emu.truth(event["window_start"], event["window_end"])
        assert event["by_status"] == by_status(truth) and event["count"] == len(truth) > 0


def test_a_finished_campaign_starts_exactly_one_run_with_the_emulators_truth(
    airflow: AirflowDeployment, campaign_emulator: EmulatorProcess
) -> None:
    campaign_emulator.reset()  # the campaign's calls are in progress again, for up to 30 s
    add_dag(airflow, CAMPAIGN_DAG)
    finished_at = wait_until(
        lambda: (
            all(
                m["status"]["status"] in DEFAULT_TERMINAL_STATUSES
                for m in campaign_emulator.truth(campaign_tracking_id=CAMPAIGN)
            )
            and time.time()
        ),
        timeout=120,
        what="the campaign's calls to finish",
        every=0.25,
    )
    run = wait_until(lambda: dag_runs(airflow, CAMPAIGN_DAG), timeout=180, what="the campaign run")[0]
    run = wait_until(
        lambda: (
            (r := airflow.api("GET", f"/dags/{CAMPAIGN_DAG}/dagRuns/{run['dag_run_id']}"))["state"]
            == "success"
            and r
        ),
        timeout=120,
        what="the campaign run to succeed",
    )
    [event] = asset_event_records(airflow, CAMPAIGN_ASSET)
    delay = api_time(run["start_date"]) - finished_at
    print(
        f"\ncampaign: last call final -> run started: {delay:.1f} s (poll_interval 60 s); of which "
        f"final -> asset event {api_time(event['timestamp']) - finished_at:.1f} s, "
        f"asset event -> run started {api_time(run['start_date']) - api_time(event['timestamp']):.1f} s"
    )
    payload = xcom(airflow, CAMPAIGN_DAG, run["dag_run_id"], "report_campaign")
    truth = campaign_emulator.truth(campaign_tracking_id=CAMPAIGN)
    assert payload["by_status"] == by_status(truth) and payload["count"] == len(truth) > 0
    assert payload["campaign_tracking_id"] == CAMPAIGN
    assert len(dag_runs(airflow, CAMPAIGN_DAG)) == 1


def test_settled_windows_are_announced_once_each_and_survive_a_triggerer_restart(
    airflow: AirflowDeployment, windows_emulator: EmulatorProcess
) -> None:
    add_dag(airflow, WINDOWS_DAG)
    with Arrivals(windows_emulator):
        before = settled_windows(airflow, at_least=3, timeout=180)
        assert_each_window_once_with_the_truth(before, windows_emulator)

        airflow.stop_service("triggerer")
        airflow.start_service("triggerer")
        after = settled_windows(airflow, at_least=len(before) + 3, timeout=180)
    assert_each_window_once_with_the_truth(after, windows_emulator)
    # No gap across the restart: each window with calls follows the one before it.
    assert all(later["window_start"] == earlier["window_end"] for earlier, later in itertools.pairwise(after))
    # The campaign was not announced again either, though its watcher was restarted too.
    assert len(asset_events(airflow, CAMPAIGN_ASSET)) == 1

    # The runs extract every announced window, each exactly the calls announced for it.
    announced = {event["window_start"] for event in after}

    def runs_done() -> list[dict[str, Any]] | None:
        runs = dag_runs(airflow, WINDOWS_DAG)
        if not runs or any(r["state"] not in ("success", "failed") for r in runs):
            return None
        covered = {
            w["window_start"]
            for r in runs
            if r["state"] == "success"
            for w in xcom(airflow, WINDOWS_DAG, r["dag_run_id"], "announced_range")["windows"]
        }
        return runs if covered >= announced else None

    runs = wait_until(runs_done, timeout=180, what="runs that extracted every announced window")
    assert all(r["state"] == "success" for r in runs), [r["state"] for r in runs]
    for run in runs:
        windows = xcom(airflow, WINDOWS_DAG, run["dag_run_id"], "announced_range")["windows"]
        summary = xcom(airflow, WINDOWS_DAG, run["dag_run_id"], "extract_announced_windows")
        assert summary["records"] == sum(w["count"] for w in windows)
        assert summary["non_terminal"] == 0


def test_a_watcher_whose_calls_fail_keeps_running_and_fires_nothing(
    airflow: AirflowDeployment, windows_emulator: EmulatorProcess
) -> None:
    windows_emulator.set_faults(forbidden_rate=1.0)
    try:
        with Arrivals(windows_emulator):
            time.sleep(WINDOWS_POLL_S)  # a poll under way when the faults began may still announce
            before = len(asset_events(airflow, WINDOWS_ASSET))
            time.sleep(8 * WINDOWS_POLL_S)
            airflow.assert_running()
            assert len(asset_events(airflow, WINDOWS_ASSET)) == before
            hits, _ = airflow.scan_logs({"failed poll": "Voice tracking poll failed (VoiceTrackAuthError"})
            assert hits, "the watcher did not log its failed polls"
            windows_emulator.clear_faults()
            settled_windows(airflow, at_least=before + 1, timeout=120)
    finally:
        windows_emulator.clear_faults()


SHARED_WATCHERS = 50
SHARED_DAG = f"""
from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_voicetrack.triggers.voicetrack import VoiceTrackEventTrigger

assets = [
    Asset(
        f"pending_calls_{{i}}",
        watchers=[
            AssetWatcher(
                name=f"pending_calls_watcher_{{i}}",
                trigger=VoiceTrackEventTrigger(
                    asset_name=f"pending_calls_{{i}}",
                    voicetrack_conn_id="voicetrack_pending",
                    window=86400,
                    start="2026-11-01T00:00:00Z",
                    poll_interval={WINDOWS_POLL_S},
                ),
            )
        ],
    )
    for i in range({SHARED_WATCHERS})
]

with DAG(dag_id="shared_watchers", schedule=assets):
    pass
"""


def test_identical_watchers_share_one_poll_in_the_triggerer(
    airflow: AirflowDeployment, pending_emulator: EmulatorProcess
) -> None:
    (Path(airflow.env["AIRFLOW__CORE__DAGS_FOLDER"]) / "shared_watchers.py").write_text(SHARED_DAG)
    wait_until(
        lambda: airflow.api("GET", "/dags/shared_watchers"), timeout=120, what="shared_watchers parsed"
    )

    def running_watchers() -> int | None:
        """Event-trigger rows a triggerer has taken, from the metadata DB (SQLite)."""
        airflow.assert_running()
        with contextlib.closing(
            sqlite3.connect(f"file:{airflow.home / 'airflow.db'}?mode=ro", uri=True)
        ) as db:
            [(count,)] = db.execute(
                "SELECT count(*) FROM trigger WHERE triggerer_id IS NOT NULL AND classpath LIKE ?",
                ("%VoiceTrackEventTrigger",),
            ).fetchall()
        return count if count >= SHARED_WATCHERS + 2 else None

    wait_until(running_watchers, timeout=120, what=f"{SHARED_WATCHERS} more watchers in the triggerer")
    time.sleep(10)  # every watcher subscribed (the triggerer loads new triggers every second or so)
    pending_emulator.reset_stats()
    started = time.monotonic()
    time.sleep(10 * WINDOWS_POLL_S)
    requests = pending_emulator.stats()["requests"]
    elapsed = time.monotonic() - started
    api = sum(count for route, count in requests.items() if " /voice/" in route)
    per_interval = api / (elapsed / WINDOWS_POLL_S)
    print(f"\n{SHARED_WATCHERS} identical watchers in the triggerer: {per_interval:.1f} requests per poll")
    assert per_interval < 2, f"{SHARED_WATCHERS} identical watchers made {per_interval:.1f} requests per poll"
