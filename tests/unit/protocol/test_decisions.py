from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from airflow_voicetrack.exceptions import (
    VoiceTrackAPIError,
    VoiceTrackAuthError,
    VoiceTrackConnectionError,
    VoiceTrackNotFoundError,
    VoiceTrackResponseError,
    VoiceTrackTransientError,
)
from airflow_voicetrack.protocol import (
    Call,
    GetLimits,
    GetToken,
    RefreshToken,
    Request,
    Response,
    Retry,
    RetryPolicy,
    Send,
    Success,
    Token,
    TokenCache,
    call_flow,
    parse_message,
    parse_retry_after,
)

NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)
REQUEST = Request("GET", "http://127.0.0.1:1/voice/tracking/m1")


POLICY = RetryPolicy(max_retries=3, max_retry_wait=10, max_retry_time=100)


def call(policy=POLICY, request=REQUEST, **kw):
    return Call(request, parse_message, policy, started=0.0, rng=random.Random(1), **kw)


def respond(c, status, body=b"{}", headers=None, now=0.0):
    return c.on_response(Response(status, headers or {}, body), now=now, wall_now=NOW)


def test_success_is_parsed():
    assert respond(call(), 200, b'{"messageId": "m1"}') == Success({"messageId": "m1"})


@pytest.mark.parametrize("status", [401, 403])
def test_first_auth_failure_asks_for_a_new_token(status):
    assert respond(call(), status) == RefreshToken(status)


@pytest.mark.parametrize(("status", "reason"), [(401, "credentials"), (403, "permissions")])
def test_auth_failure_after_three_refreshes_raises_saying_what_is_at_fault(status, reason):
    c = call()
    assert [respond(c, status) for _ in range(3)] == [RefreshToken(status)] * 3
    with pytest.raises(VoiceTrackAuthError) as info:
        respond(c, status)
    assert info.value.reason == reason and reason in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refresh_after_an_auth_failure_sends_the_new_token_never_the_rejected_one(status):
    rejected, renewed = Token("rejected-token", renew_at=1e9), Token("renewed-token", renew_at=1e9)
    flow = call_flow(REQUEST, parse_message, POLICY, clock=lambda: 0.0)
    assert next(flow) == GetLimits()
    assert flow.send(None) == GetToken(None)  # no limiter: every request is sent at once
    assert flow.send(rejected) == Send(REQUEST, rejected)
    # The refused token goes back with the request for a new one, so the driver can tell it apart.
    assert flow.send(Response(status, {}, b"{}")) == GetToken(rejected)
    repeat = flow.send(renewed)
    assert repeat == Send(REQUEST, renewed)
    assert repeat.token is not None and repeat.token.value == "renewed-token"
    with pytest.raises(StopIteration) as done:
        flow.send(Response(200, {}, b'{"messageId": "m1"}'))
    assert done.value.value == {"messageId": "m1"}


def test_the_token_cache_never_hands_back_a_rejected_token():
    rejected, renewed = Token("rejected-token", renew_at=1e9), Token("renewed-token", renew_at=1e9)
    cache = TokenCache()
    cache.token = rejected
    assert cache.usable(None, now=0.0) is rejected
    assert cache.usable(rejected, now=0.0) is None  # the driver must fetch a new one
    cache.token = renewed  # another request replaced it meanwhile: that one is used, not fetched again
    assert cache.usable(rejected, now=0.0) is renewed


def test_403_then_401_on_one_request_gets_a_new_token_each_time():
    # A credential rotation with pages in flight: the token is refused one way, then the other.
    c = call()
    assert respond(c, 403) == RefreshToken(403)
    assert respond(c, 401) == RefreshToken(401)
    assert respond(c, 200, b'{"messageId": "m1"}') == Success({"messageId": "m1"})


def test_token_endpoint_rejection_is_not_retried_with_a_new_token():
    token_request = Request("POST", "http://127.0.0.1:1/oauth/token", needs_token=False)
    with pytest.raises(VoiceTrackAuthError, match="credentials"):
        respond(call(request=token_request), 401, b'{"error": "unauthorized", "message": "Bad credentials"}')


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status):
    assert isinstance(respond(call(), status), Retry)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, VoiceTrackAPIError),
        (404, VoiceTrackNotFoundError),
        (409, VoiceTrackAPIError),
        (418, VoiceTrackAPIError),
    ],
)
def test_permanent_statuses_raise_at_once(status, error):
    with pytest.raises(error):
        respond(call(), status)


def test_retry_after_seconds_is_honoured():
    assert respond(call(), 429, headers={"Retry-After": "3"}).wait == 3


