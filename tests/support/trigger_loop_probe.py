"""Run a deferred VoiceMessageStatusSensor's trigger on an event loop in debug mode, in this fresh
process, and report every callback that held the loop longer than :data:`THRESHOLD_S`.

``python tests/support/trigger_loop_probe.py EMULATOR_URL TICK`` (the connection comes from
``AIRFLOW_CONN_VOICETRACK_DEFAULT``; the emulator is the progressing one of the sensor tests, its
clock frozen and stepping TICK seconds after each API request). Prints
one JSON line: the trigger's first event, the slow-callback warnings of its run, and those of a
control run that makes one blocking request, which the same detector must report.

Why a fresh process: a triggerer runs triggers in a process of its own, with a secrets masker holding
only the secrets it met, not the thousands of tokens a long test session registers. Why these
numbers: every request to the emulator takes :data:`LATENCY_MS` (its ``latency_ms`` fault), so a
blocking request on the loop holds it for longer than the threshold, while the CPU work of a
callback stays far below it even when other processes share the CPUs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
import urllib.request
from typing import Any

from airflow.sdk._shared.module_loading import import_string
from airflow.sdk.exceptions import TaskDeferred

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.sensors.voicetrack import VoiceMessageStatusSensor

#: A callback holding the loop longer than this is reported (asyncio's ``slow_callback_duration``).
THRESHOLD_S = 1.0
#: What every emulator request costs during the measured run: 1.5 times the threshold.
LATENCY_MS = 1500
START, END = "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"


def deferred_trigger() -> Any:
    """The trigger the deferrable sensor hands to the triggerer, rebuilt from its serialization."""
    sensor = VoiceMessageStatusSensor(
        task_id="wait", deferrable=True, date_start=START, date_end=END, poke_interval=0.2
    )
    try:
        sensor.execute({})  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        return import_string(classpath)(**kwargs)
    raise AssertionError("the deferrable sensor did not defer")


class Warnings(logging.Handler):
    """Collects asyncio's warnings (debug mode logs a slow callback as a warning)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def take(self) -> list[str]:
        taken, self.messages = self.messages, []
        return taken


def in_debug_loop(coro_fn: Any) -> Any:
    async def main() -> Any:
        asyncio.get_running_loop().slow_callback_duration = THRESHOLD_S
        return await asyncio.wait_for(coro_fn(), timeout=120)

    return asyncio.run(main(), debug=True)


async def first_event() -> dict[str, Any]:
    return (await anext(deferred_trigger().run())).payload


def main(url: str, tick: float) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_VOICETRACK_DEFAULT"])
    # Warm-up, unmeasured: a triggerer that has run this trigger before has loaded these modules.
    asyncio.run(first_event())
    emulator = EmulatorProcess()  # not started: its admin calls need only the running one's URL
    emulator.url = url
    emulator.reset()
    emulator.freeze_clock(tick=tick)
    emulator.set_faults(latency_ms=LATENCY_MS)

    warnings = Warnings()
    logging.getLogger("asyncio").addHandler(warnings)
    event = in_debug_loop(first_event)
    slow = warnings.take()

    async def blocking_request() -> None:
        # What the detector is for: a synchronous request inside a coroutine.
        basic = base64.b64encode(f"{conn['login']}:{conn['password']}".encode()).decode()
        request = urllib.request.Request(
            conn["extra"]["auth_url"],
            data=b"grant_type=client_credentials",
            headers={"Authorization": f"Basic {basic}"},
        )
        urllib.request.urlopen(request, timeout=60).close()

    in_debug_loop(blocking_request)
    control = warnings.take()
    print(json.dumps({"event": event, "slow": slow, "control": control}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
