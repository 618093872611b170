"""The connection's limiter, the retry budget and the token rules, free of I/O, with literal values."""

from __future__ import annotations

import random

import pytest

from airflow_voicetrack.exceptions import VoiceTrackAuthError, VoiceTrackTransientError
from airflow_voicetrack.protocol import (
    Call,
    Limiter,
    LimitStats,
    Permit,
    RefreshToken,
    Request,
    Response,
    RetryBudget,
    RetryPolicy,
    parse_message,
)
from airflow_voicetrack.protocol.limits import BUDGET_MIN, pause_seconds


def grant(limiter: Limiter, now: float) -> Permit:
    permit = limiter.acquire(now)
    assert isinstance(permit, Permit), f"refused for {permit} s"
    return permit


def ok(limiter: Limiter, permit: Permit, now: float, headers: dict[str, str] | None = None) -> None:
    limiter.release(permit, now, status=200, headers=headers or {})


# -- AIMD --------------------------------------------------------------------------------------


def test_a_new_limiter_sends_one_request_at_a_time():
    limiter = Limiter(16)
    assert limiter.limit == 1.0
    grant(limiter, 0.0)
    assert limiter.acquire(0.0) == pytest.approx(0.001)  # no latency known yet: poll soon


def test_the_limit_grows_by_one_request_per_round_of_successes():
    limiter = Limiter(16)
    ok(limiter, grant(limiter, 0.0), 0.1)
    assert limiter.limit == 2.0  # 1 + 1/1
    first, second = grant(limiter, 0.2), grant(limiter, 0.25)
    assert limiter.acquire(0.26) == pytest.approx(0.025)  # a third waits: the limit binds
    ok(limiter, first, 0.3)
    third = grant(limiter, 0.3)
    ok(limiter, second, 0.35)
    ok(limiter, third, 0.4)
    # The first went out with a slot to spare: only sends the limit held back or that took its last
    # slot say it could grow. 2 + 1/2 + 1/2.5
    assert limiter.limit == pytest.approx(2.9)


def test_the_limit_never_grows_past_max_concurrency():
    limiter = Limiter(2)
    now = 0.0
    for _ in range(10):
        ok(limiter, grant(limiter, now), now + 0.1)
        now += 0.2
    assert limiter.limit == 2.0


def test_a_429_cuts_the_limit_to_seven_tenths_and_pauses_everyone():
    limiter = Limiter(16)
    limiter.limit = 10.0
    permits = [grant(limiter, 0.0) for _ in range(3)]
    limiter.release(permits[0], 0.1, status=429, headers={})
    # 0.7 * 10 = 7; the goodput cap does not apply before any success has set a latency floor.
    assert limiter.limit == 7.0
    limiter.pause(0.1, 2.0)
    assert limiter.acquire(0.5) == pytest.approx(1.6)
    # The other requests already in flight were sent before the cut: no second cut.
    limiter.release(permits[1], 0.15, status=429, headers={})
    assert limiter.limit == 7.0
    assert isinstance(limiter.acquire(2.1), Permit)


def test_a_throttle_caps_the_limit_at_what_the_last_second_succeeded_with():
    limiter = Limiter(16)
    limiter.limit = 8.0
    now = 0.0
    for _ in range(5):  # five successes of 50 ms each: latency floor 0.05 s
        permit = grant(limiter, now)
        ok(limiter, permit, now + 0.05)
        now += 0.1
    throttled = grant(limiter, now)
    limiter.release(throttled, now + 0.05, status=429, headers={})
    # 5 successes in the last second at a 50 ms floor needed 0.25 requests in flight; 0.9 of that.
    assert limiter.limit == pytest.approx(0.225)


def test_a_throttle_after_too_few_successes_to_measure_only_cuts_to_seven_tenths():
    limiter = Limiter(16)
    ok(limiter, grant(limiter, 0.0), 0.05)  # one success: 1 -> 2
    limiter.release(grant(limiter, 0.1), 0.15, status=429, headers={})
    assert limiter.limit == pytest.approx(1.4)


def settle(limiter: Limiter, now: float) -> float:
    """Twenty successes, 100 s apart (past any pacing, too sparse to measure a goodput): a verdict
    on the last cut, which helped. :return: the time after them."""
    for _ in range(20):
        ok(limiter, grant(limiter, now), now + 0.05)
        now += 100.0
    return now


