"""The emulator's API over real HTTP: auth, search (filters, sort, paging, range), the other
endpoints, validation errors and the admin endpoints."""

from __future__ import annotations

import base64
import itertools
import re
import threading
import urllib.error
from typing import Any

import httpx
import pytest

from airflow_voicetrack.constants import ALL_STATUSES, FILTER_FIELDS, MAX_PAGE_SIZE
from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess

MESSAGE_KEYS = {
    "messageId",
    "conversationTrackingId",
    "to",
    "from",
    "groups",
    "country",
    "status",
    "campaign",
    "applicationName",
    "originatingService",
    "direction",
    "duration",
    "fileURL",
    "message",
    "price",
    "chargeInterval",
    "recordings",
}
START, END = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"  # the emu_small fixture's range
VALIDATION = {"code": "400000000", "developerMessage": "Validation Error!"}


def ids(items: list[dict]) -> list[str]:
    return [m["messageId"] for m in items]


# -- auth -----------------------------------------------------------------------------------------


def test_token_endpoint_issues_bearer_token(emu: EmulatorProcess) -> None:
    response = httpx.post(
        emu.token_url,
        auth=(emu.client_id, emu.client_secret),
        data={"grant_type": "client_credentials", "scope": "voice"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "voice"
    assert isinstance(body["permissions"], list)
    assert len(body["access_token"]) > 20
    assert emu.stats()["tokens_issued"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic " + base64.b64encode(b"demo-app-id:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"someone:demo-app-secret").decode()},
        {"Authorization": "Basic not-base64!"},
        {},
    ],
    ids=["wrong-secret", "wrong-id", "garbled", "missing"],
)
def test_token_endpoint_rejects_bad_credentials_with_401(emu: EmulatorProcess, headers: dict) -> None:
    response = httpx.post(emu.token_url, headers=headers, data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message"}


def test_token_endpoint_rejects_other_grant_type_with_400(emu: EmulatorProcess) -> None:
    response = httpx.post(
        emu.token_url, auth=(emu.client_id, emu.client_secret), data={"grant_type": "password"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert "error_description" in response.json()


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer unknown-token", "Basic ZGVtbzpkZW1v"], ids=str
)
def test_api_rejects_missing_or_unknown_token_with_401(
    emu: EmulatorProcess, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(emu.url + "/voice/tracking", headers=headers, json=[])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_api_rejects_expired_token_with_401(emu: EmulatorProcess, api: Any) -> None:
    # A token issued for 60 s and used 61 s later on the emulator's clock, next to one issued then
    # for an hour: the same request, only the expiry differs.
    emu.freeze_clock()
    emu.set_faults(token_lifetime=60)
    expired = {"Authorization": f"Bearer {api.new_token()}"}
    assert api.http.post("/voice/tracking", headers=expired, json=[]).status_code == 200
    emu.advance_clock(61)
    emu.set_faults(token_lifetime=3600)
    fresh = {"Authorization": f"Bearer {api.new_token()}"}
    assert api.http.post("/voice/tracking", headers=fresh, json=[]).status_code == 200
    response = api.http.post("/voice/tracking", headers=expired, json=[])
    assert response.status_code == 401
    assert response.json()["error_description"] == "Access token expired"


# -- search ---------------------------------------------------------------------------------------


def test_search_returns_messages_with_the_documented_fields(api: Any) -> None:
    items = api.all_pages(size=MAX_PAGE_SIZE)
    assert len(items) == 2000
    for m in items:
        assert set(m) >= MESSAGE_KEYS
        assert re.fullmatch(r"[1-9]\d{9,13}", m["to"]) and re.fullmatch(r"[1-9]\d{9,13}", m["from"])
        assert m["status"]["status"] in ALL_STATUSES
        assert m["direction"] in ("Outbound", "Inbound")
    # Optional fields are sometimes null or missing, so clients get tested against that.
    assert any(m["fileURL"] is None for m in items) and any(m["fileURL"] for m in items)
    assert any(m["campaign"] is None for m in items)
    assert any("answeredBy" not in m for m in items) and any("collectedTones" in m for m in items)
    assert any(m["recordings"] for m in items) and any(not m["recordings"] for m in items)
    assert len(set(ids(items))) == len(items)


def test_pages_partition_the_result_in_default_order(api: Any, emu: EmulatorProcess) -> None:
    pages = [api.search(size=700, page=p).json() for p in range(3)]
    items = [m for page in pages for m in page["content"]]
    assert [p["numberOfElements"] for p in pages] == [700, 700, 600]
    assert [(p["first"], p["last"]) for p in pages] == [(True, False), (False, False), (False, True)]
    assert all(p["totalElements"] == 2000 and p["totalPages"] == 3 and p["size"] == 700 for p in pages)
    assert [p["number"] for p in pages] == [0, 1, 2]
    assert sorted(ids(items)) == ids(emu.truth())
    # default order: creation time (the Queued time is not shown, but status.date of final calls
    # follows it within minutes); check against the order of the full single-page result
    assert ids(items) == ids(api.search(size=2000).json()["content"])


def test_page_past_the_end_is_empty_and_last(api: Any) -> None:
    body = api.search(size=1000, page=5).json()
    assert body["content"] == [] and body["numberOfElements"] == 0
    assert body["last"] is True and body["first"] is False and body["totalElements"] == 2000


def test_default_page_size_is_20(api: Any) -> None:
    body = api.search().json()
    assert body["size"] == 20 and body["numberOfElements"] == 20 and body["totalPages"] == 100


def test_date_range_is_half_open(api: Any, emu: EmulatorProcess) -> None:
    everything = api.search(size=2000).json()["content"]
    truth = emu.truth()
    assert len(truth) == len(everything) == 2000
    first_half = api.all_pages(size=2000, **{"from": START, "to": "2026-11-01T12:00:00Z"})
    second_half = api.all_pages(size=2000, **{"from": "2026-11-01T12:00:00Z", "to": END})
    assert first_half and second_half
    assert set(ids(first_half)).isdisjoint(ids(second_half))
    assert len(first_half) + len(second_half) == 2000
    assert ids(first_half + second_half) == ids(everything)


def test_missing_date_bound_means_unbounded(api: Any) -> None:
    assert api.search(size=1, **{"from": START}).json()["totalElements"] == 2000
    assert api.search(size=1, to=END).json()["totalElements"] == 2000
    assert api.search(size=1, **{"from": END}).json()["totalElements"] == 0


def test_date_without_seconds_and_with_offset_are_accepted(api: Any) -> None:
    a = api.search(size=1, **{"from": "2026-11-01T06:00Z", "to": "2026-11-01T12:00Z"}).json()
    b = api.search(size=1, **{"from": "2026-11-01T08:00:00+02:00", "to": "2026-11-01T14:00:00+02:00"}).json()
    assert a["totalElements"] == b["totalElements"] > 0


@pytest.mark.parametrize(
    ("operator", "term", "check"),
    [
        ("is", "GR", lambda m: m["country"] == "GR"),
        ("is_not", "GR", lambda m: m["country"] != "GR"),
        ("contains", "R", lambda m: "R" in m["country"]),
        ("starts_with", "G", lambda m: m["country"].startswith("G")),
        ("ends_with", "E", lambda m: m["country"].endswith("E")),
    ],
)
def test_each_filter_operator(api: Any, emu: EmulatorProcess, operator: str, term: str, check) -> None:
    filters = [{"fieldName": "country", "searchOperator": operator, "searchTerm": term}]
    items = api.all_pages(filters, size=2000)
    everything = emu.truth()
    assert 0 < len(items) < len(everything)
    assert sorted(ids(items)) == sorted(m["messageId"] for m in everything if check(m))


def test_filter_operator_defaults_to_is(api: Any) -> None:
    items = api.all_pages([{"fieldName": "status.status", "searchTerm": "Completed"}], size=2000)
    assert items and all(m["status"]["status"] == "Completed" for m in items)


@pytest.mark.parametrize(
    ("field", "read"),
    [
        ("id", lambda m: m["messageId"]),
        ("recipient", lambda m: m["to"]),
        ("from", lambda m: m["from"]),
        ("collectedTones", lambda m: m.get("collectedTones") or ""),
        ("country", lambda m: m["country"]),
        ("status.status", lambda m: m["status"]["status"]),
        ("campaign", lambda m: m["campaign"] or ""),
    ],
)
def test_each_filter_field_reads_its_message_field(api: Any, emu: EmulatorProcess, field: str, read) -> None:
    everything = emu.truth()
    sample = next(m for m in everything if read(m))
    term = read(sample)
    items = api.all_pages([{"fieldName": field, "searchOperator": "is", "searchTerm": term}], size=2000)
    assert sample["messageId"] in ids(items)
    assert sorted(ids(items)) == sorted(m["messageId"] for m in everything if read(m) == term)


def test_groups_filter_matches_when_any_group_matches(api: Any, emu: EmulatorProcess) -> None:
    everything = emu.truth()
    vip = api.all_pages([{"fieldName": "groups", "searchTerm": "vip"}], size=2000)
    assert sorted(ids(vip)) == sorted(m["messageId"] for m in everything if "vip" in m["groups"])
    assert any(len(m["groups"]) > 1 for m in vip)
    not_vip = api.all_pages(
        [{"fieldName": "groups", "searchOperator": "is_not", "searchTerm": "vip"}], size=2000
    )
    assert len(vip) + len(not_vip) == len(everything)
    starts = api.all_pages(
        [{"fieldName": "groups", "searchOperator": "starts_with", "searchTerm": "c"}], size=2000
    )
    assert sorted(ids(starts)) == sorted(
        m["messageId"] for m in everything if any(g.startswith("c") for g in m["groups"])
    )


def test_filters_combine_with_and(api: Any, emu: EmulatorProcess) -> None:
    filters = [
        {"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"},
        {"fieldName": "status.status", "searchOperator": "is_not", "searchTerm": "Completed"},
        {"fieldName": "recipient", "searchOperator": "starts_with", "searchTerm": "30"},
    ]
    items = api.all_pages(filters, size=500)
    expected = [
        m["messageId"]
        for m in emu.truth()
        if m["country"] == "GR" and m["status"]["status"] != "Completed" and m["to"].startswith("30")
    ]
    assert expected and sorted(ids(items)) == sorted(expected)
    assert emu.truth(filters=filters) == sorted(
        (m for m in emu.truth() if m["messageId"] in set(expected)), key=lambda m: m["messageId"]
    )


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("messageId", lambda m: m["messageId"]),
        ("to", lambda m: m["to"]),
        ("from", lambda m: m["from"]),
        ("country", lambda m: m["country"]),
        ("campaign", lambda m: m["campaign"] or ""),
        ("price", lambda m: m["price"]),
        ("duration", lambda m: m["duration"]),
        ("status.date", lambda m: m["status"]["date"]),
    ],
)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sort_orders_pages_by_field(api: Any, sort: str, key, direction: str) -> None:
    items = api.all_pages(size=600, sort=f"{sort},{direction}")
    assert len(items) == 2000 and len(set(ids(items))) == 2000
    values = [key(m) for m in items]
    assert values == sorted(values, reverse=direction == "desc")


def test_sort_ties_keep_default_order(api: Any) -> None:
    default = ids(api.search(size=2000).json()["content"])
    position = {mid: i for i, mid in enumerate(default)}
    for direction in ("asc", "desc"):
        items = api.search(size=2000, sort=f"country,{direction}").json()["content"]
        for a, b in itertools.pairwise(items):
            if a["country"] == b["country"]:
                assert position[a["messageId"]] < position[b["messageId"]]


def test_tracking_id_and_tagged_restrict_the_search(api: Any, emu: EmulatorProcess) -> None:
    campaign = CAMPAIGNS[0]
    everything = emu.truth()
    in_campaign = api.all_pages(size=2000, trackingId=campaign.tracking_id)
    assert in_campaign and sorted(ids(in_campaign)) == sorted(
        m["messageId"] for m in everything if m["campaign"] == campaign.name
    )
    assert ids(emu.truth(campaign_tracking_id=campaign.tracking_id)) == sorted(ids(in_campaign))
    tagged = api.all_pages(size=2000, tagged="true")
    untagged = api.all_pages(size=2000, tagged="false")
    assert tagged and untagged and len(tagged) + len(untagged) == 2000
    assert all(m["campaign"] for m in tagged) and all(m["campaign"] is None for m in untagged)
    assert ids(emu.truth(tagged=False)) == sorted(ids(untagged))


# -- other endpoints --------------------------------------------------------------------------------


def test_get_message_by_id(api: Any, emu: EmulatorProcess) -> None:
    message = emu.truth()[123]
    response = api.get(f"/voice/tracking/{message['messageId']}")
    assert response.status_code == 200
    assert response.json() == message


def test_get_unknown_message_is_404_with_voice_error_code(api: Any) -> None:
    response = api.get("/voice/tracking/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    body = response.json()
    assert re.fullmatch(r"404013\d{3}", body["code"]) and body["developerMessage"]


def test_conversation_endpoint_pages_the_dial_parts(api: Any, emu: EmulatorProcess) -> None:
    everything = emu.truth()
    counts: dict[str, int] = {}
    for m in everything:
        counts[m["conversationTrackingId"]] = counts.get(m["conversationTrackingId"], 0) + 1
    conversation, parts = max(counts.items(), key=lambda kv: kv[1])
    assert parts > 1
    body = api.get(f"/voice/tracking/conversation/{conversation}", size=1).json()
    assert body["totalElements"] == parts and body["totalPages"] == parts
    body = api.get(f"/voice/tracking/conversation/{conversation}", size=100).json()
    assert {m["conversationTrackingId"] for m in body["content"]} == {conversation}
    empty = api.get("/voice/tracking/conversation/unknown").json()
    assert empty["totalElements"] == 0 and empty["content"] == []


def test_campaign_endpoint_pages_and_sorts_its_messages(api: Any, emu: EmulatorProcess) -> None:
    campaign = CAMPAIGNS[1]
    expected = [m for m in emu.truth() if m["campaign"] == campaign.name]
    items: list[dict] = []
    page = 0
    while True:
        body = api.get(
            f"/voice/tracking/campaign/{campaign.tracking_id}", page=page, size=50, sort="to,desc"
        ).json()
        items.extend(body["content"])
        if body["last"]:
            break
        page += 1
    assert sorted(ids(items)) == ids(expected)
    assert [m["to"] for m in items] == sorted((m["to"] for m in items), reverse=True)


# -- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "body", "bad"),
    [
        ({"size": MAX_PAGE_SIZE + 1}, [], "size"),
        ({"size": 0}, [], "size"),
        ({"size": "ten"}, [], "size"),
        ({"page": -1}, [], "page"),
        ({"from": "yesterday"}, [], "from"),
        ({"to": "2026-13-01T00:00:00Z"}, [], "to"),
        ({"from": END, "to": END}, [], "to"),
        ({"from": END, "to": START}, [], "to"),
        ({"sort": "nope,asc"}, [], "sort"),
        ({"tagged": "maybe"}, [], "tagged"),
        ({}, [{"fieldName": "nope", "searchTerm": "x"}], "filters[0].fieldName"),
        (
            {},
            [{"fieldName": "country", "searchOperator": "like", "searchTerm": "x"}],
            "filters[0].searchOperator",
        ),
        ({}, [{"fieldName": "country"}], "filters[0].searchTerm"),
        ({}, [{"fieldName": "country", "searchTerm": None}], "filters[0].searchTerm"),
        ({}, {"fieldName": "country", "searchTerm": "GR"}, "body"),
        ({}, ["country"], "filters[0]"),
    ],
)
def test_invalid_search_is_400_with_validation_error_body(api: Any, params: dict, body, bad: str) -> None:
    response = api.http.post("/voice/tracking", params=params, json=body, headers=api.headers)
    assert response.status_code == 400
    payload = response.json()
    assert {k: payload[k] for k in VALIDATION} == VALIDATION
    assert list(payload["properties"]) == [bad]
    assert payload["properties"][bad]


@pytest.mark.parametrize(
    ("method", "path", "params", "known"),
    [
        (
            "POST",
            "/voice/tracking",
            {"dateStart": START, "dateEnd": END},
            "from, to, page, size, sort, trackingId",
        ),
        ("POST", "/voice/tracking", {"campaignId": "c"}, "trackingId, tagged"),
        (
            "GET",
            f"/voice/tracking/campaign/{CAMPAIGNS[0].tracking_id}",
            {"trackingId": "c"},
            "page, size, sort",
        ),
        ("GET", "/voice/tracking/conversation/x", {"from": START}, "page, size, sort"),
        ("GET", "/voice/tracking/some-id", {"size": "1"}, "no query parameters"),
    ],
    ids=["search, SMS date names", "search, campaignId", "campaign", "conversation", "message"],
)
def test_an_unknown_query_parameter_is_400_naming_it(
    api: Any, method: str, path: str, params: dict, known: str
) -> None:
    response = api.http.request(
        method, path, params=params, json=[] if method == "POST" else None, headers=api.headers
    )
    assert response.status_code == 400
    payload = response.json()
    assert {k: payload[k] for k in VALIDATION} == VALIDATION
    assert list(payload["properties"]) == list(params)
    for problem in payload["properties"].values():
        assert problem.startswith("unknown parameter; this endpoint takes: ") and known in problem


def test_the_truth_endpoint_takes_our_names_and_ids_only(emu: EmulatorProcess) -> None:
    half = emu.truth_ids("2026-11-01T00:00:00Z", "2026-11-01T12:00:00Z")
    assert 0 < len(half) < len(emu.truth_ids())
    with pytest.raises(urllib.error.HTTPError) as info:
        emu._admin("POST", "truth", [], {"dateStart": START})
    assert info.value.code == 400


def test_malformed_json_body_is_400(api: Any) -> None:
    response = api.http.post("/voice/tracking", content=b"[{", headers=api.headers)
    assert response.status_code == 400
    assert response.json()["properties"] == {"body": "malformed JSON"}


def test_every_filter_field_is_accepted(api: Any) -> None:
    filters = [{"fieldName": f, "searchOperator": "is_not", "searchTerm": "zzz"} for f in FILTER_FIELDS]
    assert api.search(filters, size=1).status_code == 200


def test_listing_endpoints_validate_paging(api: Any) -> None:
    response = api.get(f"/voice/tracking/campaign/{CAMPAIGNS[0].tracking_id}", size=MAX_PAGE_SIZE + 1)
    assert response.status_code == 400 and "size" in response.json()["properties"]


# -- admin ------------------------------------------------------------------------------------------


def test_health(emu: EmulatorProcess) -> None:
    assert httpx.get(emu.url + "/_emulator/health").json() == {"status": "ok"}


def test_truth_is_in_message_id_order_and_takes_search_params(emu: EmulatorProcess) -> None:
    truth = emu.truth(date_start=START, date_end="2026-11-01T06:00:00Z")
    assert 0 < len(truth) < 2000
    assert ids(truth) == sorted(ids(truth))
    response = httpx.post(emu.url + "/_emulator/truth", json=[]).json()
    assert response["totalElements"] == 2000 == len(response["content"])


def test_stats_count_requests_per_route_and_reset(api: Any, emu: EmulatorProcess) -> None:
    api.search()
    api.search()
    api.get("/voice/tracking/x")
    stats = emu.stats()
    assert stats["requests"] == {
        "POST /oauth/token": 1,
        "POST /voice/tracking": 2,
        "GET /voice/tracking/{message_id}": 1,
    }
    assert stats["total"] == 4 and stats["tokens_issued"] == 1
    assert stats["search_in_flight_max"] == 1  # one after the other
    assert len(emu.search_spans()) == 2
    assert stats["faults_fired"] == {}
    emu.set_faults(forbidden_rate=0.5)
    api.search()
    api.search()
    assert emu.stats()["faults_fired"] == {"forbidden": 1}
    emu.reset_stats()
    assert emu.stats() == {
        "requests": {},
        "total": 0,
        "tokens_issued": 0,
        "search_in_flight_max": 0,
        "faults_fired": {},
        "search_statuses": {},
    }
    assert emu.search_spans() == []


def test_stats_report_the_most_searches_in_flight_and_their_spans(api: Any, emu: EmulatorProcess) -> None:
    api.search()  # the token, outside the measured part
    emu.reset_stats()
    # Four searches that overlap for certain: each is held 2 s, and all four start together.
    emu.set_faults(latency_ms=2000)
    barrier = threading.Barrier(4)

    def search() -> None:
        barrier.wait()
        api.search()

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emu.stats()["search_in_flight_max"] == 4
    spans = emu.search_spans()
    assert len(spans) == 4
    assert all(end - start >= 1.9 for start, end in spans)  # asyncio may wake a tick early
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # all four overlapped


def test_admin_add_messages_are_searchable_and_reset_drops_them(api: Any, emu: EmulatorProcess) -> None:
    added = emu.add_messages(3, created_at="2026-11-01T10:00:00Z")
    assert len(added) == 3
    window = {"from": "2026-11-01T10:00:00Z", "to": "2026-11-01T10:00:01Z"}
    assert set(added) <= set(ids(api.search(size=100, **window).json()["content"]))
    assert api.search(size=1).json()["totalElements"] == 2003
    emu.reset()
    assert api.search(size=1).json()["totalElements"] == 2000


def test_faults_put_rejects_unknown_names_and_bad_values(emu: EmulatorProcess) -> None:
    for body in ({"nope": 1}, {"drop_rate": 2}, {"retry_after_mode": "never"}, {"error_burst": "x"}):
        response = httpx.put(emu.url + "/_emulator/faults", json=body)
        assert response.status_code == 400, body
    assert emu.faults()["drop_rate"] == 0.0
