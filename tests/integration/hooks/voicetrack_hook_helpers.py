"""Helpers shared by the hook integration tests (imported by name: test folders are not packages)."""

from __future__ import annotations

from airflow_voicetrack.emulator.process import EmulatorProcess

START, END = "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"
#: Extras that keep retry waits short so fault tests stay fast.
FAST_RETRIES = {"max_retry_wait": 0.05, "max_retries": 8, "connect_timeout": 2, "read_timeout": 10}


def truth_ids(emu: EmulatorProcess, **kwargs) -> set[str]:
    """Ids of every message the emulator says matches the search (default range: the whole data set)."""
    kwargs.setdefault("date_start", START)
    kwargs.setdefault("date_end", END)
    return {m["messageId"] for m in emu.truth(**kwargs)}


def api_requests(emu: EmulatorProcess) -> int:
    """Requests the emulator served, admin calls excluded."""
    return emu.stats()["total"]
