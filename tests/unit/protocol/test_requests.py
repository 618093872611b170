from __future__ import annotations

import base64

import pendulum
import pytest

from airflow_voicetrack.protocol import (
    SearchQuery,
    Settings,
    build_campaign_request,
    build_conversation_request,
    build_message_request,
    build_token_request,
    validate_limit,
)

BASE = "http://127.0.0.1:1"


def settings(**extra):
    return Settings.from_connection(
        conn_id="c", host=BASE, port=None, login="app", password="s3cret", extra=extra, overrides={}
    )


def test_search_request_carries_range_paging_and_filters():
    query = SearchQuery.build(
        "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", filters=[{"fieldName": "country", "searchTerm": "GR"}]
    )
    request = query.page_request(BASE, (query.date_start, query.date_end), 3, 500)
    assert (request.method, request.url) == ("POST", BASE + "/voice/tracking")
    assert request.params == {
        "page": "3",
        "size": "500",
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-11-02T00:00:00Z",
    }
    assert request.json == [{"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"}]


def test_search_without_filters_sends_an_empty_array():
    query = SearchQuery.build("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
    assert query.page_request(BASE, (query.date_start, query.date_end), 0, 1).json == []


def test_campaign_sort_and_tagged_are_sent_when_set():
    query = SearchQuery.build(
        "2026-11-01T00:00:00Z",
        "2026-11-02T00:00:00Z",
        campaign_tracking_id="c-1",
        sort="messageId,desc",
        tagged=False,
    )
    params = query.page_request(BASE, (query.date_start, query.date_end), 0, 1).params
    assert (params["trackingId"], params["sort"], params["tagged"]) == ("c-1", "messageId,desc", "false")


def test_tagged_is_not_sent_by_default():
    query = SearchQuery.build("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
    params = query.page_request(BASE, (query.date_start, query.date_end), 0, 1).params
    assert "tagged" not in params and "sort" not in params and "trackingId" not in params


def test_query_splits_into_windows():
    query = SearchQuery.build("2026-11-01T00:00:00Z", "2026-11-01T10:00:00Z")
    assert len(query.windows(pendulum.duration(hours=4))) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 0}, "page_size must be an integer from 1 to 2000, got 0"),
        ({"page_size": 2001}, "page_size must be an integer from 1 to 2000, got 2001"),
        ({"sort": "messageId,,asc"}, "sort must look like 'field', 'field,asc'"),
        ({"campaign_tracking_id": ""}, "campaign_tracking_id must be a non-empty string"),
        ({"tagged": "yes"}, "tagged must be True, False or None"),
    ],
)
def test_invalid_search_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchQuery.build("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", **kwargs)


def test_search_requires_both_bounds():
    with pytest.raises(ValueError, match="date_start and date_end are both required"):
        SearchQuery.build(None, "2026-11-02T00:00:00Z")


def test_token_request_is_client_credentials_with_basic_auth():
    request = build_token_request(settings(token_url=BASE + "/oauth/token", scope="voice"))
    assert (request.method, request.url, request.needs_token) == ("POST", BASE + "/oauth/token", False)
    assert request.data == {"grant_type": "client_credentials", "scope": "voice"}
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"app:s3cret").decode()


def test_token_request_repr_hides_the_basic_header():
    assert "Basic" not in repr(build_token_request(settings()))


def test_ids_in_paths_are_escaped():
    assert build_message_request(BASE, "a/b c").url == BASE + "/voice/tracking/a%2Fb%20c"


def test_conversation_and_campaign_requests_are_paged():
    conversation = build_conversation_request(BASE, "conv", page=1, size=10)
    campaign = build_campaign_request(BASE, "camp", page=2, size=20, sort="messageId,asc")
    assert conversation.url == BASE + "/voice/tracking/conversation/conv"
    assert conversation.params == {"page": "1", "size": "10"}
    assert campaign.url == BASE + "/voice/tracking/campaign/camp"
    assert campaign.params == {"page": "2", "size": "20", "sort": "messageId,asc"}


def test_empty_message_id_is_rejected():
    with pytest.raises(ValueError, match="message_id must be a non-empty string"):
        build_message_request(BASE, " ")


def test_open_range_sends_no_missing_bound_and_is_one_window():
    for start, end in [(None, None), ("2026-11-01T00:00:00Z", None), (None, "2026-11-02T00:00:00Z")]:
        query = SearchQuery.build(start, end, campaign_tracking_id="c-1", require_range=False)
        [window] = query.windows(pendulum.duration(hours=1))
        params = query.page_request(BASE, window, 0, 20).params
        assert ("from" in params, "to" in params) == (start is not None, end is not None)
        assert params["trackingId"] == "c-1"


@pytest.mark.parametrize("limit", [None, 0, 1, 5000])
def test_valid_limits_are_accepted(limit):
    assert validate_limit(limit) == limit


@pytest.mark.parametrize("limit", [-1, 1.5, "20", True])
def test_invalid_limits_are_rejected(limit):
    with pytest.raises(ValueError, match=r"limit must be None \(no limit\) or an integer >= 0"):
        validate_limit(limit)
