"""Fixtures for running the operator through ``dag.test()``: a DAG runner and a real S3 server."""

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

S3_CONN_ID = "voicetrack_test_s3"
S3_BUCKET = "voicetrack-test"
#: The logical date of test runs (with ``schedule=None`` also both ends of their data interval).
LOGICAL_DATE = pendulum.datetime(2026, 11, 3, tz="UTC")


@dataclass
class Run:
    """The outcome of one ``dag.test()``: task states, return values and failure messages by task id."""

    dag_run: Any
    states: dict[str, str]
    results: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)


def _serialize(dag: DAG) -> None:
    """Store the DAG the way the DAG processor would, so ``dag.test()`` can create a run of it."""
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
    Build a DAG named after the test with ``build(dag)`` and run it with ``dag.test()``.

    Every task's failure message is recorded (through ``on_failure_callback``) in ``Run.errors``.
    """
    dag_id = re.sub(r"\W+", "_", request.node.name)[:200]

    def run(
        build: Callable[[], None],
        *,
        logical_date: Any = LOGICAL_DATE,
        **dag_kwargs: Any,
    ) -> Run:
        errors: dict[str, list[str]] = {}

        def record_failure(context: Any) -> None:
            errors.setdefault(context["task_instance"].task_id, []).append(str(context["exception"]))

        dag_kwargs.setdefault("schedule", None)
        with DAG(
            dag_id,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            catchup=False,
            default_args={"on_failure_callback": record_failure},
            **dag_kwargs,
        ) as dag:
            build()
        _serialize(dag)
        dag_run = dag.test(logical_date=logical_date)
        tis = dag_run.get_task_instances()
        states = {_ti_key(ti): str(ti.state) for ti in tis}
        results = {_ti_key(ti): ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index) for ti in tis}
        return Run(dag_run=dag_run, states=states, results=results, errors=errors)

    return run


def _ti_key(ti: Any) -> str:
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP server in a thread), with one empty bucket."""
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


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@dataclass
class S3Target:
    """An emptied bucket on the test S3 server, a boto3 client of it and an Airflow connection to it."""

    client: Any
    bucket: str = S3_BUCKET
    conn_id: str = S3_CONN_ID

    def object_keys(self) -> list[str]:
        return [item["Key"] for item in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])]


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Target:
    """The test bucket, emptied, with the Airflow connection ``S3_CONN_ID`` defined."""
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
    target = S3Target(s3_client(s3_endpoint))
    for key in target.object_keys():
        target.client.delete_object(Bucket=target.bucket, Key=key)
    return target
