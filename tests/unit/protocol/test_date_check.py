"""The search's check that the service applied the date range: no message dated before its window."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest

from airflow_voicetrack.exceptions import VoiceTrackDateFilterError, VoiceTrackError
from airflow_voicetrack.protocol import (
    DATE_FILTER_TOLERANCE,
    Page,
    Request,
    SearchRun,
    Settings,
    WindowStartCheck,
    parse_page,
)

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
SETTINGS = Settings("http://127.0.0.1:1", "http://127.0.0.1:1/oauth/token", "app", "secret")


def page_of(*dates: object, raw: bool = False) -> Page:
    """A page with one message per date (``...`` for a message without ``status.date``)."""
    content = []
    for index, date in enumerate(dates):
        status = {"status": "Completed"} if date is ... else {"status": "Completed", "date": date}
        content.append({"messageId": f"m{index}", "status": status})
    body = {
        "content": content,
        "number": 0,
        "size": len(content),
        "numberOfElements": len(content),
        "totalElements": len(content),
        "totalPages": 1,
    }
    return parse_page(json.dumps(body).encode(), page=0, size=len(content), raw=raw)


def check(page: Page) -> None:
    WindowStartCheck(START, "window [2026-11-01T00:00:00Z, 2026-11-02T00:00:00Z)").check(page)


@pytest.mark.parametrize("raw", [False, True], ids=["decoded", "raw"])
def test_a_message_dated_days_before_the_window_fails_naming_the_cause_and_the_fix(raw: bool) -> None:
    page = page_of("2026-11-01T08:00:00.000Z", "2026-10-29T13:14:15.123Z", "2026-10-01T00:00:00Z", raw=raw)
    with pytest.raises(VoiceTrackDateFilterError) as info:
        check(page)
    error = info.value
    assert isinstance(error, VoiceTrackError)
    # The first violation, by id and date.
    assert (error.message_id, error.status_date, error.window_start) == (
        "m1",
        "2026-10-29T13:14:15.123Z",
        "2026-11-01T00:00:00Z",
    )
    text = str(error)
    assert "window [2026-11-01T00:00:00Z, 2026-11-02T00:00:00Z)" in text
    assert "ignored the date parameters" in text
    assert "python -m airflow_voicetrack.probe" in text


@pytest.mark.parametrize("raw", [False, True], ids=["decoded", "raw"])
def test_dates_within_the_tolerance_or_without_a_zone_or_missing_are_skipped(raw: bool) -> None:
    assert DATE_FILTER_TOLERANCE.total_seconds() == 300
    page = page_of(
        "2026-10-31T23:55:00Z",  # exactly the tolerance before the start
        "2026-10-31T23:57:30.5Z",  # clock skew
        "2026-10-01T00:00:00",  # no time zone: cannot be compared
        "2026-10-01",  # a date without a time
        "yesterday",  # not a date at all
        None,
        12345,
        ...,  # no status.date
        raw=raw,
    )
    check(page)


@pytest.mark.parametrize(
    "date", [None, 7, ..., "", "2026-10-01"], ids=["null", "number", "missing", "empty", "day"]
)
def test_a_page_of_one_undated_message_passes(date: object) -> None:
    check(page_of(date))


def test_one_second_past_the_tolerance_fails() -> None:
    with pytest.raises(VoiceTrackDateFilterError):
        check(page_of("2026-10-31T23:54:59.999Z"))


def test_dates_with_an_offset_are_compared_in_utc() -> None:
    # 01:00 at +02:00 is 23:00 UTC the day before: an hour before the window.
    with pytest.raises(VoiceTrackDateFilterError, match=r"\+02:00"):
        check(page_of("2026-11-01T01:00:00+02:00"))
    # 23:00 at -02:00 is 01:00 UTC on the window's day, although its text sorts before the start.
    check(page_of("2026-10-31T23:00:00-02:00", "2026-11-01T00:00:00+00:00"))


def sources(*starts: datetime | None) -> list:
    return [
        (f"window {i}", lambda page, size: Request("POST", "http://x"), start)
        for i, start in enumerate(starts)
    ]


def test_a_search_fails_on_the_page_before_yielding_its_messages() -> None:
    run = SearchRun(sources(START), SETTINGS, page_size=3, log=logging.getLogger("test"))
    (fetch,) = run.to_fetch()
    run.arrived(fetch, page_of("2026-11-01T01:00:00Z", "2026-11-01T02:00:00Z", "2025-01-01T00:00:00Z"))
    with pytest.raises(VoiceTrackDateFilterError, match="m2"):
        run.ready()


def test_a_window_without_a_start_is_not_checked() -> None:
    # Campaign and conversation listings, and searches open below, have no start to check against.
    run = SearchRun(sources(None), SETTINGS, page_size=1, log=logging.getLogger("test"))
    (fetch,) = run.to_fetch()
    run.arrived(fetch, page_of("2001-01-01T00:00:00Z"))
    assert [m["messageId"] for m in run.ready()] == ["m0"]
