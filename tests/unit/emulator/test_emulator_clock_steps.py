"""EmulatorClock on a fake wall clock: frozen, stepped, ticking, resumed, restarted."""

from __future__ import annotations

import pytest

from airflow_voicetrack.emulator.clock import EmulatorClock


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_running_clock_follows_the_wall_clock_plus_its_steps() -> None:
    wall = Wall()
    clock = EmulatorClock(wall)
    assert clock() == 1_000.0
    clock.advance(50)
    wall.now += 5
    assert clock() == 1_055.0
    assert not clock.frozen


def test_frozen_clock_moves_only_when_stepped_or_ticked() -> None:
    wall = Wall()
    clock = EmulatorClock(wall)
    clock.freeze()
    wall.now += 30
    assert clock() == 1_000.0
    clock.advance(7)
    assert clock() == 1_007.0
    clock.tick()  # no tick set: stands still
    assert clock() == 1_007.0
    clock.tick_seconds = 15
    clock.tick()
    clock.tick()
    assert clock() == 1_037.0


def test_resume_runs_on_from_where_the_clock_stood() -> None:
    wall = Wall()
    clock = EmulatorClock(wall)
    clock.freeze()
    clock.advance(100)
    wall.now += 30
    clock.resume()
    assert clock() == 1_100.0
    wall.now += 2
    assert clock() == 1_102.0
    clock.tick_seconds = 15
    clock.tick()  # a running clock does not tick
    assert clock() == 1_102.0


def test_restart_goes_back_to_the_wall_clock_running_without_ticks() -> None:
    wall = Wall()
    clock = EmulatorClock(wall)
    clock.freeze()
    clock.advance(3_600)
    clock.tick_seconds = 5
    clock.restart()
    assert (clock(), clock.frozen, clock.tick_seconds) == (1_000.0, False, 0.0)


def test_time_never_runs_backwards() -> None:
    with pytest.raises(ValueError, match="advance must be >= 0 seconds"):
        EmulatorClock(Wall()).advance(-1)
