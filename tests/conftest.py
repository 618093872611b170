"""Shared test set-up: a private Airflow home with a migrated SQLite DB, and the API emulator.

The environment is set at import time, before anything imports Airflow, so every test (and every
Airflow subprocess a test starts) uses the same throw-away home inside the repo (ignored by git).
Under pytest-xdist (``-n 2``) each worker gets a home of its own, ``<home>-gw0``, ``<home>-gw1``, ...:
SQLite takes one writer at a time, and two ``dag.test()`` runs in one DB would block each other.
The DB is migrated once, in ``<home>`` under a file lock, and copied into each worker's home.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The migrated template; under xdist each worker copies its DB into a home of its own.
BASE_HOME = Path(os.environ.get("AIRFLOW_HOME") or REPO / ".airflow" / "test-home")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
AIRFLOW_HOME = BASE_HOME.with_name(f"{BASE_HOME.name}-{WORKER}") if WORKER else BASE_HOME
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "example_dags"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

from airflow_voicetrack.emulator.process import EmulatorProcess  # noqa: E402


def _migrate_once() -> None:
    """`airflow db migrate` once per Airflow version; later sessions reuse the DB.

    Workers wait on a lock for the one migration of :data:`BASE_HOME`, then copy its DB.
    """
    marker_name = f".migrated-{version('apache-airflow-core')}"
    if (AIRFLOW_HOME / marker_name).exists():
        return
    BASE_HOME.mkdir(parents=True, exist_ok=True)
    with open(BASE_HOME / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (BASE_HOME / marker_name).exists():
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                check=True,
                env={**os.environ, "AIRFLOW_HOME": str(BASE_HOME)},
                stdout=subprocess.DEVNULL,
                timeout=300,
            )
            (BASE_HOME / marker_name).touch()
    if AIRFLOW_HOME != BASE_HOME:
        AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BASE_HOME / "airflow.db", AIRFLOW_HOME / "airflow.db")
        (AIRFLOW_HOME / marker_name).touch()


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
