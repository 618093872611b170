"""A local emulator of Routee's voice tracking API and its OAuth token endpoint.

Run it with ``python -m airflow_voicetrack.emulator --port 0`` (see ``--help``), or from Python with
:class:`~airflow_voicetrack.emulator.process.EmulatorProcess`. It serves the API and the token
endpoint on one port, with deterministic synthetic data, statuses that progress over time, optional
arrivals, injectable faults, a clock that tests freeze and step, and admin endpoints under
``/_emulator/`` for tests and benchmarks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_voicetrack.emulator.process import EmulatorProcess

__all__ = ["SERVING_PREFIX", "EmulatorProcess"]

#: The start of the one line the emulator prints once it accepts connections, before its base URL.
SERVING_PREFIX = "VoiceTrack emulator serving on "


def __getattr__(name: str) -> Any:
    # Lazy, so the server process does not pay for the helper's imports at start-up.
    if name == "EmulatorProcess":
        from airflow_voicetrack.emulator.process import EmulatorProcess

        return EmulatorProcess
    raise AttributeError(name)