def test_the_limit_never_stands_for_less_than_half_a_request_per_second():
    limiter = Limiter(16)
    ok(limiter, grant(limiter, 0.0), 0.05)
    limiter.limit = 0.03  # 0.6 requests a second at a 50 ms floor
    limiter.release(grant(limiter, 100.0), 100.05, status=429, headers={})
    assert limiter.limit == pytest.approx(0.5 * 0.05)  # not 0.7 x 0.03: 0.5 requests a second


def test_an_outage_cuts_the_limit_once_and_undoes_the_cut_when_the_refusals_go_on():
    limiter = Limiter(16)
    limiter.limit = 4.0
    for now in range(10):  # nothing but 503s, one round after the other
        limiter.release(grant(limiter, float(now)), now + 0.1, status=503, headers={})
    assert limiter.limit == pytest.approx(2.8)
    for now in range(10, 30):  # the cut changed nothing: 20 more 503s, and it is undone
        limiter.release(grant(limiter, float(now)), now + 0.1, status=503, headers={})
    assert limiter.limit == 4.0 and limiter.cuts_undone == 1


def test_a_cut_that_stopped_the_refusals_is_kept_and_the_next_throttle_cuts_again():
    limiter = Limiter(16)
    limiter.limit = 4.0
    limiter.release(grant(limiter, 0.0), 0.1, status=429, headers={})
    now = settle(limiter, 1.0)  # 20 successes after the cut: it helped
    assert limiter.cuts_undone == 0
    cut = limiter.limit
    limiter.release(grant(limiter, now), now + 0.1, status=429, headers={})
    assert limiter.limit == pytest.approx(cut * 0.7)


def test_no_second_throttle_cut_before_the_verdict_on_the_first():
    limiter = Limiter(16)
    limiter.limit = 4.0
    limiter.release(grant(limiter, 0.0), 0.1, status=429, headers={})
    ok(limiter, grant(limiter, 1.0), 1.05)  # a success, and a round later ...
    limiter.release(grant(limiter, 2.0), 2.05, status=429, headers={})
    assert limiter.limit == pytest.approx(2.8)  # ... no second cut: 2 of 20 responses judged


def test_429s_that_do_not_follow_the_rate_do_not_drive_the_limit_down():
    # 30 % of responses refused at random, whatever the pace: each cut is judged, and undone.
    draw = random.Random(7)
    limiter = Limiter(16)
    now = 0.0
    for _ in range(3000):
        permit = limiter.acquire(now)
        if not isinstance(permit, Permit):
            now += permit
            continue
        now += 0.05
        limiter.release(permit, now, status=429 if draw.random() < 0.3 else 200, headers={})
    assert limiter.cuts_undone >= 5
    # About one request in flight (20 a second at 50 ms, sequential); with every cut kept, 0.025.
    assert limiter.limit >= 0.9
    assert now < 3000 * 0.05 * 1.2  # and as fast as 3,000 sequential requests, give or take pauses


def test_without_a_latency_floor_the_limit_stays_at_one_request_at_least():
    limiter = Limiter(16)
    limiter.limit = 1.2
    limiter.release(grant(limiter, 0.0), 0.1, status=429, headers={})
    assert limiter.limit == 1.0


def test_a_503_backs_off_like_a_429():
    limiter = Limiter(16)
    limiter.limit = 4.0
    limiter.release(grant(limiter, 0.0), 0.1, status=503, headers={})
    assert limiter.limit == pytest.approx(2.8)


def test_latency_far_above_its_floor_backs_off_by_a_tenth():
    limiter = Limiter(16)
    ok(limiter, grant(limiter, 0.0), 0.05)  # floor 50 ms; grows 1 -> 2
    ok(limiter, grant(limiter, 1.0), 1.2)  # 200 ms: above 2 x 50 ms and 50 ms + 100 ms
    assert limiter.limit == pytest.approx(1.8)


def test_a_few_milliseconds_of_jitter_on_a_fast_server_is_not_congestion():
    limiter = Limiter(16)
    ok(limiter, grant(limiter, 0.0), 0.002)
    limiter.limit = 1.0
    ok(limiter, grant(limiter, 1.0), 1.02)  # 10 x the floor, yet only 18 ms above it: grows
    assert limiter.limit == 2.0


