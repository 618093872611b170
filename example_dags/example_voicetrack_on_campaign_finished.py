"""
Event-driven report: run once when every call of a campaign has finished.

The Asset ``voicetrack_campaign_finished`` has a watcher, a ``VoiceTrackEventTrigger`` in
``campaign_finished`` mode: the triggerer polls the campaign every ``poll_interval`` (one request
while a call is in progress) and announces it once, the first time every call has a final status,
with the counts per status; never again for that campaign (on Airflow 3.3+ even across triggerer
restarts, the campaign being remembered in the asset's state store). The scheduler then starts
this DAG, which reports the campaign's outcome from the announcement alone, without a request.

The campaign comes from ``VOICETRACK_WATCH_CAMPAIGN`` (default: the local emulator's "Black Friday
2026"), the connection from ``VOICETRACK_WATCH_CONN_ID`` (default ``voicetrack_default``) and the
cadence from ``VOICETRACK_CAMPAIGN_POLL_INTERVAL`` (default 60 s), when the file is parsed.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_voicetrack.triggers.voicetrack import CAMPAIGN_FINISHED, VoiceTrackEventTrigger

#: Tracking id of the emulator's "Black Friday 2026" campaign.
DEMO_CAMPAIGN_ID = "456a29f3-8d99-53bc-aea6-33373cc58bac"
ASSET_NAME = "voicetrack_campaign_finished"

campaign_finished = Asset(
    ASSET_NAME,
    watchers=[
        AssetWatcher(
            name="voicetrack_campaign_watcher",
            trigger=VoiceTrackEventTrigger(
                asset_name=ASSET_NAME,
                mode=CAMPAIGN_FINISHED,
                voicetrack_conn_id=os.environ.get("VOICETRACK_WATCH_CONN_ID", "voicetrack_default"),
                campaign_tracking_id=os.environ.get("VOICETRACK_WATCH_CAMPAIGN", DEMO_CAMPAIGN_ID),
                poll_interval=float(os.environ.get("VOICETRACK_CAMPAIGN_POLL_INTERVAL", "60")),
            ),
        )
    ],
)


@task
def report_campaign(*, triggering_asset_events: Any = None) -> dict[str, Any]:
    """
    The campaign's outcome as announced: calls per final status and the answered share.

    :return: the announcement's payload with ``answered_share`` (Completed calls over all calls).
    """
    payload = dict(triggering_asset_events[campaign_finished][-1].extra["payload"])
    payload["answered_share"] = round(payload["by_status"].get("Completed", 0) / payload["count"], 4)
    print(f"Campaign {payload['campaign_tracking_id']} finished: {payload}")
    return payload


with DAG(
    dag_id="example_voicetrack_on_campaign_finished",
    description="Report a campaign's outcome once every call of it has finished",
    schedule=[campaign_finished],
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    tags=["voicetrack", "example", "event-driven"],
    doc_md=__doc__,
):
    report_campaign()
