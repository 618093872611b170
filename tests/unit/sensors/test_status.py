"""The pure status evaluation shared by the sensor and the trigger."""

from __future__ import annotations

from dataclasses import replace

import pytest

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.protocol import format_datetime, search_query
from airflow_voicetrack.waiting import (
    FAILED_IDS_CAP,
    IdsTracker,
    StatusCriteria,
    Verdict,
    WaitEvent,
    encode_query,
    evaluate_counts,
    pending_query,
    resolve_message_ids,
    status_query,
    statuses_to_count,
    statuses_to_sample,
)

RANGED = search_query(date_start="2026-11-01T00:00:00Z", date_end="2026-11-08T00:00:00Z")


def message(message_id: str, status: str) -> dict:
    return {"messageId": message_id, "status": {"date": "2026-11-01T00:00:00Z", "status": status}}


def test_default_terminal_statuses_include_unknown() -> None:
    assert StatusCriteria.build().terminal_statuses == DEFAULT_TERMINAL_STATUSES
    assert "Unknown" in DEFAULT_TERMINAL_STATUSES


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"terminal_statuses": ["Completed", "Done"]}, ["terminal_statuses", "Done"]),
        ({"terminal_statuses": "Completed"}, ["terminal_statuses", "not a string"]),
        ({"terminal_statuses": []}, ["terminal_statuses"]),
        ({"failure_statuses": ["Queued"]}, ["failure_statuses", "Queued", "terminal_statuses"]),
        ({"failure_statuses": ["Failed"], "failure_threshold": 1.0}, ["failure_threshold", "[0, 1)"]),
        ({"failure_statuses": ["Failed"], "failure_threshold": -0.1}, ["failure_threshold"]),
        ({"failure_statuses": ["Failed"], "failure_threshold": "0.1"}, ["failure_threshold"]),
        ({"failure_threshold": 0.1}, ["failure_threshold", "failure_statuses"]),
        ({"missing": "skip"}, ["missing", "wait"]),
    ],
)
def test_invalid_criteria_are_rejected_naming_the_parameter(kwargs: dict, names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        StatusCriteria.build(**kwargs)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["a", "b", "a"], ["a", "b"]),
        (("a",), ["a"]),
        ('["a", "b"]', ["a", "b"]),
        ("a", ["a"]),
        ([], []),
        ("['a', 'b']", ["a", "b"]),
    ],
)
def test_message_ids_accept_lists_json_lists_and_a_single_id(value: object, expected: list[str]) -> None:
    assert resolve_message_ids(value) == expected


@pytest.mark.parametrize("value", ['["a", ', [1, 2], ["a", ""], {"a": 1}, 5])
def test_invalid_message_ids_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="message_ids"):
        resolve_message_ids(value)


def test_search_query_validates_the_range_and_encodes_it_in_the_api_format() -> None:
    target = search_query(date_start="2026-11-01T00:00:00+02:00", date_end="2026-11-02T00:00:00Z")
    encoded = encode_query(target)
    assert (encoded["date_start"], encoded["date_end"]) == ("2026-10-31T22:00:00Z", "2026-11-02T00:00:00Z")
    with pytest.raises(ValueError, match="date_end"):
        search_query(date_start="2026-11-02T00:00:00Z", date_end="2026-11-01T00:00:00Z")
    with pytest.raises(ValueError, match="date_start"):
        search_query(date_start="2026-11-02T00:00:00")
    with pytest.raises(ValueError, match="fieldName"):
        search_query(filters=[{"fieldName": "colour", "searchTerm": "red"}])


def test_pending_filters_add_one_is_not_filter_per_terminal_status_to_the_user_filters() -> None:
    target = search_query(filters=[{"fieldName": "country", "searchTerm": "GR"}])
    filters = pending_query(target, {"Completed", "Failed"}).filters
    assert filters == [
        {"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"},
        {"fieldName": "status.status", "searchOperator": "is_not", "searchTerm": "Completed"},
        {"fieldName": "status.status", "searchOperator": "is_not", "searchTerm": "Failed"},
    ]
    assert status_query(target, "Busy").filters[-1] == {
        "fieldName": "status.status",
        "searchOperator": "is",
        "searchTerm": "Busy",
    }


def test_a_waiting_poke_counts_statuses_only_when_failures_can_end_it() -> None:
    assert statuses_to_count(StatusCriteria.build(), pending=5) == []
    assert statuses_to_count(StatusCriteria.build(), pending=0) == sorted(DEFAULT_TERMINAL_STATUSES)
    with_failures = StatusCriteria.build(failure_statuses={"Failed"})
    assert statuses_to_count(with_failures, pending=5) == sorted(DEFAULT_TERMINAL_STATUSES)


