"""VoiceMessageStatusSensor without a server: validation, deferral and resuming from events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor
from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger

RANGE = {"date_start": "2026-11-01T00:00:00Z", "date_end": "2026-11-02T00:00:00Z"}


def sensor(**kwargs: Any) -> VoiceMessageStatusSensor:
    return VoiceMessageStatusSensor(task_id="wait", **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"message_ids": ["a"], "campaign_tracking_id": "c"}, {"message_ids": ["a"], **RANGE}],
    ids=["neither", "ids-and-campaign", "ids-and-range"],
)
def test_exactly_one_target_kind_is_required(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="either message_ids or a search"):
        sensor(**kwargs)


def test_invalid_statuses_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="failure_statuses"):
        sensor(campaign_tracking_id="c", failure_statuses={"Ringing"})


def test_wait_for_messages_is_rejected_in_ids_mode() -> None:
    with pytest.raises(ValueError, match="wait_for_messages"):
        sensor(message_ids=["a"], wait_for_messages=True)


def test_message_ids_of_a_wrong_type_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="message_ids"):
        sensor(message_ids={"a": 1})


def test_target_arguments_are_templated() -> None:
    assert set(VoiceMessageStatusSensor.template_fields) == {
        "message_ids",
        "campaign_tracking_id",
        "date_start",
        "date_end",
        "filters",
    }


def test_rendered_values_are_validated_before_deferring() -> None:
    task = sensor(message_ids="[not json", deferrable=True)
    with pytest.raises(ValueError, match="message_ids"):
        task.execute({})


def test_deferrable_execute_defers_at_once_with_the_validated_search_and_the_timeout() -> None:
    task = sensor(
        voicetrack_conn_id="my_conn",
        date_start="2026-11-01T02:00:00+02:00",
        date_end="2026-11-02T00:00:00Z",
        filters=[{"fieldName": "country", "searchTerm": "GR"}],
        failure_statuses=["Failed"],
        failure_threshold=0.2,
        poke_interval=7,
        timeout=120,
        deferrable=True,
    )
    before = datetime.now(timezone.utc)
    with pytest.raises(TaskDeferred) as info:
        task.execute({})
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=120)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_voicetrack.triggers.voicetrack.VoiceMessageStatusTrigger"
    timeout_at = kwargs.pop("timeout_at")
    assert (
        before + timedelta(seconds=120) <= timeout_at <= datetime.now(timezone.utc) + timedelta(seconds=120)
    )
    assert kwargs == {
        "voicetrack_conn_id": "my_conn",
        "message_ids": None,
        "target": {
            "date_start": "2026-11-01T00:00:00Z",
            "date_end": "2026-11-02T00:00:00Z",
            "filters": [{"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"}],
            "campaign_tracking_id": None,
            "tagged": None,
        },
        "criteria": {
            "terminal_statuses": [
                "Busy",
                "Completed",
                "Failed",
                "NoAnswer",
                "Terminated",
                "Unknown",
                "Unsent",
            ],
            "failure_statuses": ["Failed"],
            "failure_threshold": 0.2,
            "missing": "fail",
            "wait_for_messages": False,
            "count_only": False,
        },
        "poke_interval": 7.0,
        "first_check_after": 0.0,
    }
    # What the triggerer does with the stored form: rebuild the trigger from it.
    rebuilt = VoiceMessageStatusTrigger(**kwargs, timeout_at=timeout_at)
    assert rebuilt.serialize() == (classpath, {**kwargs, "timeout_at": timeout_at})


def test_deferrable_ids_mode_passes_the_parsed_ids() -> None:
    task = sensor(message_ids='["a", "b", "a"]', missing="wait", deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        task.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, VoiceMessageStatusTrigger)
    assert trigger.message_ids == ["a", "b"]
    assert trigger.criteria.missing == "wait" and trigger.target is None


def test_success_event_returns_the_summary() -> None:
    summary = {"total": 1, "pending": 0, "by_status": {"Completed": 1}, "failed_ids": {}}
    assert (
        sensor(campaign_tracking_id="c").execute_complete({}, {"status": "success", "summary": summary})
        == summary
    )


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"status": "failure", "message": "2 of 9 failed", "summary": {}}, AirflowFailException),
        ({"status": "timeout", "message": "Timed out", "summary": None}, AirflowSensorTimeout),
        ({"status": "error", "message": "VoiceTrackAuthError: authentication failed"}, AirflowException),
    ],
)
def test_non_success_events_raise_with_their_message(event: dict, error: type[Exception]) -> None:
    with pytest.raises(error, match=event["message"]):
        sensor(campaign_tracking_id="c").execute_complete({}, event)


def test_airflow_trigger_timeout_resumes_a_sensor_with_sensor_timeout() -> None:
    """What the scheduler sends when ``defer(timeout=...)`` expires (Airflow 3.3 ``__fail__``)."""
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

    with pytest.raises(AirflowSensorTimeout):
        sensor(campaign_tracking_id="c").resume_execution(
            TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {}
        )


def test_soft_fail_skips_on_a_failure_event() -> None:
    task = sensor(campaign_tracking_id="c", soft_fail=True)
    with pytest.raises(AirflowSkipException):
        task.resume_execution("execute_complete", {"event": {"status": "failure", "message": "x"}}, {})


def test_campaign_id_is_a_deprecated_name_of_campaign_tracking_id() -> None:
    with pytest.warns(DeprecationWarning, match="campaign_tracking_id") as record:
        task = sensor(campaign_id="c-1")
    assert task.campaign_tracking_id == "c-1"
    assert record[0].filename == __file__  # the warning points at the DAG file's line
    with pytest.raises(ValueError, match="campaign_tracking_id only"):
        sensor(campaign_id="c-1", campaign_tracking_id="c-1")
