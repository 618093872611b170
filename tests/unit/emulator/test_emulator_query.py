"""Pure request parsing and matching of the emulator (no sockets)."""

from __future__ import annotations

import msgspec
import pytest

from airflow_voicetrack.constants import MAX_PAGE_SIZE
from airflow_voicetrack.emulator.__main__ import parse_date_params
from airflow_voicetrack.emulator.query import (
    Filter,
    ValidationError,
    filter_matches,
    matches_all,
    page_envelope,
    parse_datetime_ms,
    parse_search,
    search_params,
    sort_items,
)

DOC = {
    "messageId": "m-1",
    "to": "306912345678",
    "from": "302111989100",
    "groups": ["vip", "customers"],
    "country": "GR",
    "status": {"date": "2026-11-01T00:00:00.000Z", "status": "Completed"},
    "campaign": None,
}


def body(filters: object) -> bytes:
    return msgspec.json.encode(filters)


@pytest.mark.parametrize(
    ("operator", "term", "expected"),
    [
        ("is", "306912345678", True),
        ("is", "3069", False),
        ("is_not", "3069", True),
        ("is_not", "306912345678", False),
        ("contains", "9123", True),
        ("contains", "0000", False),
        ("starts_with", "3069", True),
        ("starts_with", "69", False),
        ("ends_with", "5678", True),
        ("ends_with", "3069", False),
    ],
)
def test_operators_on_recipient(operator: str, term: str, expected: bool) -> None:
    assert filter_matches(Filter("recipient", operator, term), DOC, "Completed") is expected


def test_matching_is_case_sensitive() -> None:
    assert not filter_matches(Filter("country", "is", "gr"), DOC, "Completed")


def test_groups_match_when_any_group_matches() -> None:
    assert filter_matches(Filter("groups", "is", "customers"), DOC, "")
    assert filter_matches(Filter("groups", "starts_with", "cust"), DOC, "")
    assert not filter_matches(Filter("groups", "is", "leads"), DOC, "")
    assert filter_matches(Filter("groups", "is_not", "leads"), DOC, "")
    assert not filter_matches(Filter("groups", "is_not", "vip"), DOC, "")


def test_null_or_missing_fields_match_as_empty_string() -> None:
    assert filter_matches(Filter("campaign", "is_not", "Winback"), DOC, "")
    assert not filter_matches(Filter("campaign", "contains", "W"), DOC, "")
    assert filter_matches(Filter("collectedTones", "is", ""), DOC, "")


def test_status_filter_uses_the_current_status() -> None:
    assert filter_matches(Filter("status.status", "is", "Ringing"), DOC, "Ringing")
    assert not filter_matches(Filter("status.status", "is", "Completed"), DOC, "Ringing")


def test_filters_combine_with_and() -> None:
    both = [Filter("country", "is", "GR"), Filter("id", "is", "m-1")]
    assert matches_all(both, DOC, "")
    assert not matches_all([*both, Filter("from", "ends_with", "9")], DOC, "")
    assert matches_all([], DOC, "")


def test_parse_search_defaults() -> None:
    query = parse_search({}, b"")
    assert (query.page, query.size, query.sort, query.filters) == (0, 20, [], [])
    assert query.start_ms is query.end_ms is query.tagged is query.campaign_id is None


def test_parse_search_reads_every_parameter() -> None:
    query = parse_search(
        {
            "from": ["2026-11-01T00:00:00Z"],
            "to": ["2026-11-02T00:00Z"],
            "page": ["3"],
            "size": [str(MAX_PAGE_SIZE)],
            "sort": ["country,desc", "messageId"],
            "trackingId": ["c-1"],
            "tagged": ["TRUE"],
        },
        body([{"fieldName": "country", "searchTerm": "GR"}]),
    )
    assert query.end_ms - query.start_ms == 86_400_000
    assert (query.page, query.size, query.campaign_id, query.tagged) == (3, MAX_PAGE_SIZE, "c-1", True)
    assert query.sort == [("country", True), ("messageId", False)]
    assert query.filters == [Filter("country", "is", "GR")]


def test_parse_search_collects_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        parse_search(
            {"page": ["-1"], "size": ["0"], "from": ["soon"], "sort": ["x"]},
            body([{"fieldName": "x", "searchOperator": "like"}]),
        )
    assert set(info.value.properties) == {
        "page",
        "size",
        "from",
        "sort",
        "filters[0].fieldName",
        "filters[0].searchOperator",
        "filters[0].searchTerm",
    }


