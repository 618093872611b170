"""
A service that ignores our date parameters: every search would return the account's whole history.

The emulator plays it with ``--lenient-params --date-params dateStart,dateEnd``: it reads the range
under the other spelling and ignores ``from``/``to`` silently, as a Spring service ignores query
parameters it does not know. Its data spans a week, so a search for one day of it gets days of older
messages back. Every way of searching must fail on the date check instead of returning them, and the
operator must leave a previous object at its path exactly as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.dags import Run
from support.emulator import END, START

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.exceptions import VoiceTrackAPIError, VoiceTrackDateFilterError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook, VoiceTrackHook
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor
from airflow_voicetrack.writers import TEMP_MARKER

RunDag = Callable[..., Run]
#: One day in the middle of the emulator's week: two days of messages lie before it.
DAY = ("2026-11-04T00:00:00Z", "2026-11-05T00:00:00Z")
MISMATCHED = {"lenient_params": True, "date_params": ("dateStart", "dateEnd")}


@pytest.fixture(scope="module")
def mismatched_process() -> Iterator[EmulatorProcess]:
    """2,000 messages over 2026-11-01..08, served by a service that ignores ``from``/``to``."""
    with EmulatorProcess(messages=2000, seed=3, **MISMATCHED) as emu:
        yield emu


@pytest.fixture
def mismatched(mismatched_process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    mismatched_process.reset()
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", mismatched_process.connection_json())
    return mismatched_process


def assert_names_cause_and_fix(error: BaseException | str) -> None:
    text = str(error)
    assert "before the searched window's start 2026-11-04T00:00:00Z" in text
    assert "ignored the date parameters 'from'/'to'" in text
    assert "python -m airflow_voicetrack.probe" in text


def test_the_data_holds_messages_older_than_the_window(mismatched: EmulatorProcess) -> None:
    # Without this the date check would have nothing to find.
    older = mismatched.truth_ids(START, DAY[0])
    assert len(older) > 400
    assert len(mismatched.truth_ids(START, END)) == 2000


@pytest.mark.parametrize("raw", [False, True], ids=["dicts", "raw"])
def test_a_sync_search_fails_on_the_date_check(mismatched: EmulatorProcess, raw: bool) -> None:
    with pytest.raises(VoiceTrackDateFilterError) as info:
        list(VoiceTrackHook(page_size=500).search_messages(*DAY, raw=raw))
    assert_names_cause_and_fix(info.value)
    assert info.value.message_id in mismatched.truth_ids(START, DAY[0])


def test_an_async_search_and_count_fail_on_the_date_check(mismatched: EmulatorProcess) -> None:
    async def search() -> list[Any]:
        hook = VoiceTrackAsyncHook(page_size=500)
        try:
            return [m async for m in hook.search_messages(*DAY)]
        finally:
            await hook.close()

    async def count() -> int:
        hook = VoiceTrackAsyncHook()
        try:
            return await hook.count_messages(*DAY)
        finally:
            await hook.close()

    for run in (search, count):
        with pytest.raises(VoiceTrackDateFilterError) as info:
            asyncio.run(run())
        assert_names_cause_and_fix(info.value)


def test_a_count_fails_on_the_date_check(mismatched: EmulatorProcess) -> None:
    with pytest.raises(VoiceTrackDateFilterError):
        VoiceTrackHook().count_messages(*DAY)


def test_a_search_whose_window_holds_all_the_data_passes(mismatched: EmulatorProcess) -> None:
    # The same service, one window starting before every message: nothing is dated before it.
    hook = VoiceTrackHook(window=timedelta(days=90))
    ids = [m["messageId"] for m in hook.search_messages("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z")]
    assert sorted(ids) == mismatched.truth_ids(START, END)
    # In daily windows, the first window starting after the first message (2026-11-01) gets it back.
    # (Windows before it cannot tell: every message of the history is younger than their start.)
    with pytest.raises(VoiceTrackDateFilterError, match=r"window \[2026-11-02T00:00:00Z"):
        list(VoiceTrackHook(window=timedelta(days=1)).search_messages("2026-10-01T00:00:00Z", END))


@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
def test_the_operator_fails_and_leaves_the_previous_object_byte_identical(
    mismatched: EmulatorProcess, run_dag: RunDag, tmp_path: Path, output_format: str
) -> None:
    path = tmp_path / f"day.{output_format}"
    previous = b'{"messageId": "from an earlier, correct run"}\n' * 3
    path.write_bytes(previous)
    run = run_dag(
        lambda: VoiceTrackingOperator(
            task_id="extract",
            date_start=DAY[0],
            date_end=DAY[1],
            output_path=f"file://{path}",
            output_format=output_format,
            wait_for_terminal=False,
            page_size=200,
        )
    )
    assert run.states == {"extract": "failed"}
    assert_names_cause_and_fix(run.error_messages["extract"][0])
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left either
    assert not list(tmp_path.rglob(f"*{TEMP_MARKER}*"))


def test_the_sensor_fails_on_the_date_check(mismatched: EmulatorProcess, run_dag: RunDag) -> None:
    run = run_dag(
        lambda: VoiceMessageStatusSensor(
            task_id="wait", date_start=DAY[0], date_end=DAY[1], poke_interval=0.1
        )
    )
    assert run.states == {"wait": "failed"}
    assert_names_cause_and_fix(run.error_messages["wait"][0])


def test_a_strict_service_with_the_other_names_refuses_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without --lenient-params the mismatch is loud: a 400 naming our parameters.
    with EmulatorProcess(messages=100, seed=3, date_params=("dateStart", "dateEnd")) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emu.connection_json())
        with pytest.raises(VoiceTrackAPIError) as info:
            list(VoiceTrackHook().search_messages(*DAY))
    assert info.value.status_code == 400
    assert set(info.value.properties) == {"from", "to"}
    assert "unknown parameter" in info.value.properties["from"]
