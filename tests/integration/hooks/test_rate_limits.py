"""The connection's limiter, retry budget and token rules, for both hooks and the operator, over HTTP."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from support.emulator import HONOUR_RETRY_AFTER, truth_ids

from airflow_voicetrack.exceptions import VoiceTrackAuthError, VoiceTrackTransientError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook, VoiceTrackHook
from airflow_voicetrack.protocol import Limiter

DAY = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
KINDS = ["sync", "async"]
#: For the tests that must sit out a Retry-After (about 3 s each): the sync hook in the fast tier, the
#: async one in the slow tier (both drivers follow the same limiter).
KINDS_SLOW_ASYNC = ["sync", pytest.param("async", marks=pytest.mark.slow)]


def search(kind: str, start: str = DAY[0], end: str = DAY[1], **hook_kwargs: Any) -> tuple[list[str], dict]:
    """:return: the ids a search of ``[start, end)`` yields, and the hook's ``last_search_stats``."""
    if kind == "sync":
        hook = VoiceTrackHook(**hook_kwargs)
        return [m["messageId"] for m in hook.search_messages(start, end)], hook.last_search_stats or {}

    async def run() -> tuple[list[str], dict]:
        hook = VoiceTrackAsyncHook(**hook_kwargs)
        try:
            return [
                m["messageId"] async for m in hook.search_messages(start, end)
            ], hook.last_search_stats or {}
        finally:
            await hook.close()

    return asyncio.run(run())


def limiter() -> Limiter:
    (only,) = Limiter._registry.values()
    return only


# --- the connection-wide pause and AIMD -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS_SLOW_ASYNC)
def test_a_429_pauses_every_request_of_the_connection_for_its_retry_after(patient, kind):
    patient.set_faults(rate_limit=10)
    ids, stats = search(kind, page_size=50, max_concurrency=8)
    assert len(ids) == len(set(ids)) and set(ids) == truth_ids(patient, date_start=DAY[0], date_end=DAY[1])
    refused = patient.refused_at()
    assert refused, "the search never met the rate limit"
    # After the first 429, nothing new is sent until its Retry-After (1 s) has passed. The server may
    # still see a few requests that were on their way (admitted before the 429 came back, and late
    # on a busy machine); without the pause it would see at least the 9 calls its bucket refills
    # in that time, and more 429s.
    first = refused[0]
    starts = [start for start, _ in patient.search_spans()]
    timeline = {"refused": [r - first for r in refused], "starts": [s - first for s in sorted(starts)]}
    assert len([s for s in starts if first + 0.05 < s < first + 0.95]) <= 3, timeline
    assert stats["paused_seconds"] >= 0.9
    assert stats["responses_429"] == len(refused)
    assert stats["retries"] >= len(refused)


@pytest.mark.parametrize("kind", KINDS_SLOW_ASYNC)
def test_the_limit_backs_off_on_429s_and_keeps_them_rare(patient, kind):
    patient.set_faults(rate_limit=10)
    _ids, stats = search(kind, page_size=50, max_concurrency=8)
    statuses = patient.stats()["search_statuses"]
    # 29 pages at 10 a second: without the limiter every page in flight met its own 429, again and
    # again; with it, a handful in the first burst, then the limiter holds the rate.
    assert statuses["200"] == stats["pages"] >= 25
    assert statuses.get("429", 0) <= 10
    assert stats["concurrency_max"] > 1  # it grew at first ...
    assert limiter().limit < stats["concurrency_max"]  # ... and backed off


@pytest.mark.parametrize("kind", KINDS)
def test_without_throttling_the_limit_grows_to_max_concurrency(emu, kind):
    emu.set_faults(latency_ms=20)
    _ids, stats = search(kind, page_size=50, max_concurrency=4)
    assert (stats["concurrency_min"], stats["concurrency_max"]) == (1.0, 4.0)
    assert emu.stats()["search_in_flight_max"] == 4
    assert stats["responses_429"] == stats["retries"] == 0


@pytest.mark.parametrize("kind", KINDS_SLOW_ASYNC)
def test_ratelimit_headers_keep_the_search_from_meeting_429s(patient, kind):
    patient.set_faults(rate_limit=10, rate_limit_headers=1, latency_ms=20)
    ids, stats = search(kind, page_size=50, max_concurrency=8)
    assert len(set(ids)) == len(ids) == stats["records"]
    # RateLimit-Remaining no larger than the requests in flight pauses the connection until its
    # RateLimit-Reset: the first pause (a second without a request) comes before any 429.
    starts = sorted(start for start, _ in patient.search_spans())
    first_refusal = min(patient.refused_at(), default=float("inf"))
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts) if later < first_refusal]
    assert max(gaps) >= 0.9
    assert stats["paused_seconds"] >= 0.9


