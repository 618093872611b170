"""Each fault as a raw HTTP client observes it."""

from __future__ import annotations

import email.utils
import http.client
import math
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_voicetrack.emulator.process import EmulatorProcess


def statuses(api: Any, n: int, **params: Any) -> list[int]:
    return [api.search(size=5, **params).status_code for _ in range(n)]


def test_no_faults_by_default(api: Any, emu: EmulatorProcess) -> None:
    assert emu.faults() == {
        "token_lifetime": 3600.0,
        "unauthorized_rate": 0.0,
        "forbidden_rate": 0.0,
        "rate_limit_rate": 0.0,
        "retry_after_mode": "seconds",
        "retry_after": 1,
        "rate_limit": 0.0,
        "rate_limit_headers": 0,
        "revoke_every": 0,
        "error_burst": 0,
        "error_every": 0,
        "error_status": 0,
        "latency_ms": 0.0,
        "drop_rate": 0.0,
        "malformed_rate": 0.0,
        "truncated_rate": 0.0,
        "inconsistent_rate": 0.0,
        "insert_during_paging": 0,
        "delete_during_paging": 0,
        # The deviations default to our assumptions: half-open ranges, AND of filters, pages up to
        # 2000, any range length.
        "inclusive_date_end": 0,
        "filters_combine": "and",
        "max_page_size": 2000,
        "max_range_days": 0.0,
    }
    assert statuses(api, 10) == [200] * 10


