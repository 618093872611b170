from __future__ import annotations

import pytest

from airflow_voicetrack.protocol import SearchFilter, normalize_filters


def test_none_means_no_filter():
    assert normalize_filters(None) == []


def test_operator_defaults_to_is():
    assert normalize_filters([{"fieldName": "country", "searchTerm": "GR"}]) == [
        {"fieldName": "country", "searchOperator": "is", "searchTerm": "GR"}
    ]


def test_search_filter_dataclass_becomes_api_form():
    assert normalize_filters([SearchFilter("recipient", "3069", operator="starts_with")]) == [
        {"fieldName": "recipient", "searchOperator": "starts_with", "searchTerm": "3069"}
    ]


def test_every_api_field_and_operator_is_accepted():
    filters = [
        {"fieldName": field, "searchOperator": op, "searchTerm": "x"}
        for field in ("id", "recipient", "from", "collectedTones", "groups", "country", "campaign")
        for op in ("is", "is_not", "contains", "starts_with", "ends_with")
    ]
    assert normalize_filters(filters) == filters


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"fieldName": "country", "searchTerm": "GR"}, "filters must be a list"),
        ("country=GR", "filters must be a list"),
        (["country"], r"filters\[0\] = 'country': expected a dict"),
        (
            [{"fieldName": "nope", "searchTerm": "x"}],
            r"filters\[0\].*unknown fieldName 'nope'; accepted: \['id'",
        ),
        (
            [
                {"fieldName": "country", "searchTerm": "GR"},
                {"fieldName": "country", "searchOperator": "like", "searchTerm": "G"},
            ],
            r"filters\[1\].*unknown searchOperator 'like'; accepted: \['is', 'is_not'",
        ),
        ([{"fieldName": "country"}], r"filters\[0\].*searchTerm must be a non-empty string, got None"),
        ([{"fieldName": "country", "searchTerm": "  "}], r"filters\[0\].*searchTerm must not be empty"),
        (
            [{"fieldName": "country", "searchTerm": 30}],
            r"filters\[0\].*searchTerm must be a non-empty string, got 30",
        ),
        ([{"fieldName": "country", "searchTerm": "GR", "op": "is"}], r"unknown keys \['op'\]; accepted keys"),
        (
            [{"fieldName": "status.status", "searchTerm": "Done"}],
            r"unknown status 'Done'; accepted: \['Busy'",
        ),
        ([SearchFilter("country", "")], r"filters\[0\] = SearchFilter.*must not be empty"),
    ],
)
def test_invalid_filter_is_rejected_with_what_is_accepted(filters, message):
    with pytest.raises(ValueError, match=message):
        normalize_filters(filters)


def test_status_filter_with_contains_accepts_partial_terms():
    assert normalize_filters(
        [{"fieldName": "status.status", "searchOperator": "contains", "searchTerm": "Comp"}]
    )
