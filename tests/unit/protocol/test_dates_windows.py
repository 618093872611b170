from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pendulum
import pytest

from airflow_voicetrack.protocol import format_datetime, parse_datetime, parse_range, split_windows

UTC = pendulum.UTC


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-01T00:00:00Z",
        "2026-11-01T02:00:00+02:00",
        datetime(2026, 11, 1, tzinfo=timezone.utc),
        datetime(2026, 10, 31, 19, tzinfo=timezone(timedelta(hours=-5))),
        pendulum.datetime(2026, 11, 1, 1, tz="Europe/Athens").add(hours=1),
    ],
)
def test_aware_values_are_read_as_utc(value):
    assert parse_datetime(value, "date_start") == pendulum.datetime(2026, 11, 1, tz="UTC")
    assert parse_datetime(value, "date_start").tzinfo == UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime(2026, 11, 1), "date_start = .* has no time zone"),
        ("2026-11-01T00:00:00", "date_start = '2026-11-01T00:00:00' has no time zone"),
        ("2026-11-01", "must be an aware datetime"),
        ("yesterday", "is not an ISO-8601 date-time"),
        (1762000000, "must be an aware datetime"),
    ],
)
def test_naive_or_unreadable_values_are_rejected(value, message):
    with pytest.raises(ValueError, match=message):
        parse_datetime(value, "date_start")


def test_format_is_utc_z_to_the_second():
    value = pendulum.datetime(2026, 11, 1, 2, 30, 15, 999_999, tz="Europe/Athens")
    assert format_datetime(value) == "2026-11-01T00:30:15Z"


def test_range_end_must_be_after_start():
    with pytest.raises(ValueError, match=r"date_end \(2026-11-01T00:00:00Z\) must be after date_start"):
        parse_range("2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z")


def test_range_truncates_to_the_second_before_comparing():
    with pytest.raises(ValueError, match="must be after date_start"):
        parse_range("2026-11-01T00:00:00.1Z", "2026-11-01T00:00:00.9Z")


def test_range_allows_open_sides():
    assert parse_range(None, "2026-11-01T00:00:00Z")[0] is None


def test_windows_cover_the_range_without_gap_or_overlap():
    start, end = pendulum.datetime(2026, 11, 1, tz="UTC"), pendulum.datetime(2026, 11, 3, 6, tz="UTC")
    windows = split_windows(start, end, timedelta(hours=24))
    assert windows == [
        (start, start.add(days=1)),
        (start.add(days=1), start.add(days=2)),
        (start.add(days=2), end),
    ]


def test_short_range_is_one_window():
    start = pendulum.datetime(2026, 11, 1, tz="UTC")
    assert split_windows(start, start.add(minutes=5), timedelta(hours=24)) == [(start, start.add(minutes=5))]
