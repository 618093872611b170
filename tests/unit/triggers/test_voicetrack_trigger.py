"""VoiceMessageStatusTrigger without a server: serialization and validation."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.sdk._shared.module_loading import import_string

from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger


def trigger_kwargs(**overrides: Any) -> dict[str, Any]:
    return {
        "voicetrack_conn_id": "voicetrack_default",
        "message_ids": ["a", "b"],
        "date_start": None,
        "date_end": None,
        "filters": [],
        "campaign_id": None,
        "terminal_statuses": ["Completed", "Failed"],
        "failure_statuses": ["Failed"],
        "failure_threshold": 0.5,
        "missing": "wait",
        "wait_for_messages": False,
        "poke_interval": 2.0,
        "timeout_at": datetime(2026, 11, 1, tzinfo=timezone.utc),
        "tagged": None,
        "count_only": False,
        "first_check_after": 0.0,
        **overrides,
    }


def test_serialize_returns_the_classpath_and_exactly_the_constructor_kwargs() -> None:
    kwargs = trigger_kwargs()
    classpath, serialized = VoiceMessageStatusTrigger(**kwargs).serialize()
    assert classpath == "airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger"
    assert serialized == kwargs


def test_trigger_rebuilt_from_its_serialization_serializes_the_same() -> None:
    classpath, kwargs = VoiceMessageStatusTrigger(
        **trigger_kwargs(message_ids=None, campaign_id="c")
    ).serialize()
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)


def test_trigger_validates_its_criteria() -> None:
    with pytest.raises(ValueError, match="failure_statuses"):
        VoiceMessageStatusTrigger(**trigger_kwargs(failure_statuses=["Busy"]))
