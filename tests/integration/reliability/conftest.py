"""Fixtures for the reliability suite: an emulator with fast retries, a real S3 server, a DAG runner."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pendulum
import pytest
from airflow.sdk import DAG
from reliability_helpers import FAST_RETRIES

from airflow_voicetrack.emulator.process import EmulatorProcess

#: Messages of the fault-matrix emulator: small enough for ~100 runs, large enough to page.
MATRIX_MESSAGES = 3000
MATRIX_SEED = 8
S3_CONN_ID = "voicetrack_reliability_s3"
S3_BUCKET = "voicetrack-reliability"


@pytest.fixture(scope="session")
def matrix_emulator() -> Iterator[EmulatorProcess]:
    """One emulator for the reliability suite: 3,000 messages over 2026-11-01..2026-11-08, all final."""
    with EmulatorProcess(messages=MATRIX_MESSAGES, seed=MATRIX_SEED) as emu:
        yield emu


@pytest.fixture
def emu(matrix_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The suite's emulator, reset (no faults, zero counters), as ``voicetrack_default`` with fast retries."""
    matrix_emulator.reset()
    monkeypatch.setenv("AIRFLOW_CONN_VOICETRACK_DEFAULT", matrix_emulator.connection_json(**FAST_RETRIES))
    return matrix_emulator


@dataclass
class Run:
    """One ``dag.test()``: task states, XCom return values and the exceptions tasks failed with."""

    dag_run: Any
    states: dict[str, str]
    results: dict[str, Any]
    errors: dict[str, list[BaseException]] = field(default_factory=dict)


def serialize_dag(dag: DAG) -> None:
    """Store ``dag`` the way the DAG processor would: Airflow 3.3's ``dag.test()`` runs stored DAGs only."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


@pytest.fixture
def run_dag(request: pytest.FixtureRequest) -> Callable[..., Run]:
    """
    Build a DAG named after the test (``build()`` creates its tasks) and run it with ``dag.test()``.

    Tasks get no retries; every failure's exception is kept in ``Run.errors``.
    """
    dag_id = "reliability_" + re.sub(r"\W+", "_", request.node.name)[:180]

    def run(build: Callable[[], None], **dag_kwargs: Any) -> Run:
        errors: dict[str, list[BaseException]] = {}

        def record_failure(context: Any) -> None:
            errors.setdefault(context["task_instance"].task_id, []).append(context["exception"])

        dag_kwargs.setdefault("schedule", None)
        with DAG(
            dag_id,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            catchup=False,
            default_args={"on_failure_callback": record_failure, "retries": 0},
            **dag_kwargs,
        ) as dag:
            build()
        serialize_dag(dag)
        dag_run = dag.test(logical_date=pendulum.datetime(2026, 11, 3, tz="UTC"))
        tis = dag_run.get_task_instances()
        return Run(
            dag_run=dag_run,
            states={ti.task_id: str(ti.state) for ti in tis},
            results={ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in tis},
            errors=errors,
        )

    return run


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the test server."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP server in a thread), with one bucket."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3_client(endpoint).create_bucket(Bucket=S3_BUCKET)
        yield endpoint
    finally:
        server.stop()


@dataclass
class S3Bucket:
    """The emptied test bucket, a boto3 client of it, and the Airflow connection id that reaches it."""

    client: Any
    name: str = S3_BUCKET
    conn_id: str = S3_CONN_ID

    def object_keys(self) -> list[str]:
        """:return: every key in the bucket, sorted."""
        listing = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return sorted(item["Key"] for item in listing)

    def read(self, key: str) -> bytes:
        """:return: the object's bytes."""
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """The test bucket, emptied, with the Airflow connection :data:`S3_CONN_ID` defined."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{S3_CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    bucket = S3Bucket(s3_client(s3_endpoint))
    for key in bucket.object_keys():
        bucket.client.delete_object(Bucket=bucket.name, Key=key)
    return bucket