def test_max_requests_per_second_spaces_the_requests(patient, monkeypatch):
    extras = {**HONOUR_RETRY_AFTER, "max_requests_per_second": 8}
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", patient.connection_json(**extras))
    patient.set_faults(rate_limit=8)
    _ids, stats = search("sync", page_size=100, max_concurrency=8)
    assert stats["pages"] >= 14
    assert patient.stats()["search_statuses"].get("429", 0) == 0
    starts = sorted(start for start, _ in patient.search_spans())
    assert starts[-1] - starts[0] >= (len(starts) - 1) / 8 - 0.05


# --- retry budget -------------------------------------------------------------------------------


def test_a_failing_service_fails_the_operation_fast_with_the_budget_named(emu):
    emu.set_faults(error_burst=10_000, error_status=503)
    hook = VoiceTrackHook(max_concurrency=8)
    with pytest.raises(VoiceTrackTransientError, match="retry budget is spent"):
        hook.get_messages([f"id-{n}" for n in range(40)])
    # Without the budget: 40 calls x 9 attempts = 360. With it: 40 first attempts, 40 free first
    # retries, and about a fifth of the requests more, before a call is refused.
    assert emu.stats()["requests"]["GET /voice/tracking/{message_id}"] < 120


def test_a_quiet_callers_first_retries_are_never_refused(emu):
    emu.set_faults(error_burst=2, error_status=503)
    hook = VoiceTrackHook()
    assert hook.count_messages(*DAY) > 0  # two retries, on a budget of one request


def test_one_failing_async_hook_does_not_spend_another_ones_budget(emu):
    async def run() -> None:
        failing, healthy = VoiceTrackAsyncHook(), VoiceTrackAsyncHook()
        try:
            emu.set_faults(error_burst=10_000, error_status=500)
            with pytest.raises(VoiceTrackTransientError, match="retry budget is spent"):
                await failing.get_messages([f"id-{n}" for n in range(30)])
            emu.set_faults(error_burst=4, error_status=500)
            with pytest.raises(VoiceTrackTransientError, match="retry budget is spent"):
                await failing.count_messages(*DAY)  # its first retry is free, the next ones are not
            emu.set_faults(error_burst=4, error_status=500)
            assert await healthy.count_messages(*DAY) > 0  # same loop, same connection, own budget
        finally:
            await failing.close()
            await healthy.close()

    asyncio.run(run())


# --- token rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_revoking_every_token_every_k_requests_never_fails_a_search_with_good_credentials(emu, kind):
    # Every 10th call revokes every token: once every two or three rounds of the 4 requests in flight
    # (a service revoking more often than each round would reject tokens before they could serve).
    emu.set_faults(revoke_every=10, token_lifetime=2)
    ids, _stats = search(
        kind, "2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z", page_size=100, max_concurrency=4
    )
    expected = truth_ids(emu, date_start="2026-11-01T00:00:00Z", date_end="2026-11-04T00:00:00Z")
    assert len(ids) == len(set(ids)) and set(ids) == expected
    statuses = emu.stats()["search_statuses"]
    assert statuses["401"] >= statuses["200"] // 10  # every 10th call met a revoked token
    assert emu.stats()["tokens_issued"] >= statuses["200"] // 10


@pytest.mark.parametrize("kind", KINDS)
def test_a_403_on_one_resource_still_fails_after_three_fresh_tokens_with_the_clear_error(emu, kind):
    emu.set_faults(forbidden_rate=1.0)

    async def arun() -> Any:
        hook = VoiceTrackAsyncHook()
        try:
            return await hook.count_messages(*DAY)
        finally:
            await hook.close()

    with pytest.raises(VoiceTrackAuthError) as caught:
        VoiceTrackHook().count_messages(*DAY) if kind == "sync" else asyncio.run(arun())
    assert caught.value.reason == "permissions"
    assert "check its scopes/permissions" in str(caught.value)
    assert emu.stats()["tokens_issued"] == 4  # the first and three fresh ones
    assert emu.stats()["search_statuses"] == {"403": 4}


def test_a_403_after_the_token_served_renews_it_without_spending_the_credential_budget(emu):
    emu.set_faults(forbidden_rate=0.5)  # every second call: 200, 403, 200, 403 ...
    hook = VoiceTrackHook(max_concurrency=1)
    # Each 403 comes to a token that has served a 200: four in a row would have failed before.
    for _ in range(4):
        assert hook.count_messages(*DAY) > 0
    assert emu.stats()["search_statuses"] == {"200": 4, "403": 3}
