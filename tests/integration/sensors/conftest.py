"""Fixtures for the sensor and trigger against the emulator, with statuses progressing in real time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from airflow.models.dagrun import DagRun
from airflow.sdk import DAG

from airflow_voicetrack.emulator.process import EmulatorProcess

#: Messages of the progressing emulator, over its default week 2026-11-01..2026-11-08.
PROGRESSING_MESSAGES = 300
#: Seconds after a reset by which every message of the progressing emulator is final.
SETTLE_SECONDS = 4.0


@pytest.fixture(scope="module")
def progressing_emulator_process() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=PROGRESSING_MESSAGES, settle_seconds=SETTLE_SECONDS) as emu:
        yield emu


@pytest.fixture
def progressing(
    progressing_emulator_process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> EmulatorProcess:
    """The progressing emulator as ``voicetrack_default``, its clock restarted: every message moves again."""
    progressing_emulator_process.reset()
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", progressing_emulator_process.connection_json())
    return progressing_emulator_process


@pytest.fixture
def run_dag() -> Callable[[DAG], DagRun]:
    """Run a DAG defined in a test with ``dag.test()``, after writing it to the metadata DB.

    Airflow 3.3's ``dag.test()`` only runs DAGs that are serialized in the DB; a DAG built inside a
    test is in no bundle, so it is written the way the DAG processor would.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    def run(dag: DAG) -> DagRun:
        DagBundlesManager().sync_bundles_to_db()
        with create_session() as session:
            update_dag_parsing_results_in_db(
                "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
            )
        return dag.test()

    return run
