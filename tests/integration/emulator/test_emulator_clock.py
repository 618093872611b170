"""The emulator's clock under the tests' control: ``GET``/``POST /_emulator/clock``."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from airflow_voicetrack.constants import FINAL_STATUSES, INTERMEDIATE_STATUSES
from airflow_voicetrack.emulator.process import EmulatorProcess


def test_a_frozen_clock_stands_still_and_steps_by_what_it_is_told(emu: EmulatorProcess) -> None:
    frozen = emu.freeze_clock()
    assert abs(frozen - time.time()) < 60
    time.sleep(0.05)
    assert emu.clock() == {"now": frozen, "frozen": True, "tick": 0.0}
    assert emu.advance_clock(90) == frozen + 90
    assert emu.advance_clock(0.5) == frozen + 90.5
    emu.resume_clock()
    running = emu.clock()
    assert running["frozen"] is False
    assert running["now"] >= frozen + 90.5


def test_a_running_clock_can_be_stepped_too(emu: EmulatorProcess) -> None:
    before = emu.clock()["now"]
    after = emu.advance_clock(3600)
    assert after >= before + 3600
    assert emu.clock()["frozen"] is False


def test_a_ticking_clock_steps_after_each_api_request(emu: EmulatorProcess, api: Any) -> None:
    frozen = emu.freeze_clock(tick=30)
    assert emu.clock()["now"] == frozen  # admin requests do not tick
    api.search()
    api.get("/voice/tracking/no-such-message")
    api.get("/voice/tracking/campaign/no-such-campaign")
    assert emu.clock() == {"now": frozen + 90, "frozen": True, "tick": 30.0}


def test_reset_puts_the_clock_back_on_the_wall_clock(emu: EmulatorProcess) -> None:
    emu.freeze_clock()
    emu.advance_clock(86_400)
    emu.reset()
    state = emu.clock()
    assert state["frozen"] is False and state["tick"] == 0
    assert abs(state["now"] - time.time()) < 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"advance": -1}, "advance"),
        ({"advance": "10"}, "advance"),
        ({"advance": True}, "advance"),
        ({"freeze": "yes"}, "freeze"),
        ({"resume": 1}, "resume"),
        ({"rewind": 5}, "rewind"),
        ({"tick": -2}, "tick"),
        ([], "body"),
    ],
)
def test_bad_clock_requests_get_a_400_naming_the_field(emu: EmulatorProcess, body: Any, field: str) -> None:
    before = emu.clock()
    response = httpx.post(emu.url + "/_emulator/clock", json=body)
    assert response.status_code == 400
    assert field in response.json()["properties"]
    assert emu.clock()["frozen"] is before["frozen"] is False


def test_statuses_follow_the_stepped_clock() -> None:
    with EmulatorProcess(messages=200, settle_seconds=120) as emu:
        emu.reset()
        emu.freeze_clock()
        first = {m["messageId"]: m["status"]["status"] for m in emu.truth()}
        assert set(first.values()) & INTERMEDIATE_STATUSES
        time.sleep(0.3)  # wall time passing changes nothing while the clock is frozen
        assert {m["messageId"]: m["status"]["status"] for m in emu.truth()} == first
        emu.advance_clock(120)
        assert {m["status"]["status"] for m in emu.truth()} <= FINAL_STATUSES | {"Unknown"}
