"""VoiceTrackHook against the emulator over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from support.emulator import END, FAST_RETRIES, START, api_requests, faults_fired, truth_ids

from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.exceptions import (
    VoiceTrackAuthError,
    VoiceTrackConsistencyError,
    VoiceTrackNotFoundError,
    VoiceTrackResponseError,
    VoiceTrackTransientError,
)
from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.protocol import SearchFilter

WEEK = timedelta(days=7)


def search_ids(hook: VoiceTrackHook, start=START, end=END, **kwargs) -> list[str]:
    return [m["messageId"] for m in hook.search_messages(start, end, **kwargs)]


def assert_exact(ids: list[str], expected: set[str]) -> None:
    assert len(ids) == len(set(ids)), "a message came twice"
    assert set(ids) == expected


# --- search ---------------------------------------------------------------------------------------


def test_search_returns_every_message_once_across_daily_windows(emu):
    hook = VoiceTrackHook(page_size=300)
    assert_exact(search_ids(hook), truth_ids(emu))
    assert hook.last_search_stats["windows"] == 7
    assert hook.last_search_stats["records"] == hook.last_search_stats["total_elements"] == 10_000


def test_window_argument_sets_the_window_length(emu):
    hook = VoiceTrackHook(window=timedelta(hours=6))
    assert_exact(
        search_ids(hook, end="2026-11-02T00:00:00Z"), truth_ids(emu, date_end="2026-11-02T00:00:00Z")
    )
    assert hook.last_search_stats["windows"] == 4


def test_window_hours_extra_sets_the_window_length(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json(window_hours=12))
    hook = VoiceTrackHook()
    search_ids(hook, end="2026-11-02T00:00:00Z")
    assert hook.last_search_stats["windows"] == 2


def test_search_with_filters_matches_the_truth(emu):
    filters = [{"fieldName": "country", "searchTerm": "GR"}, SearchFilter("status.status", "Completed")]
    expected = truth_ids(
        emu,
        filters=[
            {"fieldName": "country", "searchTerm": "GR"},
            {"fieldName": "status.status", "searchTerm": "Completed"},
        ],
    )
    assert expected
    assert_exact(search_ids(VoiceTrackHook(page_size=100), filters=filters), expected)


def test_search_with_operators_matches_the_truth(emu):
    filters = [
        {"fieldName": "recipient", "searchOperator": "starts_with", "searchTerm": "3069"},
        {"fieldName": "status.status", "searchOperator": "is_not", "searchTerm": "Completed"},
    ]
    expected = truth_ids(emu, filters=filters)
    assert expected
    assert_exact(search_ids(VoiceTrackHook(page_size=100), filters=filters), expected)


def test_search_by_campaign_matches_the_truth(emu):
    campaign_tracking_id = CAMPAIGNS[0].tracking_id
    expected = truth_ids(emu, campaign_tracking_id=campaign_tracking_id)
    assert expected
    assert_exact(
        search_ids(VoiceTrackHook(page_size=100), campaign_tracking_id=campaign_tracking_id), expected
    )


def test_campaign_id_still_works_with_a_deprecation_warning(emu):
    tracking_id = CAMPAIGNS[0].tracking_id
    expected = truth_ids(emu, campaign_tracking_id=tracking_id)
    hook = VoiceTrackHook(page_size=500)
    with pytest.warns(DeprecationWarning, match="campaign_tracking_id") as record:
        messages = hook.search_messages(START, END, campaign_id=tracking_id)
    assert record[0].filename == __file__
    assert_exact([m["messageId"] for m in messages], expected)
    with pytest.warns(DeprecationWarning) as record:
        assert hook.count_messages(START, END, campaign_id=tracking_id) == len(expected)
    assert record[0].filename == __file__
    with pytest.warns(DeprecationWarning):
        listed = [m["messageId"] for m in hook.get_campaign_messages(campaign_id=tracking_id)]
    assert_exact(listed, truth_ids(emu, date_start=None, date_end=None, campaign_tracking_id=tracking_id))


def test_campaign_id_and_campaign_tracking_id_together_are_refused_before_any_request(emu):
    hook = VoiceTrackHook()
    with pytest.raises(ValueError, match="give campaign_tracking_id only"):
        hook.search_messages(START, END, campaign_id="a", campaign_tracking_id="a")
    with pytest.raises(ValueError, match="give campaign_tracking_id only"):
        hook.count_messages(START, END, campaign_id="a", campaign_tracking_id="b")
    with pytest.raises(ValueError, match="needs campaign_tracking_id"):
        hook.get_campaign_messages()
    assert api_requests(emu) == 0


def test_a_campaign_name_is_not_a_tracking_id(emu):
    # Records carry the campaign's name; the filter takes its tracking id: a name matches nothing.
    name = CAMPAIGNS[0].name
    assert truth_ids(emu, filters=[{"fieldName": "campaign", "searchTerm": name}])
    assert VoiceTrackHook().count_messages(START, END, campaign_tracking_id=name) == 0


@pytest.mark.parametrize("tagged", [True, False])
def test_search_by_tagged_matches_the_truth(emu, tagged):
    expected = truth_ids(emu, tagged=tagged)
    assert expected and expected != truth_ids(emu)
    assert_exact(search_ids(VoiceTrackHook(page_size=500), tagged=tagged), expected)


def test_sort_is_passed_through_and_order_kept(emu):
    ids = search_ids(VoiceTrackHook(page_size=250, window=WEEK), sort="messageId,desc")
    assert_exact(ids, truth_ids(emu))
    assert ids == sorted(ids, reverse=True)


def test_results_come_in_page_order_with_concurrency(emu):
    hook = VoiceTrackHook(page_size=100, max_concurrency=8, window=WEEK)
    ids = search_ids(hook, sort="messageId,asc")
    assert ids == sorted(truth_ids(emu))
    assert hook.last_search_stats["pages"] == 100


def test_search_is_lazy(emu):
    hook = VoiceTrackHook(page_size=100, max_concurrency=2, window=WEEK)
    messages = hook.search_messages(START, END)
    next(messages)
    time.sleep(0.5)  # pages fetched ahead in the background would show up by now
    requested = emu.stats()["requests"].get("POST /voice/tracking", 0)
    assert requested <= 1 + 2, f"{requested} pages requested before the first message was consumed"
    assert sum(1 for _ in messages) == 9_999


def test_empty_search_yields_nothing(emu):
    assert search_ids(VoiceTrackHook(), "2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z") == []


def test_count_messages_is_one_request(emu):
    hook = VoiceTrackHook()
    assert hook.count_messages(START, END, filters=[{"fieldName": "country", "searchTerm": "GR"}]) == len(
        truth_ids(emu, filters=[{"fieldName": "country", "searchTerm": "GR"}])
    )
    assert emu.stats()["requests"]["POST /voice/tracking"] == 1


def test_count_messages_without_range_counts_everything(emu):
    assert VoiceTrackHook().count_messages() == 10_000


# --- single messages, conversations, campaigns --------------------------------------------------------


def test_get_message_returns_the_message(emu):
    message = emu.truth(START, "2026-11-01T01:00:00Z")[0]
    assert VoiceTrackHook().get_message(message["messageId"]) == message


def test_unknown_message_raises_not_found_with_the_api_error(emu):
    with pytest.raises(VoiceTrackNotFoundError) as info:
        VoiceTrackHook().get_message("no-such-message")
    assert info.value.status_code == 404 and info.value.code.startswith("404")


def test_get_messages_fetches_concurrently_and_maps_missing_to_none(emu):
    ids = [m["messageId"] for m in emu.truth(START, "2026-11-01T01:00:00Z")][:10]
    result = VoiceTrackHook(max_concurrency=3).get_messages([*ids, "missing", ids[0]], missing_ok=True)
    assert list(result) == [*ids, "missing"]
    assert result["missing"] is None and all(result[i]["messageId"] == i for i in ids)


def test_get_messages_raises_on_missing_by_default(emu):
    with pytest.raises(VoiceTrackNotFoundError):
        VoiceTrackHook().get_messages(["missing"])


def test_get_conversation_returns_its_dial_parts(emu):
    messages = emu.truth()
    by_conversation: dict[str, set[str]] = {}
    for m in messages:
        by_conversation.setdefault(m["conversationTrackingId"], set()).add(m["messageId"])
    conversation, expected = max(by_conversation.items(), key=lambda item: len(item[1]))
    assert len(expected) > 1
    ids = [m["messageId"] for m in VoiceTrackHook(page_size=1).get_conversation(conversation)]
    assert_exact(ids, expected)


def test_get_campaign_messages_returns_the_campaign(emu):
    campaign_tracking_id = CAMPAIGNS[1].tracking_id
    ids = [
        m["messageId"] for m in VoiceTrackHook().get_campaign_messages(campaign_tracking_id, page_size=200)
    ]
    assert_exact(ids, {m["messageId"] for m in emu.truth(campaign_tracking_id=campaign_tracking_id)})


# --- test_connection --------------------------------------------------------------------------------


def test_test_connection_succeeds(emu):
    ok, message = VoiceTrackHook().test_connection()
    assert ok, message
    assert emu.stats()["tokens_issued"] == 1


def test_test_connection_reports_bad_credentials(emu, monkeypatch):
    conn = json.loads(emu.connection_json())
    conn["password"] = "wrong-secret"
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))
    ok, message = VoiceTrackHook().test_connection()
    assert not ok and message.startswith("Credentials rejected") and "wrong-secret" not in message


def test_test_connection_reports_missing_permissions(emu):
    emu.set_faults(forbidden_rate=1.0)
    ok, message = VoiceTrackHook().test_connection()
    assert not ok and message.startswith("Permission denied")


def test_test_connection_reports_an_unreachable_host(emu, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = json.loads(emu.connection_json())
    conn["host"] = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))
    ok, message = VoiceTrackHook().test_connection()
    assert not ok and message.startswith("Host unreachable") and str(port) in message


def test_test_connection_reports_tls_failure(emu, monkeypatch):
    conn = json.loads(emu.connection_json())
    conn["extra"]["auth_url"] = emu.token_url.replace("http://", "https://")
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))
    ok, message = VoiceTrackHook().test_connection()
    assert not ok and message.startswith("TLS failed")


def test_test_connection_reports_an_invalid_connection(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json(page_size=0))
    ok, message = VoiceTrackHook().test_connection()
    assert not ok and "page_size" in message
    assert api_requests(emu) == 0


# --- open ranges and limit -----------------------------------------------------------------------------

MID = "2026-11-04T12:00:00Z"


def test_campaign_only_search_with_an_open_range_matches_the_truth(emu):
    campaign_tracking_id = CAMPAIGNS[0].tracking_id
    expected = truth_ids(emu, date_start=None, date_end=None, campaign_tracking_id=campaign_tracking_id)
    assert expected
    hook = VoiceTrackHook(page_size=500)
    assert_exact(search_ids(hook, None, None, campaign_tracking_id=campaign_tracking_id), expected)
    assert hook.last_search_stats["windows"] == 1


def test_filters_only_search_with_an_open_range_matches_the_truth(emu):
    filters = [{"fieldName": "country", "searchTerm": "GR"}]
    expected = truth_ids(emu, date_start=None, date_end=None, filters=filters)
    assert expected
    assert_exact(search_ids(VoiceTrackHook(), None, None, filters=filters), expected)


@pytest.mark.parametrize(("start", "end"), [(MID, None), (None, MID)], ids=["from", "until"])
def test_half_open_range_is_one_window_and_matches_the_truth(emu, start, end):
    hook = VoiceTrackHook(page_size=2000)
    assert_exact(search_ids(hook, start, end), truth_ids(emu, date_start=start, date_end=end))
    # Over three days, yet one window: an unbounded side is not windowed.
    assert hook.last_search_stats["windows"] == 1


def limited_search(emu, hook: VoiceTrackHook, limit: int, **kwargs) -> tuple[list[str], list[str], int]:
    """:return: the full search's ids, the limited search's ids, and the requests the latter made."""
    everything = search_ids(hook, sort="messageId,asc", **kwargs)  # also gets the hook its token
    emu.reset_stats()
    ids = search_ids(hook, sort="messageId,asc", limit=limit, **kwargs)
    time.sleep(0.3)  # a page fetched ahead in the background would show up by now
    return everything, ids, api_requests(emu)


@pytest.mark.parametrize("limit", [1, 20, 100])
def test_limit_within_one_page_makes_exactly_one_request(emu, limit):
    hook = VoiceTrackHook(page_size=100, max_concurrency=8)
    everything, ids, requests = limited_search(emu, hook, limit)
    assert ids == everything[:limit]
    assert requests == 1
    assert hook.last_search_stats["records"] == limit


def test_limit_over_several_pages_requests_only_the_pages_it_needs(emu):
    hook = VoiceTrackHook(page_size=100, max_concurrency=8, window=WEEK)
    everything, ids, requests = limited_search(emu, hook, 250)
    assert ids == everything[:250]
    assert requests == 3


def test_limit_carries_on_into_the_next_window(emu):
    first_day = len(truth_ids(emu, date_end="2026-11-02T00:00:00Z"))
    assert first_day < 2000
    hook = VoiceTrackHook(page_size=2000, max_concurrency=8)
    everything, ids, requests = limited_search(emu, hook, first_day + 5)
    assert ids == everything[: first_day + 5]
    assert requests == 2  # page 0 of the first day, page 0 of the second


def test_limit_zero_makes_no_request(emu):
    hook = VoiceTrackHook()
    assert search_ids(hook, limit=0) == []
    assert api_requests(emu) == 0


def test_limit_above_the_result_returns_everything(emu):
    hook = VoiceTrackHook(page_size=500, window=WEEK)
    expected = truth_ids(emu, filters=[{"fieldName": "country", "searchTerm": "GR"}])
    ids = search_ids(hook, filters=[{"fieldName": "country", "searchTerm": "GR"}], limit=len(expected) + 10)
    assert_exact(ids, expected)


# --- connection URI -------------------------------------------------------------------------------------


def test_hook_works_with_the_emulator_connection_uri(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_uri(**FAST_RETRIES))
    hook = VoiceTrackHook()
    assert hook.settings.base_url == emu.url
    assert hook.settings.token_url == emu.token_url
    assert hook.count_messages(START, END) == len(truth_ids(emu))


# --- bad inputs: clear errors before any request --------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.search_messages("2026-11-01T00:00:00", END), "date_start = .* has no time zone"),
        (lambda h: h.search_messages(START, START), "date_end .* must be after date_start"),
        (lambda h: h.search_messages(END, START), "must be after date_start"),
        (lambda h: h.search_messages(START, "next week"), "date_end = 'next week' is not an ISO-8601"),
        (
            lambda h: h.search_messages(START, END, filters=[{"fieldName": "colour", "searchTerm": "x"}]),
            r"filters\[0\].*unknown fieldName 'colour'",
        ),
        (
            lambda h: h.search_messages(
                START, END, filters=[{"fieldName": "country", "searchOperator": "eq", "searchTerm": "GR"}]
            ),
            "unknown searchOperator 'eq'",
        ),
        (
            lambda h: h.search_messages(START, END, filters=[{"fieldName": "country", "searchTerm": ""}]),
            "must not be empty",
        ),
        (
            lambda h: h.search_messages(START, END, filters=[{"fieldName": "country", "searchTerm": 30}]),
            "searchTerm must be a non-empty string",
        ),
        (
            lambda h: h.search_messages(START, END, page_size=2001),
            "page_size must be an integer from 1 to 2000",
        ),
        (lambda h: h.search_messages(START, END, sort="messageId,,asc"), "sort must look like"),
        (lambda h: h.search_messages(START, END, tagged="yes"), "tagged must be True, False or None"),
        (lambda h: h.search_messages(START, END, limit=-1), r"limit must be None \(no limit\) or an integer"),
        (lambda h: h.search_messages(None, START, page_size=0), "page_size must be an integer"),
        (lambda h: h.count_messages(START, START), "must be after date_start"),
        (lambda h: h.get_message(""), "message_id must be a non-empty string"),
        (lambda h: h.get_campaign_messages("c", sort="asc"), "sort must look like"),
        (
            lambda h: VoiceTrackHook(page_size=0).count_messages(),
            "page_size must be an integer from 1 to 2000",
        ),
        (
            lambda h: VoiceTrackHook(max_concurrency=0).count_messages(),
            "max_concurrency must be an integer >= 1",
        ),
        (lambda h: VoiceTrackHook(read_timeout=0).count_messages(), "read_timeout must be a number > 0"),
    ],
)
def test_bad_input_raises_before_any_request(emu, call, message):
    with pytest.raises(ValueError, match=message):
        call(VoiceTrackHook())
    assert api_requests(emu) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"login": None}, "has no login"),
        ({"password": ""}, "has no password"),
        (
            {"host": "127.0.0.1:8099"},
            "host field of connection 'voicetrack_default' must be an http.* set it to 'https://127.0.0.1:8099'",
        ),
        (
            {"host": "connect.routee.net"},
            "host field of connection 'voicetrack_default' .*got 'connect.routee.net' \\(no scheme\\); "
            "set it to 'https://connect.routee.net'",
        ),
        ({"extra": {"auth_url": "/oauth/token"}}, "extra 'auth_url' .* must be an http"),
        ({"extra": {"max_concurrency": "many"}}, "max_concurrency must be an integer >= 1, got 'many'"),
        ({"extra": {"verify_ssl": "perhaps"}}, "verify_ssl must be true or false"),
    ],
)
def test_bad_connection_raises_before_any_request(emu, monkeypatch, change, message):
    conn = {**json.loads(emu.connection_json()), **change}
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))
    with pytest.raises(ValueError, match=message):
        VoiceTrackHook().count_messages()
    assert api_requests(emu) == 0


# --- faults -----------------------------------------------------------------------------------------------


def test_expiring_tokens_are_renewed_mid_search(emu):
    emu.set_faults(token_lifetime=1, latency_ms=30)
    hook = VoiceTrackHook(page_size=100, max_concurrency=2, window=WEEK)
    started = time.monotonic()
    assert_exact(search_ids(hook), truth_ids(emu))
    assert time.monotonic() - started > 1.2
    assert emu.stats()["tokens_issued"] >= 2


@pytest.mark.parametrize("fault", ["unauthorized_rate", "forbidden_rate"])
def test_occasional_auth_failures_refresh_the_token_and_repeat(emu, fault):
    # A call gets up to three token refreshes. The emulator's fault counter
    # is global: at rate 0.2 it fires on API calls n = 5, 10, 15, ... (floor(n * 0.2) increases), so a
    # repeat (call n + 1) never faults, but only if no other page takes the numbers in between: one
    # page at a time. Still 40+ calls, 8+ faults, each refreshing the token.
    emu.set_faults(**{fault: 0.2})
    assert_exact(search_ids(VoiceTrackHook(page_size=250, max_concurrency=1)), truth_ids(emu))
    fired = faults_fired(emu)[fault.removesuffix("_rate")]
    assert fired >= 8
    assert emu.stats()["tokens_issued"] == 1 + fired  # one new token per refused call


@pytest.mark.parametrize(
    ("fault", "reason"), [("unauthorized_rate", "credentials"), ("forbidden_rate", "permissions")]
)
def test_persistent_auth_failure_raises_saying_what_is_at_fault(emu, fault, reason):
    emu.set_faults(**{fault: 1.0})
    with pytest.raises(VoiceTrackAuthError) as info:
        VoiceTrackHook().count_messages()
    assert info.value.reason == reason
    # the first attempt and one repeat for each of the three refreshes a call gets, then the error
    assert emu.stats()["requests"]["POST /voice/tracking"] == 4
    assert faults_fired(emu) == {fault.removesuffix("_rate"): 4}
    assert emu.stats()["tokens_issued"] == 4


@pytest.mark.parametrize("mode", ["seconds", "date", "none"])
def test_rate_limits_are_retried_for_each_retry_after_form(emu, mode):
    emu.set_faults(rate_limit_rate=0.3, retry_after_mode=mode, retry_after=1)
    assert_exact(search_ids(VoiceTrackHook(page_size=500)), truth_ids(emu))
    assert faults_fired(emu)["rate_limit"] > 0


def test_retry_after_seconds_is_waited(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json(max_retry_wait=30))
    emu.set_faults(rate_limit_rate=1.0, retry_after_mode="seconds", retry_after=1)
    hook = VoiceTrackHook(max_retries=1)
    with pytest.raises(VoiceTrackTransientError, match="HTTP 429"):
        hook.count_messages()
    # Measured by the emulator, from the end of the 429 to the start of the repeat: the client's
    # start-up and the machine's load before the first request are not in it.
    (_, first_end), (second_start, _) = emu.search_spans()
    # At least the 1 s asked for (the client's own first back-off is at most 0.5 s), and not the
    # 30 s that max_retry_wait would allow.
    assert 1.0 <= second_start - first_end < 10
    assert faults_fired(emu) == {"rate_limit": 2}


def test_retry_after_as_an_http_date_is_waited(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json(max_retry_wait=30))
    emu.set_faults(rate_limit_rate=1.0, retry_after_mode="date", retry_after=3)
    hook = VoiceTrackHook(max_retries=1)
    with pytest.raises(VoiceTrackTransientError, match="HTTP 429"):
        hook.count_messages()
    assert faults_fired(emu) == {"rate_limit": 2}
    (_, first_end), (second_start, _) = emu.search_spans()
    # The header is an HTTP date 3 s after the 429, rounded up to the whole second a date holds: the
    # client waits 2 to 4 s, far more than its own first back-off (at most 0.5 s) and far less than
    # max_retry_wait's 30 s.
    assert 2.0 <= second_start - first_end < 10


def test_error_bursts_are_retried(emu):
    emu.set_faults(error_burst=4, error_every=10)
    assert_exact(search_ids(VoiceTrackHook(page_size=300)), truth_ids(emu))
    assert faults_fired(emu)["error_burst"] >= 4


def test_endless_errors_raise_a_transient_error_after_the_retries(emu):
    emu.set_faults(error_burst=1000)
    with pytest.raises(VoiceTrackTransientError, match=r"giving up after 3 retries.*HTTP 50"):
        VoiceTrackHook(max_retries=3).count_messages()
    assert emu.stats()["requests"]["POST /voice/tracking"] == 4
    assert faults_fired(emu) == {"error_burst": 4}


@pytest.mark.parametrize("fault", ["drop_rate", "malformed_rate", "truncated_rate", "inconsistent_rate"])
def test_broken_responses_are_retried(emu, fault):
    emu.set_faults(**{fault: 0.25})
    assert_exact(search_ids(VoiceTrackHook(page_size=250)), truth_ids(emu))
    assert faults_fired(emu)[fault.removesuffix("_rate")] > 0


def test_always_malformed_bodies_fail_clearly(emu):
    emu.set_faults(malformed_rate=1.0)
    with pytest.raises(VoiceTrackResponseError, match="not valid JSON"):
        VoiceTrackHook(max_retries=2).count_messages()
    assert faults_fired(emu) == {"malformed": 3}


def test_records_added_during_paging_lose_nothing_and_repeat_nothing(emu):
    emu.set_faults(insert_during_paging=7)
    before = truth_ids(emu)
    hook = VoiceTrackHook(page_size=100, max_concurrency=4)
    ids = search_ids(hook)
    after = truth_ids(emu)
    assert len(ids) == len(set(ids))
    assert before <= set(ids) <= after
    assert len(after) > len(before)
    assert hook.last_search_stats["duplicates"] > 0
    assert faults_fired(emu)["insert_during_paging"] >= 1


def test_records_added_during_paging_pass_a_strict_search(emu):
    emu.set_faults(insert_during_paging=3)
    before = truth_ids(emu, date_end="2026-11-02T00:00:00Z")
    ids = search_ids(VoiceTrackHook(page_size=500, strict=True), end="2026-11-02T00:00:00Z")
    assert before <= set(ids) and len(ids) == len(set(ids))
    assert faults_fired(emu) == {"insert_during_paging": 1}


def deleted_while_paging(emu, k: int) -> tuple[int, str]:
    """Turn on the emulator's ``delete_during_paging=k`` for the first day's search.

    :return: the day's message count before, and the mismatch the hook must report for it.
    """
    n = len(truth_ids(emu, date_end=DAY_END))
    assert n > 500, "the day needs more than one page of 500"
    emu.set_faults(delete_during_paging=k)
    return n, (
        f"window [{START}, {DAY_END}): {n - k} distinct messages read but the API reported "
        f"totalElements={n} at the start and {n} at most"
    )


DAY_END = "2026-11-02T00:00:00Z"


def test_messages_deleted_while_paging_fail_a_strict_search(emu):
    _, mismatch = deleted_while_paging(emu, 5)
    with pytest.raises(VoiceTrackConsistencyError) as info:
        search_ids(VoiceTrackHook(page_size=500, strict=True), end=DAY_END)
    assert str(info.value) == mismatch
    assert faults_fired(emu) == {"delete_during_paging": 1}


def test_messages_deleted_while_paging_make_a_search_warn(emu, capfd):
    n, mismatch = deleted_while_paging(emu, 5)
    capfd.readouterr()
    ids = search_ids(VoiceTrackHook(page_size=500), end=DAY_END)
    assert len(ids) == len(set(ids)) == n - 5
    # Airflow's structlog writes the hook's log lines to the process's output.
    warnings = [line for line in capfd.readouterr().out.splitlines() if "[warning" in line]
    assert [line for line in warnings if mismatch in line] == warnings != []


# --- one token for concurrent callers -------------------------------------------------------------


@pytest.mark.parametrize("callers", ["threads", "pool"])
def test_concurrent_first_calls_fetch_exactly_one_token(emu, callers):
    # Token requests take 0.3 s here, so that any caller not waiting for the first token would
    # certainly ask for one of its own meanwhile.
    emu.set_faults(latency_ms=300)
    hook = VoiceTrackHook(page_size=100, max_concurrency=6)
    if callers == "threads":
        # Six threads start the hook's first search at the same moment.
        start = threading.Barrier(6)

        def first_search(_: int) -> list[str]:
            start.wait(timeout=30)
            return search_ids(hook, end="2026-11-01T02:00:00Z")

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(first_search, range(6)))
        assert results[0] and all(result == results[0] for result in results)
    else:
        # The hook's own pool: get_messages fetches six messages at once, the first call of all.
        ids = sorted(truth_ids(emu, date_end="2026-11-01T02:00:00Z"))[:6]
        assert list(hook.get_messages(ids)) == ids
    assert emu.stats()["tokens_issued"] == 1


# --- redirects ----------------------------------------------------------------------------------------


def test_authorization_does_not_follow_a_redirect_to_another_host(emu, redirector, monkeypatch):
    conn = json.loads(emu.connection_json(**FAST_RETRIES))
    conn["host"] = redirector.url
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))
    assert VoiceTrackHook().get_message("m1") == {"messageId": "landed"}
    (_, first_auth), (landed_path, landed_auth) = redirector.seen
    assert first_auth is not None and first_auth.startswith("Bearer ")
    assert landed_path.startswith("/landed") and landed_auth is None


def test_secrets_do_not_appear_in_logs_or_errors(emu, monkeypatch, capfd):
    emu.set_faults(unauthorized_rate=1.0)
    capfd.readouterr()
    with pytest.raises(VoiceTrackAuthError) as info:
        VoiceTrackHook().count_messages()
    logged = capfd.readouterr()
    # The scan reaches the hook's log lines (Airflow's structlog writes them to the output).
    assert "getting a new token" in logged.out
    text = logged.out + logged.err + str(info.value)
    assert emu.client_secret not in text and "Basic " not in text and "Bearer" not in text
