"""Identical VoiceTrackEventTrigger watchers share one poll through Airflow 3.3's SharedStreamManager.

The manager is the triggerer's own (``airflow.triggers.shared_stream``); each watcher keeps its own
progress and gets every announcement once, from one poll's requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.emulator import FAST_RETRIES, START

from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.triggers.voicetrack import CAMPAIGN_FINISHED, VoiceTrackEventTrigger
from benchmarks.watchers import api_and_tokens

shared_stream = pytest.importorskip("airflow.triggers.shared_stream", reason="shared polls need Airflow 3.3+")
DAY = 86_400


def run_shared(
    triggers: list[VoiceTrackEventTrigger], *, expected: int, seconds: float = 30
) -> list[list[dict[str, Any]]]:
    """Subscribe every trigger, as the triggerer does, until each fired ``expected`` events."""
    payloads: list[list[dict[str, Any]]] = [[] for _ in triggers]

    async def consume(index: int, trigger: VoiceTrackEventTrigger, manager: Any) -> None:
        stream = manager.subscribe(trigger_id=index, trigger=trigger, key=trigger.shared_stream_key())
        async for event in trigger.filter_shared_stream(stream):
            payloads[index].append(event.payload)
            if len(payloads[index]) == expected:
                await asyncio.sleep(1.5)  # long enough to save the progress, and to fire again if it would
                return

    async def main() -> None:
        manager = shared_stream.SharedStreamManager()
        tasks = [asyncio.ensure_future(consume(i, t, manager)) for i, t in enumerate(triggers)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await manager.stop_all()

    asyncio.run(main())
    return payloads


@pytest.fixture
def emulator(progressing: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", progressing.connection_json(**FAST_RETRIES))
    return progressing


@pytest.mark.slow
def test_ten_identical_watchers_get_every_window_once_for_the_requests_of_one(
    emulator: EmulatorProcess,
) -> None:
    def watchers(n: int) -> list[VoiceTrackEventTrigger]:
        return [
            VoiceTrackEventTrigger(asset_name=f"calls_{i}", window=DAY, start=START, poll_interval=1)
            for i in range(n)
        ]

    assert len({w.shared_stream_key() for w in watchers(10)}) == 1
    emulator.reset()
    before, _ = api_and_tokens(emulator)
    [alone] = run_shared(watchers(1), expected=7)
    one_watcher = api_and_tokens(emulator)[0] - before

    emulator.reset()
    before, _ = api_and_tokens(emulator)
    ten = run_shared(watchers(10), expected=7)
    ten_watchers = api_and_tokens(emulator)[0] - before

    assert [p["window_start"][:10] for p in alone] == [f"2026-11-0{day}" for day in range(1, 8)]
    assert all(payloads == alone for payloads in ten)
    # The same polls for one and for ten (give or take the one poll the timing adds or saves).
    assert ten_watchers <= one_watcher * 1.5, (one_watcher, ten_watchers)


@pytest.mark.slow
def test_watchers_of_different_campaigns_poll_apart_and_each_fires_once(emulator: EmulatorProcess) -> None:
    emulator.reset()
    triggers = [
        VoiceTrackEventTrigger(
            asset_name=f"campaign_{i}",
            mode=CAMPAIGN_FINISHED,
            campaign_tracking_id=c.tracking_id,
            poll_interval=1,
        )
        for i, c in enumerate(CAMPAIGNS[:3])
    ]
    assert len({t.shared_stream_key() for t in triggers}) == 3
    payloads = run_shared(triggers, expected=1)
    for trigger, [payload] in zip(triggers, payloads, strict=True):
        assert payload["campaign_tracking_id"] == trigger.campaign_tracking_id
        assert payload["count"] == len(emulator.truth(campaign_tracking_id=trigger.campaign_tracking_id))
