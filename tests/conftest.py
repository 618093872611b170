"""Shared test set-up: a private Airflow home with a migrated SQLite DB, and the API emulator.

The environment is set at import time, before anything imports Airflow, so every test (and every
Airflow subprocess a test starts) uses the same throw-away home inside the repo (ignored by git).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow" / "test-home")))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "example_dags"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

from airflow_voicetrack.emulator.process import EmulatorProcess  # noqa: E402


def _migrate_once() -> None:
    """`airflow db migrate` once per Airflow version; later sessions reuse the DB."""
    marker = AIRFLOW_HOME / f".migrated-{version('apache-airflow-core')}"
    if marker.exists():
        return
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    marker.touch()


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Path:
    _migrate_once()
    return AIRFLOW_HOME


@pytest.fixture(autouse=True)
def fresh_limiters() -> None:
    """Each test starts as a new process would: no connection's limiter has learnt anything yet."""
    from airflow_voicetrack.protocol.limits import Limiter

    Limiter._registry.clear()


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[EmulatorProcess]:
    """One emulator process for the session: 10,000 messages over 2026-11-01..2026-11-08."""
    with EmulatorProcess(messages=10_000, seed=1) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The session emulator with faults off and counters at zero, as ``voicetrack_default``."""
    emulator_session.reset()
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emulator_session.connection_json())
    return emulator_session
