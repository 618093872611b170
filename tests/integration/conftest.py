"""Fixtures shared by the integration suites: a ``dag.test()`` runner, a real S3 server and bucket,
and an emulator whose statuses progress in real time.

The plain helpers behind them are in the ``support`` package (``tests/support``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.dags import Run
from support.dags import run_dag as run_dag_once
from support.emulator import HONOUR_RETRY_AFTER
from support.s3 import S3_CONN_ID, S3Bucket, moto_s3_server, s3_client, s3_connection_json

from airflow_voicetrack.emulator.process import EmulatorProcess


@pytest.fixture
def run_dag(request: pytest.FixtureRequest) -> Callable[..., Run]:
    """
    Run a DAG with ``dag.test()`` (see :func:`support.dags.run_dag`): ``run_dag(build, **dag_kwargs)``
    builds a DAG named after the test's folder and name, ``run_dag(dag)`` runs a DAG the test built.
    """
    test_name = re.sub(r"\W+", "_", request.node.name)
    dag_id = f"{request.node.path.parent.name}_{test_name}"[:200]

    def run(dag_or_build: Any, **kwargs: Any) -> Run:
        return run_dag_once(dag_or_build, dag_id=dag_id, **kwargs)

    return run


@pytest.fixture
def patient(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The emulator (reset) as ``voicetrack_default``; its retry waits honour a 1 s ``Retry-After``."""
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", emulator.connection_json(**HONOUR_RETRY_AFTER))
    return emulator


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP server in a thread), with one bucket."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """The test bucket, emptied, with the Airflow connection :data:`support.s3.S3_CONN_ID` defined."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", s3_connection_json(s3_endpoint))
    bucket = S3Bucket(s3_client(s3_endpoint))
    bucket.empty()
    return bucket


@pytest.fixture(scope="module")
def progressing_settings() -> dict[str, Any]:
    """``EmulatorProcess`` arguments of the progressing emulator: 300 messages over its default week,
    every one final 4 s after a reset. Override this fixture in a folder or module for another data set."""
    return {"messages": 300, "settle_seconds": 4.0}


@pytest.fixture(scope="module")
def progressing_emulator_process(progressing_settings: dict[str, Any]) -> Iterator[EmulatorProcess]:
    """An emulator whose message statuses progress in real time after each reset (one per module)."""
    with EmulatorProcess(**progressing_settings) as emu:
        yield emu


@pytest.fixture
def progressing(
    progressing_emulator_process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> EmulatorProcess:
    """The progressing emulator as ``voicetrack_default``, its clock restarted: every message moves again."""
    progressing_emulator_process.reset()
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", progressing_emulator_process.connection_json())
    return progressing_emulator_process
