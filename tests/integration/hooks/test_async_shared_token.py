"""VoiceTrackAsyncHook shares one token per connection and event loop (a triggerer full of sensors)."""

from __future__ import annotations

import asyncio
import json

import pytest
from support.emulator import END, START

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.exceptions import VoiceTrackAuthError
from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook

HOOKS = 30


async def count_with_new_hooks(n: int, conn_id: str = "voicetrack_default") -> list[int]:
    """Count the messages with ``n`` new hooks at once, closing them after."""
    hooks = [VoiceTrackAsyncHook(conn_id) for _ in range(n)]
    try:
        return await asyncio.gather(*(hook.count_messages(START, END) for hook in hooks))
    finally:
        await asyncio.gather(*(hook.close() for hook in hooks))


def tokens_issued(emu: EmulatorProcess) -> int:
    return int(emu.stats()["tokens_issued"])


def test_many_hooks_of_one_connection_in_one_loop_fetch_one_token(emu: EmulatorProcess):
    counts = asyncio.run(count_with_new_hooks(HOOKS))
    assert counts == [len(emu.truth(START, END))] * HOOKS
    assert tokens_issued(emu) == 1


def test_each_event_loop_fetches_its_own_token(emu: EmulatorProcess):
    asyncio.run(count_with_new_hooks(3))
    asyncio.run(count_with_new_hooks(3))
    assert tokens_issued(emu) == 2


def test_each_connection_has_its_own_token(emu: EmulatorProcess, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_OTHER", emu.connection_json())

    async def both() -> None:
        await asyncio.gather(count_with_new_hooks(3), count_with_new_hooks(3, "voicetrack_other"))

    asyncio.run(both())
    assert tokens_issued(emu) == 2


def test_a_token_is_never_shared_with_other_credentials(emu: EmulatorProcess, monkeypatch):
    """The same connection id with a wrong secret, in the same loop, gets no token: the key holds it."""
    wrong = json.loads(emu.connection_json(max_retries=0))
    wrong["password"] = "not-the-application-secret"

    async def good_then_wrong() -> None:
        await count_with_new_hooks(2)
        monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", json.dumps(wrong))
        with pytest.raises(VoiceTrackAuthError, match="credentials"):
            await count_with_new_hooks(1)

    asyncio.run(good_then_wrong())
    assert tokens_issued(emu) == 1
    assert emu.stats()["requests"]["POST /oauth/token"] == 2


def test_an_expired_token_is_renewed_once_for_all_waiting_hooks(emu: EmulatorProcess):
    # The emulator's clock is stepped past the token's hour: the API refuses it as expired while the
    # client still holds it, and every hook that gets the 401 waits for the same new token.
    emu.freeze_clock()

    async def before_and_after_expiry() -> None:
        hooks = [VoiceTrackAsyncHook() for _ in range(HOOKS)]
        try:
            await asyncio.gather(*(hook.count_messages(START, END) for hook in hooks))
            await asyncio.to_thread(emu.advance_clock, 3601)
            await asyncio.gather(*(hook.count_messages(START, END) for hook in hooks))
        finally:
            await asyncio.gather(*(hook.close() for hook in hooks))

    asyncio.run(before_and_after_expiry())
    assert tokens_issued(emu) == 2
    # Each hook: one search before, one refused as expired, one repeat with the new token.
    assert emu.stats()["requests"]["POST /voice/tracking"] == 3 * HOOKS


async def token_requests_arrived(emu: EmulatorProcess, n: int) -> None:
    """Return once the emulator has received ``n`` token requests (counted on arrival, before the
    ``latency_ms`` it holds each one)."""
    while (await asyncio.to_thread(emu.stats))["requests"].get("POST /oauth/token", 0) < n:
        await asyncio.sleep(0.01)


def test_cancelling_the_hook_that_started_the_fetch_does_not_cancel_it_for_the_others(emu: EmulatorProcess):
    # The token endpoint holds the fetch 1 s: the second hook asks for a token while it is under way.
    emu.set_faults(latency_ms=1000)

    async def cancel_the_first() -> int:
        first, second = VoiceTrackAsyncHook(), VoiceTrackAsyncHook()
        try:
            started = asyncio.create_task(first.count_messages(START, END))
            await token_requests_arrived(emu, 1)  # the first hook's token fetch is under way
            waiting = asyncio.create_task(second.count_messages(START, END))
            await asyncio.sleep(0)  # the second hook starts
            started.cancel()
            with pytest.raises(asyncio.CancelledError):
                await started
            return await waiting
        finally:
            await first.close()
            await second.close()

    assert asyncio.run(cancel_the_first()) == len(emu.truth(START, END))
    # Had the cancel stopped the fetch, the second hook would have started a fetch of its own.
    assert tokens_issued(emu) == 1
    assert emu.stats()["requests"]["POST /oauth/token"] == 1
