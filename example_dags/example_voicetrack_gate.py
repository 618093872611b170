"""
Gate on a campaign's calls: wait until they have all finished, extract them, report per status.

1. ``wait_for_calls``: a deferrable ``VoiceMessageStatusSensor`` waits, in the triggerer (no worker
   slot held), until every message of the campaign in the date range has a terminal status.
   Each poke costs a constant number of small requests however many calls the campaign has.
2. ``extract_campaign``: ``VoiceTrackingOperator`` writes the campaign's messages to
   ``<base>/voicetrack/campaigns/<campaign id>/`` (see ``example_voicetrack_extract`` for the base)
   and emits an Asset event for that folder.
3. ``count_by_status``: reads the object back through ``ObjectStoragePath`` and returns the number
   of messages per status.

Trigger it with a config to choose the campaign and the range, e.g.
``airflow dags trigger example_voicetrack_gate -c '{"campaign_tracking_id": "<tracking id>"}'``; the
defaults match the local emulator's data (campaign "Black Friday 2026", 2026-11-02).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, ObjectStoragePath, Param, task

from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor

OUTPUT_BASE = os.environ.get(
    "VOICETRACK_OUTPUT_BASE", (Path(__file__).resolve().parent.parent / ".demo-output").as_uri()
).rstrip("/")
OUTPUT_CONN_ID = os.environ.get("VOICETRACK_OUTPUT_CONN_ID") or None
#: Tracking id of the emulator's "Black Friday 2026" campaign.
DEMO_CAMPAIGN_TRACKING_ID = "456a29f3-8d99-53bc-aea6-33373cc58bac"


@task
def count_by_status(extract: dict[str, Any]) -> dict[str, int]:
    """
    Read the extracted JSON-lines object back and count its messages per status.

    :param extract: the summary ``VoiceTrackingOperator`` returned (``path``, ``conn_id``, ...).
    """
    counts: Counter[str] = Counter()
    with ObjectStoragePath(extract["path"], conn_id=extract["conn_id"]).open("r") as lines:
        for line in lines:
            counts[json.loads(line)["status"]["status"]] += 1
    return dict(sorted(counts.items()))


with DAG(
    dag_id="example_voicetrack_gate",
    description="Wait for a campaign's calls to finish, extract them, count them per status",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    params={
        "campaign_tracking_id": Param(
            DEMO_CAMPAIGN_TRACKING_ID, type="string", description="The campaign's tracking id (not its name)"
        ),
        "date_start": Param("2026-11-02T00:00:00Z", type="string", description="Range start (inclusive)"),
        "date_end": Param("2026-11-03T00:00:00Z", type="string", description="Range end (exclusive)"),
    },
    tags=["voicetrack", "example"],
    doc_md=__doc__,
):
    wait_for_calls = VoiceMessageStatusSensor(
        task_id="wait_for_calls",
        campaign_tracking_id="{{ params.campaign_tracking_id }}",
        date_start="{{ params.date_start }}",
        date_end="{{ params.date_end }}",
        deferrable=True,
        poke_interval=timedelta(seconds=10),
        timeout=timedelta(hours=6),
    )
    extract_campaign = VoiceTrackingOperator(
        task_id="extract_campaign",
        campaign_tracking_id="{{ params.campaign_tracking_id }}",
        date_start="{{ params.date_start }}",
        date_end="{{ params.date_end }}",
        output_path=OUTPUT_BASE + "/voicetrack/campaigns/{{ params.campaign_tracking_id }}/",
        output_conn_id=OUTPUT_CONN_ID,
    )
    wait_for_calls >> extract_campaign
    count_by_status(extract_campaign.output)  # type: ignore[arg-type]  # the summary, at run time