def test_after_a_throttle_the_limit_grows_by_five_percent_a_second():
    limiter = Limiter(16)
    limiter.limit = 2.0
    limiter.release(grant(limiter, 0.0), 0.0, status=429, headers={})
    assert limiter.limit == pytest.approx(1.4)
    spare, last_slot = grant(limiter, 1.0), grant(limiter, 1.0)
    ok(limiter, spare, 1.05)
    ok(limiter, last_slot, 1.05)  # 1.05 s since the cut, counted as one at most
    assert limiter.limit == pytest.approx(1.4 * 1.05)
    first = grant(limiter, 1.5)
    assert limiter.acquire(1.5) == pytest.approx(0.05 / 1.47)  # paced at limit / floor
    held = grant(limiter, 1.54)
    ok(limiter, first, 1.55)
    ok(limiter, held, 1.59)  # 0.54 s after the last growth
    assert limiter.limit == pytest.approx(1.47 * (1 + 0.05 * 0.54))


def test_a_fractional_limit_paces_sends_at_limit_over_latency_floor():
    limiter = Limiter(16)
    ok(limiter, grant(limiter, 0.0), 0.05)  # floor 50 ms, limit 2
    limiter.limit = 0.5  # half a request in flight: 10 requests per second
    first = grant(limiter, 1.0)
    ok(limiter, first, 1.05)
    limiter.limit = 0.5
    assert limiter.acquire(1.06) == pytest.approx(0.04)  # next send at 1.1
    assert isinstance(limiter.acquire(1.1), Permit)


def test_max_requests_per_second_spaces_sends_evenly():
    limiter = Limiter(16, max_requests_per_second=4)
    limiter.limit = 16.0
    grant(limiter, 0.0)
    assert limiter.acquire(0.1) == pytest.approx(0.15)
    grant(limiter, 0.25)


