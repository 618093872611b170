"""The emulator's clock: wall time that a test can freeze and step (``POST /_emulator/clock``).

Everything time-dependent in the emulator reads this clock: status settling, token expiry and
arrivals. A test that freezes it and steps it over a settle window sees exactly the statuses of that
moment without sleeping through the window, on a loaded machine as on an idle one.

A frozen clock can also tick: step forward a fixed amount after each API request. A task that polls
(the operator's wait, the sensor, the trigger) then sees the calls' time pass one step per check,
however long its checks take in wall time, so a 60-120 s settle window takes a few checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class EmulatorClock:
    """Epoch seconds: the wall clock plus an offset, or a frozen instant.

    :param source: the underlying wall clock.
    """

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._frozen_at: float | None = None
        #: seconds a frozen clock steps after each API request (0 = it stands still)
        self.tick_seconds = 0.0

    def __call__(self) -> float:
        """The current time, epoch seconds."""
        return self._source() + self._offset if self._frozen_at is None else self._frozen_at

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still until it is stepped or resumed."""
        return self._frozen_at is not None

    def freeze(self) -> None:
        """Stop the clock at the current instant."""
        self._frozen_at = self()

    def resume(self) -> None:
        """Let the clock run again from where it stands."""
        if self._frozen_at is not None:
            self._offset = self._frozen_at - self._source()
            self._frozen_at = None

    def advance(self, seconds: float) -> None:
        """Step the clock forward (frozen or running).

        :param seconds: how far, >= 0.
        :raises ValueError: for a negative step (the emulator's time never runs backwards).
        """
        if seconds < 0:
            raise ValueError("advance must be >= 0 seconds")
        if self._frozen_at is None:
            self._offset += seconds
        else:
            self._frozen_at += seconds

    def tick(self) -> None:
        """One API request answered: a frozen clock steps :attr:`tick_seconds` forward."""
        if self._frozen_at is not None:
            self._frozen_at += self.tick_seconds

    def restart(self) -> None:
        """Back to the plain wall clock, running, without ticks (``POST /_emulator/reset``)."""
        self._offset = 0.0
        self._frozen_at = None
        self.tick_seconds = 0.0
