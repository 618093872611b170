"""VoiceTrackAsyncHook against the emulator over real HTTP (each test runs its own event loop)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from support.emulator import END, FAST_RETRIES, START, api_requests, faults_fired, truth_ids

from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.exceptions import (
    VoiceTrackAuthError,
    VoiceTrackConsistencyError,
    VoiceTrackNotFoundError,
    VoiceTrackTransientError,
)
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook


def run(coro_fn, **hook_kwargs):
    """Run ``coro_fn(hook)`` on a fresh loop with a fresh async hook, closing the hook after."""

    async def main():
        hook = VoiceTrackAsyncHook(**hook_kwargs)
        try:
            return await coro_fn(hook)
        finally:
            await hook.close()

    return asyncio.run(main())


async def collect(hook, start=START, end=END, **kwargs) -> list[str]:
    return [m["messageId"] async for m in hook.search_messages(start, end, **kwargs)]


def assert_exact(ids, expected):
    assert len(ids) == len(set(ids)) and set(ids) == expected


def test_async_search_returns_every_message_once(emu):
    assert_exact(run(collect, page_size=300, max_concurrency=4), truth_ids(emu))


def test_async_search_with_filters_and_sort(emu):
    filters = [{"fieldName": "country", "searchTerm": "DE"}]

    async def search(hook):
        return await collect(hook, filters=filters, sort="messageId,asc")

    ids = run(search, page_size=50, window=timedelta(days=7))
    assert ids == sorted(truth_ids(emu, filters=filters))


def test_async_search_is_lazy(emu):
    async def first_then_rest(hook):
        messages = hook.search_messages(START, END)
        await anext(messages)
        await asyncio.sleep(0.2)
        requested = emu.stats()["requests"].get("POST /voice/tracking", 0)
        rest = [m async for m in messages]
        return requested, len(rest)

    requested, rest = run(first_then_rest, page_size=100, max_concurrency=2, window=timedelta(days=7))
    assert requested <= 1 + 2 and rest == 9_999


def test_async_count_messages(emu):
    async def count(hook):
        return await hook.count_messages(START, "2026-11-02T00:00:00Z", tagged=True)

    assert run(count) == len(truth_ids(emu, date_end="2026-11-02T00:00:00Z", tagged=True))
    assert emu.stats()["requests"]["POST /voice/tracking"] == 1


def test_async_get_messages_maps_missing_to_none(emu):
    ids = [m["messageId"] for m in emu.truth(START, "2026-11-01T01:00:00Z")][:8]

    async def fetch(hook):
        return await hook.get_messages([*ids, "missing"], missing_ok=True)

    result = run(fetch, max_concurrency=3)
    assert list(result) == [*ids, "missing"] and result["missing"] is None
    assert all(result[i]["messageId"] == i for i in ids)


def test_async_get_messages_raises_on_missing_by_default(emu):
    async def fetch(hook):
        return await hook.get_messages(["missing"])

    with pytest.raises(VoiceTrackNotFoundError):
        run(fetch)


@pytest.mark.parametrize(
    "faults",
    [
        {"unauthorized_rate": 0.2},
        {"forbidden_rate": 0.2},
        {"rate_limit_rate": 0.3, "retry_after_mode": "date"},
        {"rate_limit_rate": 0.3, "retry_after_mode": "none"},
        {"error_burst": 3, "error_every": 8},
        {"drop_rate": 0.2},
        {"malformed_rate": 0.2},
        {"truncated_rate": 0.2},
        {"inconsistent_rate": 0.2},
        {"token_lifetime": 60},
    ],
)
def test_async_search_survives_faults(emu, faults):
    # A 401/403 gets up to three token refreshes, then fails the call. The fault counter is global (fires on
    # API calls n = 5, 10, 15, ... at rate 0.2): fetched one page at a time, a repeat (call n + 1)
    # never faults; concurrent pages could take n + 1..n + 4 and hand the repeat call n + 5.
    auth_fault = {"unauthorized_rate", "forbidden_rate"} & set(faults)
    concurrency = {"max_concurrency": 1} if auth_fault else {}
    emu.set_faults(**faults)
    if "token_lifetime" in faults:
        # The emulator's clock steps 20 s per request: the 60 s token expires every few pages.
        emu.freeze_clock(tick=20)
    assert_exact(run(collect, page_size=250, **concurrency), truth_ids(emu))
    if "token_lifetime" in faults:
        assert emu.stats()["tokens_issued"] >= 2
    else:
        fault = next(name for name in faults if name.endswith("_rate") or name == "error_burst")
        assert faults_fired(emu)[fault.removesuffix("_rate")] > 0


def test_async_records_added_during_paging_lose_nothing(emu):
    emu.set_faults(insert_during_paging=5)
    before = truth_ids(emu)
    ids = run(collect, page_size=100)
    assert len(ids) == len(set(ids)) and before <= set(ids) <= truth_ids(emu)
    assert faults_fired(emu)["insert_during_paging"] >= 1


DAY_END = "2026-11-02T00:00:00Z"


def test_async_messages_deleted_while_paging_fail_a_strict_search(emu):
    n = len(truth_ids(emu, date_end=DAY_END))
    emu.set_faults(delete_during_paging=4)

    async def search(hook):
        return await collect(hook, end=DAY_END)

    with pytest.raises(VoiceTrackConsistencyError) as info:
        run(search, page_size=500, strict=True)
    assert str(info.value) == (
        f"window [{START}, {DAY_END}): {n - 4} distinct messages read but the API reported "
        f"totalElements={n} at the start and {n} at most"
    )
    assert faults_fired(emu) == {"delete_during_paging": 1}


def test_async_messages_deleted_while_paging_make_a_search_warn(emu, capfd):
    n = len(truth_ids(emu, date_end=DAY_END))
    emu.set_faults(delete_during_paging=4)

    async def search(hook):
        return await collect(hook, end=DAY_END)

    capfd.readouterr()
    ids = run(search, page_size=500)
    assert len(ids) == len(set(ids)) == n - 4
    warnings = [line for line in capfd.readouterr().out.splitlines() if "[warning" in line]
    assert len(warnings) == 1 and f"{n - 4} distinct messages read" in warnings[0]


def test_async_concurrent_first_calls_fetch_exactly_one_token(emu):
    emu.set_faults(latency_ms=300)  # any caller not waiting for the first token would ask meanwhile

    async def counts(hook):
        return await asyncio.gather(*(hook.count_messages(START, DAY_END) for _ in range(6)))

    assert run(counts) == [len(truth_ids(emu, date_end=DAY_END))] * 6
    assert emu.stats()["tokens_issued"] == 1


def test_async_persistent_403_raises_permissions_error(emu):
    emu.set_faults(forbidden_rate=1.0)

    async def count(hook):
        return await hook.count_messages()

    with pytest.raises(VoiceTrackAuthError) as info:
        run(count)
    assert info.value.reason == "permissions"
    assert faults_fired(emu) == {"forbidden": 4}


def test_async_endless_errors_raise_after_the_retries(emu):
    emu.set_faults(error_burst=1000)

    async def count(hook):
        return await hook.count_messages()

    with pytest.raises(VoiceTrackTransientError):
        run(count, max_retries=2)
    assert emu.stats()["requests"]["POST /voice/tracking"] == 3
    assert faults_fired(emu) == {"error_burst": 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filters": [{"fieldName": "country", "searchTerm": ""}]}, "must not be empty"),
        ({"page_size": 0}, "page_size must be an integer from 1 to 2000"),
        ({"sort": ",desc"}, "sort must look like"),
        ({"limit": 2.5}, "limit must be None"),
    ],
)
def test_async_bad_input_raises_before_any_request(emu, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VoiceTrackAsyncHook().search_messages(START, END, **kwargs)
    with pytest.raises(ValueError, match="must be after date_start"):
        VoiceTrackAsyncHook().search_messages(END, START)
    assert api_requests(emu) == 0


def test_async_bad_connection_raises_before_any_request(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json(max_concurrency=0))

    async def count(hook):
        return await hook.count_messages()

    with pytest.raises(ValueError, match="max_concurrency must be an integer >= 1"):
        run(count)
    assert api_requests(emu) == 0


def test_async_authorization_does_not_follow_a_redirect_to_another_host(emu, redirector, monkeypatch):
    conn = json.loads(emu.connection_json(**FAST_RETRIES))
    conn["host"] = redirector.url
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))

    async def fetch(hook):
        return await hook.get_message("m1")

    assert run(fetch) == {"messageId": "landed"}
    (_, first_auth), (landed_path, landed_auth) = redirector.seen
    assert first_auth is not None and first_auth.startswith("Bearer ")
    assert landed_path.startswith("/landed") and landed_auth is None


def test_async_campaign_only_search_with_an_open_range_matches_the_truth(emu):
    campaign_tracking_id = CAMPAIGNS[0].tracking_id

    async def search(hook):
        ids = await collect(hook, None, None, campaign_tracking_id=campaign_tracking_id)
        return ids, hook.last_search_stats

    ids, stats = run(search, page_size=500)
    assert_exact(
        ids, truth_ids(emu, date_start=None, date_end=None, campaign_tracking_id=campaign_tracking_id)
    )
    assert stats["windows"] == 1


def test_async_campaign_id_still_works_with_a_deprecation_warning(emu):
    tracking_id = CAMPAIGNS[0].tracking_id
    expected = truth_ids(emu, campaign_tracking_id=tracking_id)

    async def search(hook):
        with pytest.warns(DeprecationWarning, match="campaign_tracking_id") as record:
            messages = hook.search_messages(START, END, campaign_id=tracking_id)
        assert record[0].filename == __file__
        ids = [m["messageId"] async for m in messages]
        with pytest.warns(DeprecationWarning) as record:
            count = await hook.count_messages(START, END, campaign_id=tracking_id)
        assert record[0].filename == __file__
        return ids, count

    ids, count = run(search, page_size=500)
    assert_exact(ids, expected)
    assert count == len(expected)


def test_async_search_returns_an_async_generator(emu):
    messages = VoiceTrackAsyncHook().search_messages(START, END)
    assert hasattr(messages, "aclose") and hasattr(messages, "asend")
    asyncio.run(messages.aclose())
    assert api_requests(emu) == 0


@pytest.mark.parametrize(("limit", "page_size", "expected_requests"), [(20, 20, 1), (250, 100, 3)])
def test_async_limit_requests_only_the_pages_it_needs(emu, limit, page_size, expected_requests):
    async def search(hook):
        everything = await collect(hook, sort="messageId,asc")  # also gets the hook its token
        emu.reset_stats()
        ids = await collect(hook, sort="messageId,asc", limit=limit)
        await asyncio.sleep(0.3)  # a page fetched ahead in the background would show up by now
        return everything, ids

    everything, ids = run(search, page_size=page_size, max_concurrency=8, window=timedelta(days=7))
    assert ids == everything[:limit]
    assert api_requests(emu) == expected_requests


def test_async_hook_works_with_the_emulator_connection_uri(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_uri(**FAST_RETRIES))

    async def count(hook):
        return await hook.count_messages(START, END), (await hook.get_settings()).base_url

    assert run(count) == (len(truth_ids(emu)), emu.url)


# --- the calls the sync hook offers too: conversation, campaign, test_connection ------------------------


def test_async_get_conversation_returns_its_dial_parts(emu):
    by_conversation: dict[str, set[str]] = {}
    for m in emu.truth():
        by_conversation.setdefault(m["conversationTrackingId"], set()).add(m["messageId"])
    conversation, expected = max(by_conversation.items(), key=lambda item: len(item[1]))
    assert len(expected) > 1

    async def dial_parts(hook):
        return [m["messageId"] async for m in hook.get_conversation(conversation)]

    assert_exact(run(dial_parts, page_size=1), expected)


def test_async_get_campaign_messages_returns_the_campaign(emu):
    tracking_id = CAMPAIGNS[1].tracking_id

    async def listing(hook):
        return [m["messageId"] async for m in hook.get_campaign_messages(tracking_id, page_size=200)]

    assert_exact(run(listing), {m["messageId"] for m in emu.truth(campaign_tracking_id=tracking_id)})


def test_async_get_campaign_messages_without_an_id_is_refused_when_called(emu):
    with pytest.raises(ValueError, match="needs campaign_tracking_id"):
        VoiceTrackAsyncHook().get_campaign_messages()
    assert api_requests(emu) == 0


def test_async_test_connection_succeeds(emu):
    async def check(hook):
        return await hook.test_connection()

    ok, message = run(check)
    assert ok, message
    assert emu.stats()["tokens_issued"] == 1


def test_async_test_connection_reports_bad_credentials(emu, monkeypatch):
    conn = json.loads(emu.connection_json())
    conn["password"] = "wrong-secret"
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(conn))

    async def check(hook):
        return await hook.test_connection()

    ok, message = run(check)
    assert not ok and message.startswith("Credentials rejected") and "wrong-secret" not in message


def test_async_test_connection_reports_an_invalid_connection(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json(page_size=0))

    async def check(hook):
        return await hook.test_connection()

    ok, message = run(check)
    assert not ok and "page_size" in message
    assert api_requests(emu) == 0


def test_both_hooks_offer_the_same_public_calls():
    from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook

    def calls(cls):
        return {name for name in vars(cls) if not name.startswith("_")} - {
            "settings",
            "get_settings",
            "close",
        }

    assert calls(VoiceTrackHook) == calls(VoiceTrackAsyncHook)
