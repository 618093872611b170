"""VoiceMessageStatusTrigger without a server: serialization and validation."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.sdk._shared.module_loading import import_string

from airflow_voicetrack.protocol import search_query
from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger
from airflow_voicetrack.waiting import StatusCriteria, encode_query

TIMEOUT_AT = datetime(2026, 11, 1, tzinfo=timezone.utc)


def v010_kwargs(**overrides: Any) -> dict[str, Any]:
    """A trigger as version 0.1.0 serialized it (flat), e.g. deferred before an upgrade."""
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
        "timeout_at": TIMEOUT_AT,
        **overrides,
    }


CRITERIA = StatusCriteria.build(
    terminal_statuses=["Completed", "Failed"],
    failure_statuses=["Failed"],
    failure_threshold=0.5,
    missing="wait",
)


def test_serialize_returns_the_classpath_and_exactly_the_constructor_kwargs() -> None:
    target = search_query(campaign_tracking_id="c", filters=[{"fieldName": "country", "searchTerm": "GR"}])
    trigger = VoiceMessageStatusTrigger(
        voicetrack_conn_id="conn", target=target, criteria=CRITERIA, poke_interval=2.0, timeout_at=TIMEOUT_AT
    )
    classpath, serialized = trigger.serialize()
    assert classpath == "airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger"
    assert serialized == {
        "voicetrack_conn_id": "conn",
        "message_ids": None,
        "target": {
            "date_start": None,
            "date_end": None,
            "filters": [{"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"}],
            "campaign_tracking_id": "c",
            "tagged": None,
        },
        "criteria": {
            "terminal_statuses": ["Completed", "Failed"],
            "failure_statuses": ["Failed"],
            "failure_threshold": 0.5,
            "missing": "wait",
            "wait_for_messages": False,
            "count_only": False,
        },
        "poke_interval": 2.0,
        "timeout_at": TIMEOUT_AT,
        "first_check_after": 0.0,
    }
    rebuilt = import_string(classpath)(**serialized)
    assert (rebuilt.target, rebuilt.criteria) == (target, CRITERIA)
    assert rebuilt.serialize() == (classpath, serialized)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"message_ids": None, "campaign_id": "c", "date_start": "2026-11-01T00:00:00Z"}],
    ids=["ids mode", "search mode"],
)
def test_the_flat_form_of_0_1_0_still_deserializes(overrides: dict[str, Any]) -> None:
    kwargs = v010_kwargs(**overrides)
    trigger = VoiceMessageStatusTrigger(**kwargs)
    assert trigger.criteria == CRITERIA
    assert trigger.message_ids == kwargs["message_ids"]
    if kwargs["message_ids"] is None:
        assert encode_query(trigger.target) == {
            "date_start": "2026-11-01T00:00:00Z",
            "date_end": None,
            "filters": [],
            "campaign_tracking_id": "c",
            "tagged": None,
        }
    else:
        assert trigger.target is None
    # Re-serialized in the current form, which builds the same trigger again.
    classpath, serialized = trigger.serialize()
    assert "criteria" in serialized and "date_start" not in serialized
    assert import_string(classpath)(**serialized).serialize() == (classpath, serialized)


def test_an_unknown_flat_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="colour"):
        VoiceMessageStatusTrigger(**v010_kwargs(colour="red"))


def test_trigger_validates_its_criteria() -> None:
    with pytest.raises(ValueError, match="failure_statuses"):
        VoiceMessageStatusTrigger(**v010_kwargs(failure_statuses=["Busy"]))
    with pytest.raises(ValueError, match="failure_statuses"):
        VoiceMessageStatusTrigger(
            voicetrack_conn_id="c",
            message_ids=["a"],
            criteria={"terminal_statuses": ["Completed"], "failure_statuses": ["Busy"]},
            poke_interval=1.0,
            timeout_at=None,
        )


def test_the_nested_form_from_before_campaign_tracking_id_still_deserializes() -> None:
    # Exactly what serialize() wrote before campaign_id was renamed (a trigger deferred before an upgrade).
    kwargs = {
        "voicetrack_conn_id": "conn",
        "message_ids": None,
        "target": {
            "date_start": "2026-11-01T00:00:00Z",
            "date_end": "2026-11-02T00:00:00Z",
            "filters": [{"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"}],
            "campaign_id": "c-7",
            "tagged": True,
        },
        "criteria": {
            "terminal_statuses": ["Completed", "Failed"],
            "failure_statuses": ["Failed"],
            "failure_threshold": 0.5,
            "missing": "wait",
            "wait_for_messages": False,
            "count_only": False,
        },
        "poke_interval": 2.0,
        "timeout_at": TIMEOUT_AT,
        "first_check_after": 0.0,
    }
    trigger = VoiceMessageStatusTrigger(**kwargs)
    assert encode_query(trigger.target) == {
        "date_start": "2026-11-01T00:00:00Z",
        "date_end": "2026-11-02T00:00:00Z",
        "filters": [{"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"}],
        "campaign_tracking_id": "c-7",
        "tagged": True,
    }
    assert trigger.criteria == CRITERIA
    # The search it sends names the campaign as the API does.
    params = trigger.target.page_request("http://x", (None, None), 0, 1).params
    assert params["trackingId"] == "c-7"
    # Re-serialized under the new name, which builds the same trigger again.
    classpath, serialized = trigger.serialize()
    assert serialized["target"]["campaign_tracking_id"] == "c-7" and "campaign_id" not in serialized["target"]
    assert import_string(classpath)(**serialized).target == trigger.target
