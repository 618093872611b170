"""
Event-driven extraction: run the moment a creation window's calls have all finished.

No schedule and no waiting task: the Asset ``voicetrack_calls_settled`` has a watcher, a
``VoiceTrackEventTrigger`` that the triggerer polls every ``poll_interval``. When the next creation
window ``[start, end)`` (of ``window`` seconds) has ended and none of its calls is still in
progress, it announces the window once, with its counts per status; the scheduler then starts this
DAG, which extracts exactly the announced windows with ``VoiceTrackingOperator`` (every call in
them already final, so the operator's own wait costs one request) to
``<base>/voicetrack/settled/``, one object per run named after its range.

Several windows announced before the scheduler starts a run arrive together in that run
(``triggering_asset_events``); they are consecutive, so the run extracts their union. Delivery is
at least once (a window can be announced again after a triggerer crash): a rerun of the same range
replaces the same object atomically, so the result is the same.

Tuning, from the environment when the file is parsed: ``VOICETRACK_WATCH_WINDOW_SECONDS`` (default
3600), ``VOICETRACK_WATCH_POLL_INTERVAL`` (default 60) and ``VOICETRACK_WATCH_START`` (ISO-8601 on the
window grid; default: the window the watcher first runs in). The output base is
``VOICETRACK_OUTPUT_BASE`` as in ``example_voicetrack_extract``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
from airflow_voicetrack.triggers.voicetrack import VoiceTrackEventTrigger

OUTPUT_BASE = os.environ.get(
    "VOICETRACK_OUTPUT_BASE", (Path(__file__).resolve().parent.parent / ".demo-output").as_uri()
).rstrip("/")
OUTPUT_CONN_ID = os.environ.get("VOICETRACK_OUTPUT_CONN_ID") or None
ASSET_NAME = "voicetrack_calls_settled"

calls_settled = Asset(
    ASSET_NAME,
    watchers=[
        AssetWatcher(
            name="voicetrack_settled_windows",
            trigger=VoiceTrackEventTrigger(
                asset_name=ASSET_NAME,
                window=int(os.environ.get("VOICETRACK_WATCH_WINDOW_SECONDS", "3600")),
                poll_interval=float(os.environ.get("VOICETRACK_WATCH_POLL_INTERVAL", "60")),
                start=os.environ.get("VOICETRACK_WATCH_START") or None,
            ),
        )
    ],
)


@task
def announced_range(*, triggering_asset_events: Any = None) -> dict[str, Any]:
    """
    The range of the windows this run was started for, and their counts per status.

    :return: ``date_start``, ``date_end`` (the union of the announced windows), ``windows`` (each
        announcement's payload) and ``count`` (their calls).
    """
    windows = sorted(
        (event.extra["payload"] for event in triggering_asset_events[calls_settled]),
        key=lambda payload: payload["window_start"],
    )
    if not windows:
        raise ValueError(f"{ASSET_NAME} has no event for this run: it was not started by the watcher.")
    return {
        "date_start": windows[0]["window_start"],
        "date_end": windows[-1]["window_end"],
        "windows": windows,
        "count": sum(window["count"] for window in windows),
    }


with DAG(
    dag_id="example_voicetrack_on_calls_finished",
    description="Extract each creation window the moment its calls have all finished",
    schedule=[calls_settled],
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    tags=["voicetrack", "example", "event-driven"],
    doc_md=__doc__,
):
    announced = announced_range()
    extract = VoiceTrackingOperator(
        task_id="extract_announced_windows",
        date_start="{{ ti.xcom_pull(task_ids='announced_range')['date_start'] }}",
        date_end="{{ ti.xcom_pull(task_ids='announced_range')['date_end'] }}",
        output_path=f"{OUTPUT_BASE}/voicetrack/settled/",
        output_conn_id=OUTPUT_CONN_ID,
        poke_interval=10,
    )
    announced >> extract