def test_naive_datetime_is_utc_and_offsets_are_honoured() -> None:
    assert parse_datetime_ms("2026-11-01T00:00:00") == parse_datetime_ms("2026-11-01T02:00:00+02:00")
    with pytest.raises(ValueError):
        parse_datetime_ms("2026-11-01")


def test_sort_items_is_stable_both_ways() -> None:
    items = [(i, {"country": c}) for i, c in enumerate("BABA")]
    assert [i for i, _ in sort_items(list(items), [("country", False)])] == [1, 3, 0, 2]
    assert [i for i, _ in sort_items(list(items), [("country", True)])] == [0, 2, 1, 3]


@pytest.mark.parametrize(
    ("total", "page", "size", "count", "pages", "first", "last"),
    [(0, 0, 20, 0, 0, True, True), (45, 0, 20, 20, 3, True, False), (45, 2, 20, 5, 3, False, True)],
)
def test_page_envelope(
    total: int, page: int, size: int, count: int, pages: int, first: bool, last: bool
) -> None:
    env = page_envelope(total, page, size, count)
    assert (env["totalPages"], env["first"], env["last"], env["numberOfElements"]) == (
        pages,
        first,
        last,
        count,
    )
    assert (env["totalElements"], env["number"], env["size"]) == (total, page, size)


def test_parse_search_takes_the_deviations_page_size_and_range_limits() -> None:
    day = {"from": ["2026-11-01T00:00:00Z"], "to": ["2026-11-02T00:00:00Z"]}
    with pytest.raises(ValidationError) as err:
        parse_search({**day, "size": ["1001"]}, b"", max_size=1000, max_range_ms=3_600_000)
    assert err.value.properties == {
        "size": "must be between 1 and 1000",
        "to": "the range must not be longer than 0.0416667 days",
    }
    assert parse_search({**day, "size": ["1000"]}, b"", max_size=1000, max_range_ms=86_400_000).size == 1000


def test_matches_all_with_or_needs_only_one_filter() -> None:
    one = [Filter("country", "is", DOC["country"]), Filter("from", "ends_with", "no-such-end")]
    assert not matches_all(one, DOC, "")
    assert matches_all(one, DOC, "", combine="or")


def test_an_unknown_parameter_is_a_problem_named_after_it_unless_lenient() -> None:
    params = {"dateStart": ["2026-11-01T00:00:00Z"], "campaignId": ["c"], "size": ["5"]}
    with pytest.raises(ValidationError) as info:
        parse_search(params, b"", known=search_params(("from", "to")))
    assert set(info.value.properties) == {"dateStart", "campaignId"}
    assert info.value.properties["dateStart"].startswith("unknown parameter")
    # Lenient (known=None): ignored, as a typical Spring service does, so the range is unbounded.
    query = parse_search(params, b"")
    assert (query.start_ms, query.campaign_id, query.size) == (None, None, 5)


def test_the_date_range_can_be_read_under_the_other_names() -> None:
    names = ("dateStart", "dateEnd")
    assert search_params(names) == ("dateStart", "dateEnd", "page", "size", "sort", "trackingId", "tagged")
    day = {"dateStart": ["2026-11-01T00:00:00Z"], "dateEnd": ["2026-11-02T00:00:00Z"]}
    query = parse_search(day, b"", date_params=names, known=search_params(names))
    assert query.end_ms - query.start_ms == 86_400_000
    with pytest.raises(ValidationError) as info:
        parse_search({"dateStart": day["dateEnd"], "dateEnd": day["dateStart"]}, b"", date_params=names)
    assert info.value.properties == {"dateEnd": "must be after dateStart"}
    # Our names are then unknown, and ignored when lenient.
    assert parse_search({"from": day["dateStart"]}, b"", date_params=names).start_ms is None


@pytest.mark.parametrize("value", ["dateStart", "a,b,c", ",to", "from,from"])
def test_date_params_flag_needs_two_distinct_names(value: str) -> None:
    with pytest.raises(ValueError, match="--date-params must be two names"):
        parse_date_params(value)
    assert parse_date_params(" dateStart , dateEnd ") == ("dateStart", "dateEnd")