def test_unauthorized_rate_answers_401_on_that_fraction_of_calls(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(unauthorized_rate=0.5)
    assert statuses(api, 6) == [200, 401] * 3
    response = api.search()
    assert response.status_code == 200
    response = api.search()
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_forbidden_rate_answers_403(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(forbidden_rate=0.25)
    assert statuses(api, 8) == [200, 200, 200, 403] * 2


def test_rate_faults_skip_token_and_admin_endpoints(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(unauthorized_rate=1.0, drop_rate=0.0)
    assert api.new_token()
    assert emu.stats()["tokens_issued"] == 2
    assert statuses(api, 2) == [401, 401]


@pytest.mark.parametrize("mode", ["seconds", "date", "none"])
def test_rate_limit_answers_429_with_retry_after_in_each_mode(
    api: Any, emu: EmulatorProcess, mode: str
) -> None:
    emu.set_faults(rate_limit_rate=1.0, retry_after_mode=mode, retry_after=3)
    sent = time.time()
    response = api.search()
    received = time.time()
    assert response.status_code == 429
    value = response.headers.get("Retry-After")
    if mode == "seconds":
        assert value == "3"
    elif mode == "date":
        # The whole second after the server's clock + 3 s; that clock read lies between the two.
        at = email.utils.parsedate_to_datetime(value).timestamp()
        assert sent + 3 <= at <= received + 4
    else:
        assert value is None


def test_rate_limit_accepts_a_second_of_calls_then_answers_429_until_the_bucket_refills(
    api: Any, emu: EmulatorProcess
) -> None:
    emu.set_faults(rate_limit=4)
    emu.reset_stats()
    codes = statuses(api, 6)
    assert codes[:4] == [200] * 4 and codes[-1] == 429  # a 5th may slip in as the bucket refills
    refused = api.search(size=5)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "RateLimit-Remaining" not in refused.headers
    time.sleep(0.3)  # a token every 0.25 s
    assert statuses(api, 1) == [200]
    assert emu.stats()["search_statuses"]["429"] == codes.count(429) + 1


def test_rate_limit_headers_say_the_limit_what_remains_and_when_it_is_full_again(
    api: Any, emu: EmulatorProcess
) -> None:
    emu.set_faults(rate_limit=3, rate_limit_headers=1)
    first = api.search(size=5)
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("3", "2")
    assert first.headers["RateLimit-Reset"] == "1"
    remaining = [api.search(size=5).headers["RateLimit-Remaining"] for _ in range(2)]
    assert remaining == ["1", "0"]
    refused = api.search(size=5)
    assert refused.status_code == 429 and refused.headers["RateLimit-Remaining"] == "0"


def test_revoke_every_k_revokes_every_token_issued_so_far(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(revoke_every=3)
    assert statuses(api, 3) == [200, 200, 401]
    api.token = api.new_token()
    assert statuses(api, 4) == [200, 200, 401, 401]  # the 6th call revoked it for good


def test_rate_limit_headers_flag_alone_turns_them_on() -> None:
    from airflow_voicetrack.emulator.__main__ import build_parser

    args = build_parser().parse_args(["--rate-limit", "20", "--rate-limit-headers", "--revoke-every", "5"])
    assert (args.rate_limit, args.rate_limit_headers, args.revoke_every) == (20.0, 1, 5)
    assert build_parser().parse_args([]).rate_limit_headers == 0


def test_error_burst_fails_consecutive_calls_every_k(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(error_burst=2, error_every=5, error_status=503)
    assert statuses(api, 10) == [503, 503, 200, 200, 200] * 2


def test_error_burst_rotates_through_5xx_statuses(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(error_burst=4)
    responses = [api.search() for _ in range(5)]
    assert [r.status_code for r in responses] == [500, 502, 503, 504, 200]
    assert responses[0].json()["code"] == "500000000"
    assert responses[1].headers["content-type"].startswith("text/html")


def test_latency_delays_each_request(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(latency_ms=300)
    began = time.monotonic()
    assert api.search().status_code == 200
    assert time.monotonic() - began >= 0.3


def test_dropped_connection_gives_no_response(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(drop_rate=0.5)
    assert api.search().status_code == 200
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        api.search()
    url = urlsplit(emu.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", "/voice/tracking", body=b"[]", headers=api.headers)
    first = conn.getresponse()
    assert first.status == 200
    first.read()
    conn.request("POST", "/voice/tracking", body=b"[]", headers=api.headers)
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    conn.close()


def test_malformed_body_is_a_200_with_broken_json(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(malformed_rate=1.0)
    response = api.search(size=10)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(ValueError):
        response.json()


def test_truncated_body_closes_before_content_length_is_reached(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(truncated_rate=1.0)
    url = urlsplit(emu.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", "/voice/tracking?size=10", body=b"[]", headers=api.headers)
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        api.search(size=10)


def test_inconsistent_envelope_contradicts_itself(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(inconsistent_rate=1.0)
    first, second = (api.search(size=300).json() for _ in range(2))
    assert first["numberOfElements"] != len(first["content"])
    assert second["numberOfElements"] == len(second["content"])
    assert second["totalPages"] != math.ceil(second["totalElements"] / second["size"])


def test_token_lifetime_sets_expires_in(api: Any, emu: EmulatorProcess) -> None:
    emu.set_faults(token_lifetime=42)
    response = httpx.post(
        emu.token_url, auth=(emu.client_id, emu.client_secret), data={"grant_type": "client_credentials"}
    )
    assert response.json()["expires_in"] == 42


def test_insert_during_paging_shifts_pages_but_loses_nothing(api: Any, emu: EmulatorProcess) -> None:
    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T12:00:00Z"}
    filters = [{"fieldName": "country", "searchOperator": "is_not", "searchTerm": "US"}]
    before = {m["messageId"] for m in emu.truth("2026-11-01T00:00:00Z", "2026-11-01T12:00:00Z", filters)}
    emu.set_faults(insert_during_paging=7)
    seen: list[str] = []
    totals = []
    page = 0
    while True:
        body = api.search(filters, page=page, size=200, **window).json()
        seen.extend(m["messageId"] for m in body["content"])
        totals.append(body["totalElements"])
        if body["last"]:
            break
        page += 1
    assert totals[0] == len(before) and totals[1] == len(before) + 7
    # the copies land on page 0's positions, so page 1 starts 7 items "earlier": 7 repeats
    assert page > 1
    assert len(seen) == len(before) + 7
    assert set(seen) == before
    after = emu.truth("2026-11-01T00:00:00Z", "2026-11-01T12:00:00Z", filters)
    assert len(after) == len(before) + 7
    assert all(m["country"] != "US" for m in after)


def test_delete_during_paging_shrinks_later_pages_each_consistent_with_itself(
    api: Any, emu: EmulatorProcess
) -> None:
    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T12:00:00Z"}
    before = emu.truth(window["from"], window["to"])
    emu.set_faults(delete_during_paging=7)
    pages = []
    while not pages or not pages[-1]["last"]:
        pages.append(api.search(page=len(pages), size=200, **window).json())
    n = len(before)
    assert pages[0]["totalElements"] == n and pages[0]["totalPages"] == math.ceil(n / 200)
    for number, page in enumerate(pages[1:], start=1):
        assert page["totalElements"] == n - 7
        assert page["totalPages"] == math.ceil((n - 7) / 200)
        assert page["numberOfElements"] == len(page["content"]) == min(200, n - 7 - number * 200)
    # The first 7 messages of page 0 are gone, so 7 messages moved up onto page 0's positions,
    # which the client had already read: it misses them.
    in_order = [m["messageId"] for m in api.all_pages(size=2000, **window)]
    assert pages[0]["content"][0]["messageId"] not in in_order
    seen = [m["messageId"] for page in pages for m in page["content"]]
    after = emu.truth(window["from"], window["to"])
    assert len(after) == n - 7
    assert len(seen) == len(set(seen)) == n - 7
    assert {m["messageId"] for m in after} - set(seen) == set(in_order[193:200])
    emu.reset()
    assert emu.truth(window["from"], window["to"]) == before


def test_faults_from_cli_flags() -> None:
    with EmulatorProcess(messages=50, extra_args=["--unauthorized-rate", "0.5", "--latency-ms", "1"]) as emu:
        assert emu.faults()["unauthorized_rate"] == 0.5
        with httpx.Client(base_url=emu.url) as http:
            token = http.post(
                "/oauth/token",
                auth=(emu.client_id, emu.client_secret),
                data={"grant_type": "client_credentials"},
            ).json()["access_token"]
            codes = [
                http.post(
                    "/voice/tracking", json=[], headers={"Authorization": f"Bearer {token}"}
                ).status_code
                for _ in range(4)
            ]
        assert codes == [200, 401, 200, 401]
        emu.clear_faults()
        assert emu.faults()["unauthorized_rate"] == 0.0