def test_search_is_done_when_nothing_is_pending() -> None:
    evaluation = evaluate_counts(StatusCriteria.build(), pending=0, counts={"Completed": 8, "Busy": 2})
    assert evaluation.verdict is Verdict.DONE
    assert evaluation.summary["total"] == 10
    assert evaluation.summary["by_status"]["Completed"] == 8
    assert evaluation.summary["by_status"]["Unknown"] == 0


def test_search_waits_while_messages_are_pending() -> None:
    evaluation = evaluate_counts(StatusCriteria.build(), pending=3, counts=None)
    assert evaluation.verdict is Verdict.WAITING
    assert evaluation.summary["total"] is None
    assert "3 messages" in evaluation.message


def test_empty_search_succeeds_unless_waiting_for_messages() -> None:
    counts = dict.fromkeys(DEFAULT_TERMINAL_STATUSES, 0)
    assert evaluate_counts(StatusCriteria.build(), pending=0, counts=counts).verdict is Verdict.DONE
    waiting = StatusCriteria.build(wait_for_messages=True)
    assert evaluate_counts(waiting, pending=0, counts=counts).verdict is Verdict.WAITING


def test_any_failure_fails_fast_even_while_messages_are_pending() -> None:
    criteria = StatusCriteria.build(failure_statuses={"Failed", "Unsent"})
    evaluation = evaluate_counts(criteria, pending=50, counts={"Completed": 40, "Failed": 1})
    assert evaluation.verdict is Verdict.FAILED
    assert "1 of 91 messages (50 still pending)" in evaluation.message
    assert statuses_to_sample(criteria, evaluation) == ["Failed"]


def test_failures_at_or_below_the_threshold_do_not_fail() -> None:
    criteria = StatusCriteria.build(failure_statuses={"Failed"}, failure_threshold=0.1)
    done = evaluate_counts(criteria, pending=0, counts={"Completed": 90, "Failed": 10})
    assert done.verdict is Verdict.DONE
    assert statuses_to_sample(criteria, done) == ["Failed"]
    failed = evaluate_counts(criteria, pending=0, counts={"Completed": 89, "Failed": 11})
    assert failed.verdict is Verdict.FAILED
    assert "more than 10.0% allowed" in failed.message


def test_waiting_polls_do_not_sample_failed_ids() -> None:
    criteria = StatusCriteria.build(failure_statuses={"Failed"}, failure_threshold=0.5)
    evaluation = evaluate_counts(criteria, pending=10, counts={"Failed": 1})
    assert evaluation.verdict is Verdict.WAITING
    assert statuses_to_sample(criteria, evaluation) == []


FULL_RANGE = ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")


def test_an_open_range_encodes_its_missing_end_as_none() -> None:
    assert (encode_query(RANGED)["date_start"], encode_query(RANGED)["date_end"]) == FULL_RANGE
    assert encode_query(search_query(campaign_tracking_id="c", date_start=FULL_RANGE[0]))["date_end"] is None


def test_poke_query_is_the_target_and_the_poke_filters_over_the_whole_range() -> None:
    extra = status_query(RANGED, "Failed")
    query = replace(extra, page_size=20)
    assert (format_datetime(query.date_start), format_datetime(query.date_end)) == FULL_RANGE
    assert query.filters == extra.filters and query.page_size == 20
    # one page request over the whole range, however long: the poke never splits it into windows
    request = query.page_request("http://h", (query.date_start, query.date_end), 0, 20)
    assert (request.params["from"], request.params["to"]) == FULL_RANGE


def test_poke_query_of_an_open_range_sends_only_its_bound() -> None:
    query = search_query(campaign_tracking_id="c", date_start="2026-11-01T00:00:00Z")
    request = query.page_request("http://h", (query.date_start, query.date_end), 0, 1)
    assert request.params["trackingId"] == "c" and "to" not in request.params


def test_failed_ids_are_capped() -> None:
    criteria = StatusCriteria.build(failure_statuses={"Failed"})
    ids = [f"id-{n}" for n in range(50)]
    evaluation = evaluate_counts(criteria, pending=0, counts={"Failed": 50}, failed_ids={"Failed": ids})
    assert evaluation.summary["failed_ids"] == {"Failed": ids[:FAILED_IDS_CAP]}


