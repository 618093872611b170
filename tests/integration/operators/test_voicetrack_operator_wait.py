"""VoiceTrackingOperator waiting for the interval's calls to finish, under ``dag.test()``.

The emulator runs in ``--settle-lag`` mode: every call reaches its final status :data:`LAG` seconds
after its creation, so its historic week is final. Its clock is frozen and ticks :data:`TICK` seconds
after each API request, so the operator's checks see the calls' time pass one step per check:
the wait takes a few checks whatever the machine's load, and no test sleeps through the lag.
Right before the extraction starts (its ``pre_execute``), :func:`add_late_calls` adds calls created
in the last minutes of the interval, as a run right after the interval's end finds them: they
finish :data:`LAG` seconds after they appear.
(Calls added with a past creation time start their lag when they appear; starting the emulator
with the interval ending "now" instead would leave the test at the mercy of how long ``dag.test()``
takes to start the task on this shared machine. ``benchmarks/late_calls.py`` runs the real case:
800 calls created over the 4 minutes before now, finishing 60-120 s after creation.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException
from support.dags import Run
from support.messages import by_id

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

RunDag = Callable[..., Run]
#: Seconds (on the emulator's clock) after it appears at which a late call finishes.
LAG = (60.0, 120.0)
#: Seconds the emulator's frozen clock steps after each API request: 3 to 6 checks cover the lag.
TICK = 20.0
#: Seconds between the operator's checks (wall time; the emulator's time moves by TICK per check).
POKE = 0.2
#: The interval the late calls land in, and how many land there per test.
DAY = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
LATE_CALLS = 30
#: A past interval of the same data that no test adds calls to.
PAST_DAY = ("2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z")
SEARCH = "POST /voice/tracking"


@pytest.fixture(scope="module")
def lag_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=2000, settle_lag=LAG) as emu:
        yield emu


@pytest.fixture
def emu(lag_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    lag_emulator.reset()
    lag_emulator.freeze_clock(tick=TICK)
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", lag_emulator.connection_json())
    return lag_emulator


def add_late_calls(emu: EmulatorProcess) -> Callable[[Any], None]:
    """
    A ``pre_execute`` adding :data:`LATE_CALLS` calls created in the interval's last 3 minutes, once
    (a deferred task runs ``pre_execute`` again when it resumes).
    """
    added: list[bool] = []

    def add(context: Any) -> None:
        if added:
            return
        added.append(True)
        for second in range(0, 180, 180 * 5 // LATE_CALLS):
            emu.add_messages(5, created_at=f"2026-11-02T23:{57 + second // 60:02d}:{second % 60:02d}Z")

    return add


def truth(emu: EmulatorProcess, day: tuple[str, str] = DAY) -> list[dict[str, Any]]:
    return emu.truth(date_start=day[0], date_end=day[1])


def not_terminal(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["status"]["status"] not in DEFAULT_TERMINAL_STATUSES]


def settled_truth(emu: EmulatorProcess) -> list[dict[str, Any]]:
    """The interval's final truth: the emulator's clock stepped past the longest lag."""
    emu.advance_clock(LAG[1])
    messages = truth(emu)
    assert not_terminal(messages) == []
    return messages


def searches(emu: EmulatorProcess) -> int:
    return int(emu.stats()["requests"].get(SEARCH, 0))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def extract(
    emu: EmulatorProcess,
    day: tuple[str, str] = DAY,
    late: bool = True,
    operator: type[VoiceTrackingOperator] = VoiceTrackingOperator,
    **kwargs: Any,
) -> Callable[[], None]:
    def build() -> None:
        operator(
            task_id="extract",
            date_start=day[0],
            date_end=day[1],
            poke_interval=POKE,
            pre_execute=add_late_calls(emu) if late else None,
            **kwargs,
        )

    return build


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_waits_until_every_call_of_the_interval_has_finished(
    emu: EmulatorProcess, run_dag: RunDag, tmp_path: Path, deferrable: bool
) -> None:
    run = run_dag(extract(emu, output_path=f"file://{tmp_path}/day.jsonl", deferrable=deferrable))

    assert run.states == {"extract": "success"}, run.error_messages
    written = read_jsonl(tmp_path / "day.jsonl")
    final = settled_truth(emu)
    assert by_id(written) == final
    assert not_terminal(written) == []
    summary = run.results["extract"]
    assert summary["non_terminal"] == 0
    assert summary["records"] == len(final)
    assert summary["waited_seconds"] > 0
    # The late calls appear Queued and finish 60 s at the earliest: 3 ticks of 20 s, so the
    # operator counted at least 3 times before its read.
    assert searches(emu) >= 4


def test_wait_for_terminal_false_writes_a_snapshot(
    emu: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    run = run_dag(extract(emu, output_path=f"file://{tmp_path}/day.jsonl", wait_for_terminal=False))

    assert run.states == {"extract": "success"}, run.error_messages
    written = read_jsonl(tmp_path / "day.jsonl")
    final = settled_truth(emu)
    assert [m["messageId"] for m in by_id(written)] == [m["messageId"] for m in final]
    snapshot = not_terminal(written)
    assert 0 < len(snapshot) <= LATE_CALLS
    summary = run.results["extract"]
    assert summary["non_terminal"] == len(snapshot)
    assert summary["waited_seconds"] == 0


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_timeout_with_fail_writes_nothing_and_names_the_unfinished_calls(
    emu: EmulatorProcess, run_dag: RunDag, tmp_path: Path, deferrable: bool
) -> None:
    emu.freeze_clock(tick=0)  # the late calls never finish: the timeout, not the load, ends the wait
    run = run_dag(
        extract(emu, output_path=f"file://{tmp_path}/day.jsonl", settle_timeout=1, deferrable=deferrable)
    )

    assert run.states == {"extract": "failed"}
    assert list(tmp_path.iterdir()) == []
    (error,) = run.errors["extract"]
    # Not AirflowFailException: the task's own retries apply.
    assert type(error) is AirflowException
    message = str(error)
    assert "still not in a terminal status after settle_timeout=0:00:01" in message
    assert "on_unsettled='write'" in message and "wait_for_terminal=False" in message
    late_ids = {m["messageId"] for m in truth(emu) if m["status"]["date"] >= "2026-11-02T23:57"}
    quoted = {part for part in message.replace('"', "'").split("'") if part in late_ids}
    assert quoted, f"no example id of a late call in: {message}"


def test_timeout_with_write_writes_and_counts_the_unfinished_calls(
    emu: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    emu.freeze_clock(tick=0)  # the late calls never finish: the timeout ends the wait
    run = run_dag(
        extract(emu, output_path=f"file://{tmp_path}/day.jsonl", settle_timeout=1, on_unsettled="write")
    )

    assert run.states == {"extract": "success"}, run.error_messages
    written = read_jsonl(tmp_path / "day.jsonl")
    final = settled_truth(emu)
    assert [m["messageId"] for m in by_id(written)] == [m["messageId"] for m in final]
    summary = run.results["extract"]
    assert summary["non_terminal"] == len(not_terminal(written)) == LATE_CALLS
    assert summary["waited_seconds"] >= 1  # settle_timeout, on the operator's own clock


def test_a_past_interval_costs_one_extra_request(
    emu: EmulatorProcess, run_dag: RunDag, tmp_path: Path
) -> None:
    spent = {}
    for wait in (False, True):
        emu.reset_stats()
        run = run_dag(
            extract(
                emu,
                PAST_DAY,
                late=False,
                output_path=f"file://{tmp_path}/{wait}.jsonl",
                wait_for_terminal=wait,
            )
        )
        assert run.states == {"extract": "success"}, run.error_messages
        assert run.results["extract"]["non_terminal"] == 0
        assert run.results["extract"]["waited_seconds"] == 0
        assert by_id(read_jsonl(tmp_path / f"{wait}.jsonl")) == truth(emu, PAST_DAY)
        spent[wait] = searches(emu)

    assert spent[True] == spent[False] + 1


def test_xcom_mode_waits_too(emu: EmulatorProcess, run_dag: RunDag) -> None:
    run = run_dag(extract(emu, output_path=None))

    assert run.states == {"extract": "success"}, run.error_messages
    returned = run.results["extract"]
    assert not_terminal(returned) == []
    assert by_id(returned) == settled_truth(emu)


class CallAppearsAfterTheCount(VoiceTrackingOperator):
    """
    The operator, with a call of the interval added to the emulator right after its first count
    (the only deterministic way to put an event between the count and the read): the search shows
    a call late, as an eventually consistent index would.
    """

    emu: EmulatorProcess

    def _check(self, number: int, deadline: float | None = None) -> int:
        pending = super()._check(number, deadline)
        if number == 1:
            self.emu.add_messages(2, created_at="2026-11-06T23:59:00Z")
        return pending


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_call_that_appears_between_the_count_and_the_read_is_waited_for_and_rewritten(
    emu: EmulatorProcess, run_dag: RunDag, tmp_path: Path, deferrable: bool
) -> None:
    day = ("2026-11-06T00:00:00Z", "2026-11-07T00:00:00Z")
    before = len(truth(emu, day))
    CallAppearsAfterTheCount.emu = emu

    run = run_dag(
        extract(
            emu,
            day,
            late=False,
            operator=CallAppearsAfterTheCount,
            output_path=f"file://{tmp_path}/day.jsonl",
            deferrable=deferrable,
        )
    )

    assert run.states == {"extract": "success"}, run.error_messages
    written = read_jsonl(tmp_path / "day.jsonl")
    assert len(written) == before + 2
    assert not_terminal(written) == []
    assert by_id(written) == truth(emu, day)
    summary = run.results["extract"]
    assert summary["non_terminal"] == 0
    assert summary["waited_seconds"] > 0


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_call_still_unfinished_at_the_final_read_fails_the_task_and_writes_nothing(
    emu: EmulatorProcess, run_dag: RunDag, tmp_path: Path, deferrable: bool
) -> None:
    # The count says 0; the read finds the two calls that appeared meanwhile, not terminal, and they
    # never finish (the clock stands still): the final read's check must keep them out of the output.
    emu.freeze_clock(tick=0)
    CallAppearsAfterTheCount.emu = emu
    run = run_dag(
        extract(
            emu,
            ("2026-11-06T00:00:00Z", "2026-11-07T00:00:00Z"),
            late=False,
            operator=CallAppearsAfterTheCount,
            output_path=f"file://{tmp_path}/day.jsonl",
            settle_timeout=1,
            deferrable=deferrable,
        )
    )

    assert run.states == {"extract": "failed"}
    assert list(tmp_path.iterdir()) == []
    (message,) = run.error_messages["extract"]
    assert "still not in a terminal status after settle_timeout=0:00:01" in message
