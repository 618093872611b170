"""
Property: for any range, filters, page size, sort, window and concurrency, the hook's search returns
exactly the emulator's filtered set (each message once, identical to the truth).

Starting an emulator takes seconds, so the data sets come from two emulators with different seeds
and sizes, and hypothesis draws everything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.messages import by_id, duplicates

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook
from airflow_voicetrack.protocol import format_datetime

WEEK_START = pendulum.datetime(2026, 11, 1, tz="UTC")
WEEK_MINUTES = 7 * 24 * 60
DATA_SETS = {"seed21_1500": (21, 1500), "seed22_4000": (22, 4000)}

FILTERS = st.one_of(
    st.fixed_dictionaries(
        {"fieldName": st.just("country"), "searchTerm": st.sampled_from(["GR", "GB", "US", "DE"])}
    ),
    st.fixed_dictionaries(
        {
            "fieldName": st.just("status.status"),
            "searchOperator": st.sampled_from(["is", "is_not"]),
            "searchTerm": st.sampled_from(["Completed", "Failed", "Busy", "NoAnswer"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "fieldName": st.sampled_from(["recipient", "from"]),
            "searchOperator": st.sampled_from(["starts_with", "contains", "ends_with"]),
            "searchTerm": st.sampled_from(["44", "30", "1", "0", "55"]),
        }
    ),
    st.fixed_dictionaries(
        {"fieldName": st.just("groups"), "searchTerm": st.sampled_from(["reminders", "staff", "vip"])}
    ),
)


@pytest.fixture(scope="module")
def data_sets() -> Iterator[dict[str, EmulatorProcess]]:
    emulators = {name: EmulatorProcess(messages=size, seed=seed) for name, (seed, size) in DATA_SETS.items()}
    try:
        for emu in emulators.values():
            emu.start()
        yield emulators
    finally:
        for emu in emulators.values():
            emu.stop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data_set=st.sampled_from(sorted(DATA_SETS)),
    start_minute=st.integers(0, WEEK_MINUTES - 1),
    length_minutes=st.integers(1, WEEK_MINUTES),
    filters=st.lists(FILTERS, max_size=2),
    page_size=st.sampled_from([7, 50, 333, 1000, 2000]),
    sort=st.sampled_from([None, "messageId,asc", "status.status,desc", "to"]),
    window_hours=st.sampled_from([1, 5, 24, 200]),
    max_concurrency=st.integers(1, 6),
)
def test_search_returns_exactly_the_filtered_truth(
    data_sets: dict[str, EmulatorProcess],
    monkeypatch: pytest.MonkeyPatch,
    data_set: str,
    start_minute: int,
    length_minutes: int,
    filters: list[dict[str, Any]],
    page_size: int,
    sort: str | None,
    window_hours: int,
    max_concurrency: int,
) -> None:
    emu = data_sets[data_set]
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json())
    start = WEEK_START.add(minutes=start_minute)
    end = min(start.add(minutes=length_minutes), WEEK_START.add(days=7))
    hook = VoiceTrackHook(
        page_size=page_size,
        max_concurrency=max_concurrency,
        window=timedelta(hours=window_hours),
        strict=True,
    )
    got = list(hook.search_messages(start, end, filters=filters, sort=sort))
    assert duplicates(got) == []
    assert by_id(got) == emu.truth(format_datetime(start), format_datetime(end), filters=filters)