def test_retry_after_http_date_is_honoured():
    retry = respond(call(), 503, headers={"Retry-After": "Sun, 01 Nov 2026 12:00:04 GMT"})
    assert retry.wait == pytest.approx(4)


def test_retry_after_is_capped_by_max_retry_wait():
    assert respond(call(), 429, headers={"Retry-After": "3600"}).wait == 10


def test_retry_after_in_the_past_means_now():
    assert parse_retry_after("Sun, 01 Nov 2026 11:00:00 GMT", NOW) == 0


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_unreadable_retry_after_is_ignored(value):
    assert parse_retry_after(value, NOW) is None


def test_backoff_grows_exponentially_with_jitter():
    policy = RetryPolicy(max_retry_wait=60)
    rng = random.Random(7)
    waits = [policy.backoff(n, rng) for n in range(1, 6)]
    for n, wait in enumerate(waits, start=1):
        ceiling = 0.5 * 2 ** (n - 1)
        assert ceiling / 2 <= wait <= ceiling
    assert len({round(w / (0.5 * 2 ** (n - 1)), 6) for n, w in enumerate(waits, 1)}) > 1  # jittered


def test_backoff_is_capped():
    assert RetryPolicy(max_retry_wait=2).backoff(20) <= 2


def test_retries_stop_after_max_retries():
    c = call(RetryPolicy(max_retries=2, max_retry_wait=0, max_retry_time=100))
    respond(c, 500)
    respond(c, 500)
    with pytest.raises(VoiceTrackTransientError, match=r"giving up after 2 retries.*last failure: HTTP 500"):
        respond(c, 500)


def test_retries_stop_when_the_total_retry_time_would_be_exceeded():
    c = call(RetryPolicy(max_retries=50, max_retry_wait=10, max_retry_time=30))
    with pytest.raises(VoiceTrackTransientError, match="max_retry_time=30"):
        respond(c, 429, headers={"Retry-After": "5"}, now=26.0)


def test_malformed_body_is_retried_then_fails_as_response_error():
    c = call(RetryPolicy(max_retries=1, max_retry_wait=0))
    assert isinstance(respond(c, 200, b"{trunc"), Retry)
    with pytest.raises(VoiceTrackResponseError, match="not valid JSON"):
        respond(c, 200, b"{trunc")


def test_network_errors_are_retried():
    c = call()
    assert isinstance(c.on_transport_error("protocol", "Connection reset", now=0.0), Retry)
    assert isinstance(c.on_transport_error("timeout", "read timed out", now=0.0), Retry)


def test_unreachable_host_fails_as_connection_error_after_retries():
    c = call(RetryPolicy(max_retries=0))
    with pytest.raises(VoiceTrackConnectionError, match=r"host 127\.0\.0\.1:1 unreachable") as info:
        c.on_transport_error("connect", "Connection refused", now=0.0)
    assert info.value.kind == "unreachable"


def test_tls_failure_is_not_retried():
    with pytest.raises(VoiceTrackConnectionError, match=r"TLS with 127\.0\.0\.1:1 failed") as info:
        call().on_transport_error("tls", "certificate verify failed", now=0.0)
    assert info.value.kind == "tls"


def test_exhausted_rate_limit_carries_the_server_requested_wait_uncapped():
    c = call(RetryPolicy(max_retries=1, max_retry_wait=10, max_retry_time=10_000))
    assert respond(c, 429, headers={"Retry-After": "3600"}).wait == 10
    with pytest.raises(VoiceTrackTransientError, match=r"Retry-After: 3600 s") as info:
        respond(c, 429, headers={"Retry-After": "3600"})
    assert info.value.retry_after == 3600


def test_exhausted_503_with_retry_after_date_carries_the_wait():
    c = call(RetryPolicy(max_retries=0))
    with pytest.raises(VoiceTrackTransientError) as info:
        respond(c, 503, headers={"Retry-After": "Sun, 01 Nov 2026 12:00:04 GMT"})
    assert info.value.retry_after == pytest.approx(4)


def test_retry_after_is_that_of_the_last_failure_only():
    c = call(RetryPolicy(max_retries=1, max_retry_wait=0))
    respond(c, 429, headers={"Retry-After": "5"})
    with pytest.raises(VoiceTrackTransientError) as info:
        respond(c, 500)
    assert info.value.retry_after is None


def test_transport_errors_carry_no_retry_after():
    with pytest.raises(VoiceTrackTransientError) as info:
        call(RetryPolicy(max_retries=0)).on_transport_error("timeout", "read timed out", now=0.0)
    assert info.value.retry_after is None
    with pytest.raises(VoiceTrackConnectionError) as unreachable:
        call(RetryPolicy(max_retries=0)).on_transport_error("connect", "refused", now=0.0)
    assert unreachable.value.retry_after is None
