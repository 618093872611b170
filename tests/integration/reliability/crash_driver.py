"""
Run one extraction through ``dag.test()`` in its own process, so a test can ``kill -9`` it.

Usage: ``python crash_driver.py DAG_ID OUTPUT_PATH DATE_START DATE_END``. The connection comes from
``AIRFLOW_CONN_VOICETRACK_DEFAULT`` and ``AIRFLOW_HOME`` from the test's environment; the exit status
is 0 when the task succeeded.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: put ``tests/`` on the path for the shared ``support`` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from airflow.sdk import DAG
from support.dags import LOGICAL_DATE, START_DATE, serialize_dag

from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator


def main(dag_id: str, output_path: str, date_start: str, date_end: str) -> int:
    """Run the extraction; return 0 when it succeeded."""
    with DAG(dag_id, schedule=None, start_date=START_DATE, catchup=False) as dag:
        VoiceTrackingOperator(
            task_id="extract", date_start=date_start, date_end=date_end, output_path=output_path, retries=0
        )
    serialize_dag(dag)
    run = dag.test(logical_date=LOGICAL_DATE)
    return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