def test_ratelimit_remaining_zero_pauses_until_the_reset():
    limiter = Limiter(16)
    ok(limiter, grant(limiter, 0.0), 0.05, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "3"})
    assert limiter.acquire(1.05) == pytest.approx(2.0)
    limiter2 = Limiter(16)
    ok(limiter2, grant(limiter2, 0.0), 0.05, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2"})
    assert limiter2.acquire(0.05) == pytest.approx(2.0)


def test_ratelimit_remaining_no_larger_than_the_limit_pauses_too():
    limiter = Limiter(16)
    limiter.limit = 3.0
    first, *others = (grant(limiter, 0.0) for _ in range(3))
    ok(limiter, first, 0.05, headers={"RateLimit-Remaining": "5", "RateLimit-Reset": "1"})
    assert isinstance(limiter.acquire(0.05), Permit)  # 5 left for at most 3 in flight
    ok(limiter, others[0], 0.06, headers={"RateLimit-Remaining": "3", "RateLimit-Reset": "1"})
    assert limiter.acquire(0.06) == pytest.approx(1.0)  # 3 left: the 3 the limit allows may take them


def test_a_429_pauses_for_retry_after_else_for_ratelimit_reset():
    assert pause_seconds({"RateLimit-Reset": "4"}, 7.0) == 7.0
    assert pause_seconds({"RateLimit-Reset": "4"}, None) == 4.0
    assert pause_seconds({"X-RateLimit-Reset": "5"}, None) == 5.0
    assert pause_seconds({}, None) is None


def test_one_limiter_per_connection_key_with_the_largest_ceiling_and_lowest_rate():
    key = ("test_one_limiter_per_connection_key", "http://127.0.0.1:1", "app")
    first = Limiter.of(key, 4, None)
    again = Limiter.of(key, 16, 5.0)
    assert first is again
    assert (again.max_concurrency, again.max_requests_per_second) == (16, 5.0)
    assert Limiter.of(key, 2, 9.0).max_requests_per_second == 5.0
    assert Limiter.of((*key[:2], "other app"), 4, None) is not first


def test_stats_count_the_pause_once_however_many_requests_wait():
    stats = LimitStats()
    stats.sent(Permit(0.0, 1.0, True))
    stats.sent(Permit(0.0, 3.0, True))
    stats.paused(1.0, 2.0)
    stats.paused(1.5, 2.0)  # another request waiting through the same pause
    stats.paused(1.8, 2.5)  # extended
    stats.count(rate_limited=True)
    stats.count(retry=True)
    assert stats.as_dict() == {
        "concurrency_min": 1.0,
        "concurrency_mean": 2.0,
        "concurrency_max": 3.0,
        "paused_seconds": 1.5,
        "responses_429": 1,
        "retries": 1,
    }


# -- retry budget -------------------------------------------------------------------------------


def test_every_call_may_retry_once_whatever_the_budget():
    budget = RetryBudget()
    assert all(budget.spend(1, 0.0) for _ in range(100))


def test_later_retries_stop_at_a_fifth_of_recent_requests_plus_five():
    budget = RetryBudget()
    for _ in range(50):
        budget.sent(0.0)
    allowed = sum(budget.spend(2, 0.0) for _ in range(100))
    assert allowed == 50 // 5 + BUDGET_MIN
    assert budget.spend(2, 61.0)  # a minute later the window is empty again


def test_a_call_fails_fast_with_a_clear_error_when_the_budget_is_spent():
    budget = RetryBudget()
    for _ in range(BUDGET_MIN):
        assert budget.spend(2, 0.0)
    request = Request("GET", "http://127.0.0.1:1/voice/tracking/m1", needs_token=True)
    c = Call(
        request, parse_message, RetryPolicy(8, 10, 100), started=0.0, rng=random.Random(1), budget=budget
    )
    c.on_response(Response(503, {}, b""), now=0.0)  # the first retry is always allowed
    with pytest.raises(
        VoiceTrackTransientError,
        match=r"retry budget is spent \(5 retries beyond each request's first for 0 requests",
    ):
        c.on_response(Response(503, {}, b""), now=0.0)


# -- token rules --------------------------------------------------------------------------------

TOKEN_REQUEST = Request("GET", "http://127.0.0.1:1/voice/tracking/m1", needs_token=True)
FORBIDDEN = Response(403, {}, b'{"code": "403", "developerMessage": "Access denied"}')


def token_call() -> Call[dict]:
    return Call(TOKEN_REQUEST, parse_message, RetryPolicy(8, 10, 100), started=0.0)


def test_a_rejected_token_that_had_served_a_2xx_is_renewed_without_spending_the_credential_budget():
    c = token_call()
    for _ in range(10):
        assert c.on_response(FORBIDDEN, now=0.0, token_served=True) == RefreshToken(403, expired=True)
    assert c.refreshes == 0
    # Three fresh tokens that never served are still allowed, then the clear error.
    for _ in range(3):
        assert c.on_response(FORBIDDEN, now=0.0) == RefreshToken(403)
    with pytest.raises(VoiceTrackAuthError, match="Access denied") as caught:
        c.on_response(FORBIDDEN, now=0.0)
    assert caught.value.reason == "permissions"


def test_a_token_rejected_before_serving_fails_after_three_fresh_tokens():
    c = token_call()
    for _ in range(3):
        assert c.on_response(FORBIDDEN, now=0.0) == RefreshToken(403)
    with pytest.raises(VoiceTrackAuthError) as caught:
        c.on_response(FORBIDDEN, now=0.0)
    assert (caught.value.status_code, caught.value.reason) == (403, "permissions")


def test_renewals_of_served_tokens_stop_at_ten_then_fail_clearly():
    c = token_call()
    for _ in range(10):
        c.on_response(FORBIDDEN, now=0.0, token_served=True)
    with pytest.raises(VoiceTrackAuthError, match="Access denied"):
        c.on_response(FORBIDDEN, now=0.0, token_served=True)


def test_whether_a_token_served_is_known_once_the_requests_carrying_it_are_back():
    from airflow_voicetrack.protocol import Token

    limiter = Limiter(4)
    token = Token("a", 100.0)
    limiter.token_sent(token)  # a large page
    limiter.token_sent(token)  # a request rejected before the page is back
    limiter.token_answered(token, served=False)
    assert limiter.token_verdict(token) is None  # the page is still on its way
    limiter.token_answered(token, served=True)
    assert limiter.token_verdict(token) is True
    other = Token("b", 100.0)
    limiter.token_sent(other)
    limiter.token_answered(other, served=False)
    assert limiter.token_verdict(other) is False
