"""
Requests per poll of ``VoiceTrackEventTrigger`` watchers: alone, shared, and across campaigns.

``python -m benchmarks.watchers`` starts an emulator whose calls never settle (so every poll finds
the next window, or the campaign, still pending: the steady state of a watcher), then runs each
scenario in one event loop as a triggerer does:

- ``shared``: through Airflow 3.3's own ``SharedStreamManager`` (``shared_stream_key`` /
  ``open_shared_stream`` / ``filter_shared_stream``), what a 3.3 triggerer does;
- ``alone``: each watcher's own ``run()``, what a 3.2 triggerer does.

It counts the emulator's API requests (``/voice/...``) and token requests over ``--seconds``, and
the polls made (``VoiceTrackEventTrigger._poll`` calls), and prints requests per poll interval for
all the watchers together. The watcher kinds: N identical windows watchers (one search), and one
campaign watcher for each of 10 campaigns (10 searches), optionally 10 identical watchers each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_voicetrack.emulator.data import CAMPAIGNS
from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.triggers.voicetrack import CAMPAIGN_FINISHED, VoiceTrackEventTrigger

START = "2026-11-01T00:00:00Z"
#: 10 campaigns: the emulator's eight, and two that have no call (they wait for messages).
CAMPAIGN_IDS = [c.tracking_id for c in CAMPAIGNS] + ["no-such-campaign-1", "no-such-campaign-2"]


def api_and_tokens(emu: EmulatorProcess) -> tuple[int, int]:
    """:return: API requests (``/voice/...``) and token requests served so far."""
    requests = emu.stats()["requests"]
    api = sum(count for route, count in requests.items() if " /voice/" in route)
    tokens = sum(count for route, count in requests.items() if "/oauth/token" in route)
    return api, tokens


async def _drain(events: AsyncIterator[Any]) -> None:
    async for _ in events:
        pass


async def measure(
    emu: EmulatorProcess, triggers: list[VoiceTrackEventTrigger], *, shared: bool, seconds: float
) -> dict[str, Any]:
    """Run ``triggers`` for ``seconds`` after a warm-up poll; return the counts."""
    from airflow.triggers.shared_stream import SharedStreamManager

    polls = 0
    original = VoiceTrackEventTrigger._poll

    async def counting_poll(self: VoiceTrackEventTrigger, *args: Any) -> Any:
        nonlocal polls
        polls += 1
        return await original(self, *args)

    VoiceTrackEventTrigger._poll = counting_poll  # type: ignore[method-assign]
    manager = SharedStreamManager()
    tasks = []
    try:
        for trigger_id, trigger in enumerate(triggers):
            if shared:
                key = trigger.shared_stream_key()
                events = trigger.filter_shared_stream(
                    manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
                )
            else:
                events = trigger.run()
            tasks.append(asyncio.ensure_future(_drain(events)))
        await asyncio.sleep(triggers[0].poll_interval / 2)  # the first polls, and the token, are done
        api0, tokens0 = await asyncio.to_thread(api_and_tokens, emu)
        polls0, started = polls, time.monotonic()
        await asyncio.sleep(seconds)
        api1, tokens1 = await asyncio.to_thread(api_and_tokens, emu)
        elapsed, polls_made = time.monotonic() - started, polls - polls0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.stop_all()
        VoiceTrackEventTrigger._poll = original  # type: ignore[method-assign]
    intervals = elapsed / triggers[0].poll_interval
    return {
        "watchers": len(triggers),
        "polls": polls_made,
        "api_requests": api1 - api0,
        "token_requests": tokens1 - tokens0,
        "requests_per_interval": (api1 - api0) / intervals,
    }


def windows_watchers(n: int, poll_interval: float) -> list[VoiceTrackEventTrigger]:
    """``n`` identical windows watchers, each on its own asset."""
    return [
        VoiceTrackEventTrigger(asset_name=f"calls_{i}", window=3600, start=START, poll_interval=poll_interval)
        for i in range(n)
    ]


def campaign_watchers(per_campaign: int, poll_interval: float) -> list[VoiceTrackEventTrigger]:
    """``per_campaign`` identical campaign watchers for each of 10 campaigns."""
    return [
        VoiceTrackEventTrigger(
            asset_name=f"campaign_{c}_{i}",
            mode=CAMPAIGN_FINISHED,
            campaign_tracking_id=campaign,
            poll_interval=poll_interval,
        )
        for c, campaign in enumerate(CAMPAIGN_IDS)
        for i in range(per_campaign)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    scenarios = [
        ("1 identical windows watcher", lambda: windows_watchers(1, args.poll_interval)),
        ("10 identical windows watchers", lambda: windows_watchers(10, args.poll_interval)),
        ("50 identical windows watchers", lambda: windows_watchers(50, args.poll_interval)),
        ("10 campaign watchers, 10 campaigns", lambda: campaign_watchers(1, args.poll_interval)),
        ("100 campaign watchers, 10 per campaign", lambda: campaign_watchers(10, args.poll_interval)),
    ]
    # settle_seconds far beyond the run: every call stays pending, every poll is a steady-state poll.
    with EmulatorProcess(messages=2_000, settle_seconds=10**7) as emu:
        os.environ["AIRFLOW_CONN_VOICETRACK_DEFAULT"] = emu.connection_json()
        print(f"{'scenario':<40} {'mode':<7} {'polls':>6} {'API req':>8} {'tokens':>7} {'req/interval':>13}")
        for name, build in scenarios:
            for shared in (True, False):
                result = asyncio.run(measure(emu, build(), shared=shared, seconds=args.seconds))
                print(
                    f"{name:<40} {'shared' if shared else 'alone':<7} {result['polls']:>6} "
                    f"{result['api_requests']:>8} {result['token_requests']:>7} "
                    f"{result['requests_per_interval']:>13.1f}"
                )


if __name__ == "__main__":
    main()