def test_ids_tracker_rechecks_only_ids_not_yet_terminal() -> None:
    tracker = IdsTracker(["a", "b", "c"], StatusCriteria.build())
    first = tracker.evaluate(
        {"a": message("a", "Completed"), "b": message("b", "Ringing"), "c": message("c", "Busy")}
    )
    assert first.verdict is Verdict.WAITING
    assert tracker.pending_ids() == ["b"]
    second = tracker.evaluate({"b": message("b", "NoAnswer")})
    assert second.verdict is Verdict.DONE
    assert second.summary["total"] == 3
    assert {k: v for k, v in second.summary["by_status"].items() if v} == {
        "Completed": 1,
        "Busy": 1,
        "NoAnswer": 1,
    }
    assert tracker.pending_ids() == []


def test_ids_tracker_treats_a_message_without_status_as_pending() -> None:
    tracker = IdsTracker(["a"], StatusCriteria.build())
    assert tracker.evaluate({"a": {"messageId": "a", "status": None}}).verdict is Verdict.WAITING


def test_ids_tracker_lists_failed_ids_in_the_given_order() -> None:
    tracker = IdsTracker(["c", "a", "b"], StatusCriteria.build(failure_statuses={"Failed"}))
    evaluation = tracker.evaluate({i: message(i, "Failed" if i != "b" else "Completed") for i in "abc"})
    assert evaluation.verdict is Verdict.FAILED
    assert evaluation.summary["failed_ids"] == {"Failed": ["c", "a"]}


def test_unknown_ids_fail_by_default_naming_them() -> None:
    tracker = IdsTracker(["a", "ghost"], StatusCriteria.build())
    evaluation = tracker.evaluate({"a": message("a", "Completed"), "ghost": None})
    assert evaluation.verdict is Verdict.FAILED
    assert "ghost" in evaluation.message
    assert "missing='wait'" in evaluation.message
    assert evaluation.summary["missing_ids"] == ["ghost"]


def test_unknown_ids_are_pending_with_missing_wait() -> None:
    tracker = IdsTracker(["a", "ghost"], StatusCriteria.build(missing="wait"))
    evaluation = tracker.evaluate({"a": message("a", "Completed"), "ghost": None})
    assert evaluation.verdict is Verdict.WAITING
    assert tracker.pending_ids() == ["ghost"]
    assert tracker.evaluate({"ghost": message("ghost", "Completed")}).verdict is Verdict.DONE


def test_an_empty_id_list_is_done_with_a_zero_summary() -> None:
    evaluation = IdsTracker([], StatusCriteria.build()).evaluate({})
    assert evaluation.verdict is Verdict.DONE
    assert evaluation.summary["total"] == 0


def test_count_only_never_counts_terminal_statuses() -> None:
    criteria = StatusCriteria.build(count_only=True)
    assert statuses_to_count(criteria, 5) == []
    assert statuses_to_count(criteria, 0) == []


def test_count_only_is_done_when_nothing_is_pending_and_waits_otherwise() -> None:
    criteria = StatusCriteria.build(count_only=True)
    waiting = evaluate_counts(criteria, pending=3, counts=None)
    done = evaluate_counts(criteria, pending=0, counts=None)
    assert (waiting.verdict, waiting.summary["pending"]) == (Verdict.WAITING, 3)
    assert (done.verdict, done.summary["total"]) == (Verdict.DONE, None)
    assert done.message == "Every message is in a terminal status."


@pytest.mark.parametrize("kwargs", [{"failure_statuses": ["Failed"]}, {"wait_for_messages": True}])
def test_count_only_refuses_what_needs_per_status_counts(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="count_only"):
        StatusCriteria.build(count_only=True, **kwargs)


def test_pending_statuses_are_the_complement_of_the_terminal_ones_in_api_order() -> None:
    assert StatusCriteria.build().pending_statuses == ["Queued", "Initiated", "Ringing", "InProgress"]
    without_unknown = StatusCriteria.build(terminal_statuses=DEFAULT_TERMINAL_STATUSES - {"Unknown"})
    assert without_unknown.pending_statuses == ["Queued", "Initiated", "Ringing", "InProgress", "Unknown"]


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "success", "summary": {"total": 3, "pending": 0}},
        {
            "status": "failure",
            "message": "2 Failed",
            "summary": {"total": 3},
            "timeout_at": "2026-11-01T00:00:00+00:00",
        },
        {"status": "timeout", "message": "Timed out", "summary": None},
        {"status": "error", "message": "VoiceTrackAuthError: no"},
    ],
    ids=["success", "failure", "timeout", "error"],
)
def test_a_wait_event_decodes_what_earlier_triggers_fired_and_encodes_it_back(payload: dict) -> None:
    assert WaitEvent.decode(payload).encode() == payload


def test_a_wait_event_with_an_unknown_status_is_an_error_naming_it() -> None:
    event = WaitEvent.decode({"status": "exploded", "detail": "x"})
    assert event.status == "error" and "exploded" in (event.message or "")
