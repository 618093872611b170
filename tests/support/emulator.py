"""Constants and helpers about the API emulator (``EmulatorProcess``)."""

from __future__ import annotations

from typing import Any

from airflow_voicetrack.emulator.process import EmulatorProcess

#: The emulator's default creation-time range: every message of a data set lies in it.
START, END = "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"
#: Connection extras that keep retry waits short, so fault tests spend their time on requests.
FAST_RETRIES: dict[str, Any] = {
    "max_retry_wait": 0.05,
    "max_retries": 8,
    "connect_timeout": 2,
    "read_timeout": 10,
}
#: :data:`FAST_RETRIES` with 100-message pages (the reliability suite's connection: more pages per search).
FAST_RETRIES_100_PER_PAGE: dict[str, Any] = {**FAST_RETRIES, "page_size": 100}
#: :data:`FAST_RETRIES` with retry waits long enough for a whole ``Retry-After`` of one second.
HONOUR_RETRY_AFTER: dict[str, Any] = {**FAST_RETRIES, "max_retry_wait": 5}


def truth_ids(emu: EmulatorProcess, **kwargs: Any) -> set[str]:
    """:return: ids of every message the emulator says matches the search (default range: all the data)."""
    kwargs.setdefault("date_start", START)
    kwargs.setdefault("date_end", END)
    return {m["messageId"] for m in emu.truth(**kwargs)}


def api_requests(emu: EmulatorProcess) -> int:
    """:return: requests the emulator served (token requests included), admin calls excluded."""
    return int(emu.stats()["total"])


def faults_fired(emu: EmulatorProcess) -> dict[str, int]:
    """:return: how often each fault fired since the last stats reset (``drop``, ``unauthorized``,
    ``rate_limit``, ``error_burst``, ``insert_during_paging``, ...): proof that a fault test's fault
    happened, not only that the result came out right."""
    return dict(emu.stats()["faults_fired"])
