"""
Bad input, table by table: each case raises an error that names the parameter and the fix, and
the emulator receives no request at all (not even for a token).

Connection and hook cases run the hook's search (or ``test_connection``), operator and sensor cases
build the task or run it the way Airflow does; each then reads the emulator's request counters.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from support.dags import Run
from support.emulator import END, START

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator, split_interval
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor

DAY_END = "2026-11-02T00:00:00Z"


def assert_no_request(emu: EmulatorProcess) -> None:
    stats = emu.stats()
    assert (stats["total"], stats["tokens_issued"]) == (0, 0), stats


def set_connection(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """Redefine ``voicetrack_default``: fields from ``changes``, its ``extra`` merged into the extras."""
    conn = json.loads(emu.connection_json())
    conn["extra"].update(changes.pop("extra", {}))
    conn.update(changes)
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))


# -- the connection ---------------------------------------------------------------------------------

CONNECTION_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("missing_login", {"login": None}, ["has no login", "set it to the Routee application id"]),
    ("missing_password", {"password": ""}, ["has no password", "set it to the Routee application secret"]),
    (
        "ftp_host",
        {"host": "ftp://127.0.0.1"},
        ["host", "connection 'voicetrack_default'", "http(s) URL", "'ftp://127.0.0.1'"],
    ),
    ("host_without_scheme", {"host": "connect.example"}, ["host", "http(s) URL", "'connect.example'"]),
    (
        "auth_url_not_a_url",
        {"extra": {"auth_url": "auth/oauth/token"}},
        ["extra 'auth_url'", "http(s) URL"],
    ),
    ("page_size_zero", {"extra": {"page_size": 0}}, ["page_size must be an integer from 1 to 2000", "got 0"]),
    ("page_size_too_big", {"extra": {"page_size": 5000}}, ["page_size must be an integer from 1 to 2000"]),
    ("page_size_text", {"extra": {"page_size": "many"}}, ["page_size must be an integer", "'many'"]),
    ("max_concurrency_zero", {"extra": {"max_concurrency": 0}}, ["max_concurrency must be an integer >= 1"]),
    ("max_retries_negative", {"extra": {"max_retries": -1}}, ["max_retries must be an integer >= 0"]),
    ("read_timeout_text", {"extra": {"read_timeout": "fast"}}, ["read_timeout must be a number > 0"]),
    ("connect_timeout_zero", {"extra": {"connect_timeout": 0}}, ["connect_timeout must be a number > 0"]),
    ("verify_ssl_maybe", {"extra": {"verify_ssl": "maybe"}}, ["verify_ssl must be true or false"]),
    ("window_hours_zero", {"extra": {"window_hours": 0}}, ["window_hours must be a number > 0"]),
    ("max_retry_wait_negative", {"extra": {"max_retry_wait": -1}}, ["max_retry_wait must be a number >= 0"]),
    ("scope_not_text", {"extra": {"scope": 5}}, ["extra 'scope'", "comma-separated string"]),
]


@pytest.mark.parametrize(
    ("changes", "texts"), [c[1:] for c in CONNECTION_CASES], ids=[c[0] for c in CONNECTION_CASES]
)
def test_bad_connection_fails_the_search_before_any_request(
    emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any], texts: list[str]
) -> None:
    set_connection(emu, monkeypatch, **changes)
    with pytest.raises(ValueError) as info:
        VoiceTrackHook().search_messages(START, END)
    for text in texts:
        assert text in str(info.value)
    assert_no_request(emu)


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"password": None}, "has no password"),
        ({"host": "ftp://127.0.0.1"}, "http(s) URL"),
        ({"extra": {"max_concurrency": "four"}}, "max_concurrency must be an integer"),
    ],
    ids=["missing_password", "ftp_host", "max_concurrency_text"],
)
def test_connection_test_reports_an_invalid_connection_without_a_request(
    emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any], text: str
) -> None:
    set_connection(emu, monkeypatch, **changes)
    ok, message = VoiceTrackHook().test_connection()
    assert not ok
    assert message.startswith("Invalid connection:") and text in message
    assert_no_request(emu)


def test_connection_test_reports_an_unreachable_host(
    emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = f"http://127.0.0.1:{port}"
    set_connection(emu, monkeypatch, host=closed, extra={"auth_url": closed + "/oauth/token"})
    ok, message = VoiceTrackHook().test_connection()
    assert not ok
    assert message.startswith("Host unreachable:") and f"127.0.0.1:{port}" in message
    assert_no_request(emu)


# -- the hook -----------------------------------------------------------------------------------------

HOOK_CASES: list[tuple[str, Callable[[VoiceTrackHook], Any], list[str]]] = [
    (
        "unknown_field",
        lambda h: h.search_messages(START, END, filters=[{"fieldName": "colour", "searchTerm": "red"}]),
        ["filters[0]", "unknown fieldName 'colour'", "accepted: ['id', 'recipient'"],
    ),
    (
        "unknown_operator",
        lambda h: h.search_messages(
            START, END, filters=[{"fieldName": "country", "searchOperator": "like", "searchTerm": "GR"}]
        ),
        ["unknown searchOperator 'like'", "accepted: ['is', 'is_not', 'contains'"],
    ),
    (
        "filter_not_a_dict",
        lambda h: h.search_messages(START, END, filters=["country=GR"]),
        ["filters[0]", "expected a dict"],
    ),
    (
        "filter_unknown_key",
        lambda h: h.search_messages(START, END, filters=[{"fieldName": "country", "term": "GR"}]),
        ["unknown keys ['term']", "accepted keys"],
    ),
    (
        "filter_term_missing",
        lambda h: h.search_messages(START, END, filters=[{"fieldName": "country"}]),
        ["searchTerm must be a non-empty string"],
    ),
    (
        "filter_term_blank",
        lambda h: h.search_messages(START, END, filters=[{"fieldName": "country", "searchTerm": "  "}]),
        ["searchTerm must not be empty"],
    ),
    (
        "filter_unknown_status",
        lambda h: h.search_messages(
            START, END, filters=[{"fieldName": "status.status", "searchTerm": "Done"}]
        ),
        ["unknown status 'Done'", "'Completed'"],
    ),
    (
        "naive_date",
        lambda h: h.search_messages(datetime(2026, 11, 1), END),
        ["date_start", "has no time zone", "'2026-11-01T00:00:00Z'"],
    ),
    (
        "unparsable_date",
        lambda h: h.search_messages(START, "next tuesday"),
        ["date_end = 'next tuesday' is not an ISO-8601 date-time"],
    ),
    (
        "date_as_number",
        lambda h: h.search_messages(20261101, END),
        ["date_start must be an aware datetime, a pendulum DateTime or an ISO-8601 date-time string"],
    ),
    (
        "end_before_start",
        lambda h: h.search_messages(END, START),
        ["date_end (2026-11-01T00:00:00Z) must be after date_start (2026-11-08T00:00:00Z)", "half-open"],
    ),
    ("empty_range", lambda h: h.search_messages(START, START), ["must be after date_start"]),
    (
        "count_with_bad_operator",
        lambda h: h.count_messages(filters=[{"fieldName": "id", "searchOperator": "IS", "searchTerm": "x"}]),
        ["unknown searchOperator 'IS'", "accepted:"],
    ),
    (
        "page_size_zero",
        lambda h: h.search_messages(START, END, page_size=0),
        ["page_size must be an integer from 1 to 2000, got 0"],
    ),
    ("page_size_2001", lambda h: h.search_messages(START, END, page_size=2001), ["from 1 to 2000, got 2001"]),
    ("page_size_bool", lambda h: h.search_messages(START, END, page_size=True), ["got True"]),
    (
        "sort_direction_only",
        lambda h: h.search_messages(START, END, sort="desc"),
        ["sort must look like 'field'"],
    ),
    (
        "blank_campaign",
        lambda h: h.search_messages(START, END, campaign_tracking_id=" "),
        ["campaign_tracking_id must be a non-empty string"],
    ),
    (
        "tagged_text",
        lambda h: h.search_messages(START, END, tagged="yes"),
        ["tagged must be True, False or None"],
    ),
    ("blank_message_id", lambda h: h.get_message(""), ["message_id must be a non-empty string"]),
    ("count_end_before_start", lambda h: h.count_messages(END, START), ["must be after date_start"]),
    (
        "window_too_short",
        lambda h: VoiceTrackHook(window=timedelta(0)).search_messages(START, END),
        ["window must be a timedelta of at least one second"],
    ),
]


@pytest.mark.parametrize(("call", "texts"), [c[1:] for c in HOOK_CASES], ids=[c[0] for c in HOOK_CASES])
def test_bad_hook_argument_raises_before_any_request(
    emu: EmulatorProcess, call: Callable[[VoiceTrackHook], Any], texts: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        call(VoiceTrackHook())
    for text in texts:
        assert text in str(info.value)
    assert_no_request(emu)


# -- the operator -------------------------------------------------------------------------------------

OPERATOR_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("unknown_format", {"output_format": "xml"}, ["output_format='xml'", "use output_format one of jsonl"]),
    ("unknown_compression", {"compression": "zip"}, ["compression must be None or 'gzip', got 'zip'"]),
    (
        "gzipped_parquet",
        {"output_format": "parquet", "compression": "gzip"},
        ["Parquet compresses internally; drop compression"],
    ),
    ("negative_xcom_cap", {"xcom_max_records": -1}, ["xcom_max_records must be a non-negative integer"]),
    ("page_size_zero", {"page_size": 0}, ["page_size must be an integer from 1 to 2000"]),
    ("max_concurrency_zero", {"max_concurrency": 0}, ["max_concurrency must be a positive integer"]),
    (
        "unknown_empty_interval",
        {"empty_interval": "ignore"},
        ["empty_interval must be one of 'fail', 'skip'"],
    ),
    ("lookback_missing", {"empty_interval": "lookback"}, ["empty_interval='lookback' needs lookback"]),
    (
        "lookback_without_policy",
        {"lookback": timedelta(days=1)},
        ["lookback is used only with empty_interval"],
    ),
    ("poke_interval_zero", {"poke_interval": 0}, ["poke_interval must be a positive number of seconds"]),
    ("poke_interval_negative", {"poke_interval": -60}, ["poke_interval must be a positive number"]),
    (
        "settle_timeout_below_poke_interval",
        {"poke_interval": 60, "settle_timeout": timedelta(seconds=30)},
        ["settle_timeout (30 s) is shorter than poke_interval (60 s)", "raise settle_timeout"],
    ),
    ("unknown_on_unsettled", {"on_unsettled": "skip"}, ["on_unsettled must be one of 'fail', 'write'"]),
    ("empty_terminal_statuses", {"terminal_statuses": []}, ["terminal_statuses must not be empty"]),
]


@pytest.mark.parametrize(
    ("kwargs", "texts"), [c[1:] for c in OPERATOR_CASES], ids=[c[0] for c in OPERATOR_CASES]
)
def test_bad_operator_argument_fails_when_the_dag_is_built(
    emu: EmulatorProcess, kwargs: dict[str, Any], texts: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        VoiceTrackingOperator(task_id="extract", output_path="file:///tmp/voicetrack/", **kwargs)
    for text in texts:
        assert text in str(info.value)
    assert_no_request(emu)


def test_split_interval_rejects_a_zero_step(emu: EmulatorProcess) -> None:
    with pytest.raises(ValueError, match="every must be a timedelta of at least one second"):
        split_interval(START, END, timedelta(0))
    assert_no_request(emu)


OPERATOR_RUN_CASES: list[tuple[str, dict[str, Any], type[BaseException], list[str]]] = [
    (
        "end_before_start",
        {"date_start": DAY_END, "date_end": START},
        AirflowFailException,
        ["date_end (2026-11-01T00:00:00Z) is before date_start (2026-11-02T00:00:00Z)"],
    ),
    (
        "zero_width_interval",
        {"date_start": START, "date_end": START},
        AirflowFailException,
        ["The data interval is empty", "CronDataIntervalTimetable", "empty_interval='skip'"],
    ),
    (
        "filters_not_json",
        {"filters": '[{"fieldName": "country"'},
        ValueError,
        ["filters rendered to", "which is not a JSON list"],
    ),
    (
        "templated_naive_date",
        {"date_start": "{{ '2026-11-01T00:00:00' }}"},
        ValueError,
        ["date_start", "has no time zone"],
    ),
    (
        "unknown_output_scheme",
        {"output_path": "nosuch://bucket/voicetrack/"},
        ValueError,
        ["output_path", "nosuch", "file:///data/voicetrack/"],
    ),
    (
        "relative_output_path",
        {"output_path": "exports/voicetrack/"},
        ValueError,
        ["output_path", "relative path", "file:///data/voicetrack/"],
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "texts"), [c[1:] for c in OPERATOR_RUN_CASES], ids=[c[0] for c in OPERATOR_RUN_CASES]
)
def test_bad_rendered_operator_argument_fails_the_task_before_any_request(
    emu: EmulatorProcess,
    run_dag: Callable[..., Run],
    tmp_path: Any,
    kwargs: dict[str, Any],
    error: type[BaseException],
    texts: list[str],
) -> None:
    arguments = {"date_start": START, "date_end": DAY_END, "output_path": f"file://{tmp_path}/", **kwargs}
    run = run_dag(lambda: VoiceTrackingOperator(task_id="extract", **arguments))
    assert run.states == {"extract": "failed"}
    [raised] = run.errors["extract"]
    assert isinstance(raised, error), repr(raised)
    for text in texts:
        assert text in str(raised)
    assert list(tmp_path.iterdir()) == []
    assert_no_request(emu)


def test_xcom_cap_fails_after_one_count_naming_output_path(
    emu: EmulatorProcess, run_dag: Callable[..., Run]
) -> None:
    run = run_dag(
        lambda: VoiceTrackingOperator(task_id="extract", date_start=START, date_end=END, xcom_max_records=10)
    )
    [raised] = run.errors["extract"]
    assert isinstance(raised, AirflowFailException)
    assert "more than xcom_max_records=10" in str(raised) and "Set output_path" in str(raised)
    # One token and two counts (pages of one: the pending messages, then all): not a page of messages.
    assert emu.stats()["requests"] == {"POST /oauth/token": 1, "POST /voice/tracking": 2}


# -- the sensor ----------------------------------------------------------------------------------------

SENSOR_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "ids_and_search",
        {"message_ids": ["a"], "date_start": START},
        ["Give either message_ids or a search", "not both"],
    ),
    ("no_target", {}, ["Give either message_ids or a search", "not neither"]),
    (
        "ids_not_a_list",
        {"message_ids": {"a": 1}},
        ["message_ids must be a list of ids or a string, got dict"],
    ),
    (
        "unknown_terminal_status",
        {"message_ids": ["a"], "terminal_statuses": {"Done"}},
        ["terminal_statuses has unknown statuses ['Done']", "accepted:"],
    ),
    (
        "terminal_statuses_as_text",
        {"message_ids": ["a"], "terminal_statuses": "Completed"},
        ["terminal_statuses must be a collection of status names", "['Completed']"],
    ),
    (
        "no_terminal_status",
        {"message_ids": ["a"], "terminal_statuses": []},
        ["terminal_statuses must not be empty"],
    ),
    (
        "failure_status_not_terminal",
        {"message_ids": ["a"], "terminal_statuses": {"Completed"}, "failure_statuses": {"Failed"}},
        ["failure_statuses ['Failed'] are not terminal statuses", "Add them to terminal_statuses"],
    ),
    (
        "threshold_without_statuses",
        {"message_ids": ["a"], "failure_threshold": 0.1},
        ["failure_threshold needs failure_statuses"],
    ),
    (
        "threshold_above_one",
        {"message_ids": ["a"], "failure_statuses": {"Failed"}, "failure_threshold": 1.5},
        ["failure_threshold must be in [0, 1)", "e.g. 0.05"],
    ),
    (
        "unknown_missing_mode",
        {"message_ids": ["a"], "missing": "ignore"},
        ["missing must be one of ['fail', 'wait']"],
    ),
    (
        "wait_for_messages_with_ids",
        {"message_ids": ["a"], "wait_for_messages": True},
        ["wait_for_messages applies to search mode only"],
    ),
]


@pytest.mark.parametrize(("kwargs", "texts"), [c[1:] for c in SENSOR_CASES], ids=[c[0] for c in SENSOR_CASES])
def test_bad_sensor_argument_fails_when_the_dag_is_built(
    emu: EmulatorProcess, kwargs: dict[str, Any], texts: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        VoiceMessageStatusSensor(task_id="wait", **kwargs)
    for text in texts:
        assert text in str(info.value)
    assert_no_request(emu)


SENSOR_RENDERED_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("ids_not_a_list", {"message_ids": "[1, 2"}, ["message_ids is not a JSON or Python list"]),
    ("blank_id", {"message_ids": ["a", " "]}, ["message_ids must hold non-empty strings"]),
    (
        "naive_date",
        {"date_start": "2026-11-01T00:00:00", "date_end": END},
        ["date_start", "has no time zone"],
    ),
    ("end_before_start", {"date_start": END, "date_end": START}, ["must be after date_start"]),
    (
        "unknown_filter_field",
        {"filters": [{"fieldName": "colour", "searchTerm": "red"}]},
        ["unknown fieldName 'colour'", "accepted:"],
    ),
    ("blank_campaign", {"campaign_tracking_id": " "}, ["campaign_tracking_id must be a non-empty string"]),
]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "poke"])
@pytest.mark.parametrize(
    ("kwargs", "texts"), [c[1:] for c in SENSOR_RENDERED_CASES], ids=[c[0] for c in SENSOR_RENDERED_CASES]
)
def test_bad_rendered_sensor_argument_fails_before_deferring_or_poking(
    emu: EmulatorProcess, kwargs: dict[str, Any], texts: list[str], deferrable: bool
) -> None:
    sensor = VoiceMessageStatusSensor(task_id="wait", deferrable=deferrable, timeout=5, **kwargs)
    with pytest.raises(ValueError) as info:
        sensor.execute({})  # type: ignore[arg-type]
    for text in texts:
        assert text in str(info.value)
    assert_no_request(emu)
