"""Fixtures for running the example DAGs, as the DAG processor loads them, with ``dag.test()``.

``progressing`` comes from ``tests/integration/conftest.py``; this folder sizes its data set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

EXAMPLE_DAGS = Path(__file__).resolve().parents[3] / "example_dags"
#: Seconds after a reset by which every call of the progressing emulator has finished.
SETTLE_SECONDS = 10.0


@pytest.fixture
def output_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private output folder for the example DAGs (their ``VOICETRACK_OUTPUT_BASE``)."""
    monkeypatch.setenv("VOICETRACK_OUTPUT_BASE", tmp_path.as_uri())
    return tmp_path


@pytest.fixture
def load_example_dag(output_base: Path) -> Callable[[str], DAG]:
    """Parse ``example_dags/`` (after :func:`output_base` is set) and return the DAG with this id."""
    from airflow.dag_processing.dagbag import DagBag

    def load(dag_id: str) -> DAG:
        dagbag = DagBag(dag_folder=EXAMPLE_DAGS)
        assert not dagbag.import_errors
        return dagbag.get_dag(dag_id)

    return load


@pytest.fixture(scope="module")
def progressing_settings() -> dict[str, Any]:
    """The progressing emulator (``tests/integration/conftest.py``) with the default data set
    (10,000 messages), calls finishing over ``SETTLE_SECONDS``."""
    return {"messages": 10_000, "seed": 1, "settle_seconds": SETTLE_SECONDS}
