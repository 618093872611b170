"""VoiceTrackEventTrigger's ``run()`` against the emulator over HTTP: what it announces, and when.

Each test drives the watcher's own poll loop (as the triggerer does on Airflow < 3.3, or for a
watcher alone) against a real emulator and checks every payload against the emulator's truth.
Shared polls through Airflow's own ``SharedStreamManager`` are in ``test_voicetrack_event_shared.py``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.emulator import FAST_RETRIES, START, api_requests

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.triggers.voicetrack import CAMPAIGN_FINISHED, VoiceTrackEventTrigger

CAMPAIGN = CAMPAIGNS[0].tracking_id
DAY = 86_400


class MemoryStateStore:
    """
    A stand-in for one asset's state store accessor (``aget``/``aset``) outside a triggerer.

    The real store (Airflow 3.3's, through the triggerer) is exercised by the system test.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __getitem__(self, asset: Any) -> MemoryStateStore:
        assert asset.name == "calls", asset
        return self

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


def watch(
    trigger: VoiceTrackEventTrigger,
    *,
    seconds: float,
    until: Callable[[list[dict[str, Any]]], bool] = lambda events: False,
    linger: float = 0.0,
) -> tuple[list[dict[str, Any]], bool]:
    """
    Run the watcher for at most ``seconds``, or until ``until(payloads)`` and ``linger`` s more.

    Without ``linger`` the watcher is stopped right after handing over the event that satisfied
    ``until``, before it could save its progress (a triggerer dying at that moment).

    :return: the payloads it fired, and whether it was still running when stopped.
    """
    payloads: list[dict[str, Any]] = []
    satisfied = asyncio.Event()

    async def consume() -> None:
        async for event in trigger.run():
            payloads.append(event.payload)
            if until(payloads):
                satisfied.set()
                if not linger:
                    return

    async def main() -> bool:
        task = asyncio.ensure_future(consume())
        waiter = asyncio.ensure_future(satisfied.wait())
        await asyncio.wait([task, waiter], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        if satisfied.is_set() and linger:
            await asyncio.wait([task], timeout=linger)
        waiter.cancel()
        if task.done():
            task.result()
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    running = asyncio.run(main())
    return payloads, running


def truth_by_status(emu: EmulatorProcess, **search: Any) -> dict[str, int]:
    counts = Counter(m["status"]["status"] for m in emu.truth(**search))
    return {status: counts.get(status, 0) for status in sorted(DEFAULT_TERMINAL_STATUSES)}


@pytest.fixture
def emulator(progressing: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    """The progressing emulator (300 messages over a week, all final 4 s after the reset)."""
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", progressing.connection_json(**FAST_RETRIES))
    yield progressing
    progressing.clear_faults()


def test_settled_windows_are_announced_in_order_each_once_with_the_emulators_counts(
    emulator: EmulatorProcess,
) -> None:
    trigger = VoiceTrackEventTrigger(asset_name="calls", window=DAY, start=START, poll_interval=1)
    payloads, running = watch(trigger, seconds=30, until=lambda p: p[-1]["window_end"] >= "2026-11-08")
    assert running is False, "the seven days of data were not all announced within 30 s"
    assert [p["window_start"][:10] for p in payloads] == [f"2026-11-0{day}" for day in range(1, 8)]
    for payload in payloads:
        truth = truth_by_status(emulator, date_start=payload["window_start"], date_end=payload["window_end"])
        assert payload["by_status"] == truth
        assert payload["count"] == sum(truth.values()) > 0
        assert payload["watermark"] == payload["window_end"]
        assert payload["mode"] == "windows_settled" and payload["campaign_tracking_id"] is None


@pytest.mark.slow
def test_a_window_is_not_announced_while_a_call_in_it_is_pending(emulator: EmulatorProcess) -> None:
    emulator.reset()  # every call moves again: final within 4 s
    trigger = VoiceTrackEventTrigger(asset_name="calls", window=DAY, start=START, poll_interval=1)
    started = asyncio.run(_now())
    payloads, _ = watch(trigger, seconds=30, until=lambda p: True)
    assert payloads, "no window was announced"
    first = payloads[0]
    # Announced only once all its calls were final: the truth now equals the payload.
    assert first["by_status"] == truth_by_status(
        emulator, date_start=first["window_start"], date_end=first["window_end"]
    )
    assert asyncio.run(_now()) - started >= 1.0, "announced before the emulator's calls could settle"


async def _now() -> float:
    return asyncio.get_running_loop().time()


@pytest.mark.slow
def test_a_restart_with_the_state_store_announces_nothing_again(emulator: EmulatorProcess) -> None:
    store = MemoryStateStore()
    kwargs = {"asset_name": "calls", "window": DAY, "start": START, "poll_interval": 1}
    first = VoiceTrackEventTrigger(**kwargs)
    first.asset_state_store = store
    announced, _ = watch(first, seconds=30, until=lambda p: len(p) == 7, linger=1.5)
    assert len(announced) == 7

    second = VoiceTrackEventTrigger(**kwargs)  # a triggerer restart: a new instance, the same store
    second.asset_state_store = store
    after, running = watch(second, seconds=3)
    assert after == [] and running


@pytest.mark.slow
def test_a_watcher_stopped_before_saving_announces_that_window_again(emulator: EmulatorProcess) -> None:
    # At least once: the progress is saved after the event is handed over, never before.
    store = MemoryStateStore()
    kwargs = {"asset_name": "calls", "window": DAY, "start": START, "poll_interval": 1}
    first = VoiceTrackEventTrigger(**kwargs)
    first.asset_state_store = store
    announced, _ = watch(first, seconds=30, until=lambda p: len(p) == 3)
    second = VoiceTrackEventTrigger(**kwargs)
    second.asset_state_store = store
    after, _ = watch(second, seconds=30, until=lambda p: True)
    assert after[0] == announced[2]


@pytest.mark.slow
def test_without_a_state_store_a_restart_announces_again_from_start(
    emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    # Airflow 3.2 (no asset_state_store): progress in memory, one warning per watcher.
    kwargs = {"asset_name": "calls", "window": DAY, "start": START, "poll_interval": 1}
    first, _ = watch(VoiceTrackEventTrigger(**kwargs), seconds=30, until=lambda p: len(p) == 7, linger=1.5)
    again, _ = watch(VoiceTrackEventTrigger(**kwargs), seconds=30, until=lambda p: True)
    assert again[0] == first[0]
    assert capsys.readouterr().out.count("No asset state store") == 2


def test_a_finished_campaign_fires_once_then_the_watcher_sends_no_request(emulator: EmulatorProcess) -> None:
    emulator.reset()
    trigger = VoiceTrackEventTrigger(
        asset_name="calls", mode=CAMPAIGN_FINISHED, campaign_tracking_id=CAMPAIGN, poll_interval=1
    )
    payloads, _ = watch(trigger, seconds=30, until=lambda p: True)
    [payload] = payloads
    truth = truth_by_status(emulator, campaign_tracking_id=CAMPAIGN)
    assert payload["by_status"] == truth and payload["count"] == sum(truth.values()) > 0
    assert payload["campaign_tracking_id"] == CAMPAIGN and payload["mode"] == CAMPAIGN_FINISHED

    store = MemoryStateStore()
    trigger = VoiceTrackEventTrigger(
        asset_name="calls", mode=CAMPAIGN_FINISHED, campaign_tracking_id=CAMPAIGN, poll_interval=1
    )
    trigger.asset_state_store = store
    payloads, running = watch(trigger, seconds=30, until=lambda p: True, linger=2.5)
    assert len(payloads) == 1 and running, "it fired again, or ended, after announcing the campaign"
    # Restarted with the campaign in its store: it neither fires nor asks the API again.
    restarted = VoiceTrackEventTrigger(
        asset_name="calls", mode=CAMPAIGN_FINISHED, campaign_tracking_id=CAMPAIGN, poll_interval=1
    )
    restarted.asset_state_store = store
    before = api_requests(emulator)
    payloads, running = watch(restarted, seconds=2)
    assert payloads == [] and running
    assert api_requests(emulator) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "faults",
    [{"forbidden_rate": 1.0}, {"error_burst": 1_000_000, "error_status": 503}],
    ids=["403-every-call", "503-every-call"],
)
def test_a_watcher_whose_calls_fail_keeps_running_and_fires_nothing(
    emulator: EmulatorProcess, faults: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.set_faults(**faults)
    trigger = VoiceTrackEventTrigger(asset_name="calls", window=DAY, start=START, poll_interval=1)
    before = api_requests(emulator)
    payloads, running = watch(trigger, seconds=5)
    assert payloads == [] and running
    assert api_requests(emulator) - before >= 2, "the watcher did not poll again after a failure"
    assert "Voice tracking poll failed" in capsys.readouterr().out

    emulator.clear_faults()  # the same watcher recovers at its next poll
    payloads, _ = watch(trigger, seconds=30, until=lambda p: True)
    assert payloads[0]["window_start"][:10] == "2026-11-01"
