"""Fixtures for the reliability suite: an emulator with fast retries and 100-message pages.

``run_dag`` and ``s3`` come from ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.emulator import FAST_RETRIES_100_PER_PAGE

from airflow_voicetrack.emulator.process import EmulatorProcess

#: Messages of the fault-matrix emulator: small enough for ~100 runs, large enough to page.
MATRIX_MESSAGES = 3000
MATRIX_SEED = 8


@pytest.fixture(scope="session")
def matrix_emulator() -> Iterator[EmulatorProcess]:
    """One emulator for the reliability suite: 3,000 messages over 2026-11-01..2026-11-08, all final."""
    with EmulatorProcess(messages=MATRIX_MESSAGES, seed=MATRIX_SEED) as emu:
        yield emu


@pytest.fixture
def emu(matrix_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The suite's emulator, reset (no faults, zero counters), as ``voicetrack_default`` with fast retries."""
    matrix_emulator.reset()
    monkeypatch.setenv(
        "AIRFLOW_CONN_VOICETRACK_DEFAULT", matrix_emulator.connection_json(**FAST_RETRIES_100_PER_PAGE)
    )
    return matrix_emulator
