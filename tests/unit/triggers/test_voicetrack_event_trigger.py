"""VoiceTrackEventTrigger's arguments: refused when the DAG is parsed, serialized to rebuild the watcher."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.triggers.base import BaseEventTrigger

from airflow_voicetrack.triggers.voicetrack import CAMPAIGN_FINISHED, VoiceTrackEventTrigger


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"asset_name": ""}, "asset_name must be the name of the Asset"),
        ({"asset_name": "a", "mode": "level"}, "mode must be one of"),
        ({"asset_name": "a", "mode": CAMPAIGN_FINISHED}, "needs campaign_tracking_id"),
        ({"asset_name": "a", "campaign_tracking_id": " "}, "must be a non-empty string"),
        ({"asset_name": "a", "window": 0}, "window must be a number of seconds"),
        ({"asset_name": "a", "window": 1.5}, "window must be whole seconds"),
        ({"asset_name": "a", "poll_interval": 0.1}, "poll_interval must be"),
        ({"asset_name": "a", "lateness": -1}, "lateness must be"),
        ({"asset_name": "a", "start": "2026-11-01T00:30:00Z"}, "is not on the grid of window=3600 s"),
        ({"asset_name": "a", "start": "2026-11-01T00:00:00"}, "has no time zone"),
        ({"asset_name": "a", "tagged": "yes"}, "tagged must be True, False or None"),
        ({"asset_name": "a", "terminal_statuses": ["Done"]}, "unknown statuses"),
        ({"asset_name": "a", "filters": [{"fieldName": "nope", "searchTerm": "x"}]}, "nope"),
        (
            {
                "asset_name": "a",
                "mode": CAMPAIGN_FINISHED,
                "campaign_tracking_id": "c",
                "start": "2026-11-01T00:00:00Z",
            },
            "apply to mode='windows_settled' only",
        ),
    ],
)
def test_bad_arguments_are_refused_when_the_watcher_is_built(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        VoiceTrackEventTrigger(**kwargs)


def test_the_serialized_arguments_rebuild_the_same_watcher() -> None:
    trigger = VoiceTrackEventTrigger(
        asset_name="calls",
        campaign_tracking_id="c-1",
        filters=[{"fieldName": "country", "searchTerm": "GR"}],
        window=timedelta(minutes=15),
        start="2026-11-01T02:15:00+02:00",
        poll_interval=timedelta(seconds=30),
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_voicetrack.triggers.voicetrack.VoiceTrackEventTrigger"
    assert kwargs["start"] == "2026-11-01T00:15:00Z" and kwargs["window"] == 900
    assert VoiceTrackEventTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_the_asset_name_keeps_two_watchers_apart_but_lets_them_share_a_poll() -> None:
    one, two = (VoiceTrackEventTrigger(asset_name=name, campaign_tracking_id="c") for name in ("a", "b"))
    # Airflow keys a watcher's trigger row on this hash: two assets, two rows.
    assert BaseEventTrigger.hash(*one.serialize()) != BaseEventTrigger.hash(*two.serialize())
    assert one.shared_stream_key() == two.shared_stream_key()  # one poll
    other = VoiceTrackEventTrigger(asset_name="a", campaign_tracking_id="d")
    assert other.shared_stream_key() != one.shared_stream_key()
    assert other._state_key != one._state_key  # their progress apart on one asset


def test_the_cadence_does_not_reset_the_saved_progress() -> None:
    slow = VoiceTrackEventTrigger(asset_name="a", poll_interval=600, lateness=60)
    fast = VoiceTrackEventTrigger(asset_name="a", poll_interval=5)
    assert slow._state_key == fast._state_key
    assert slow.shared_stream_key() != fast.shared_stream_key()
