"""Running DAGs defined in tests with ``dag.test()``.

Airflow 3.3's ``dag.test()`` only runs DAGs that are serialized in the metadata DB. A DAG built
inside a test is in no bundle, so :func:`serialize_dag` stores it the way the DAG processor would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pendulum
from airflow.sdk import DAG

#: The logical date of runs of DAGs built by :func:`run_dag` (with ``schedule=None`` also both
#: ends of their data interval).
LOGICAL_DATE = pendulum.datetime(2026, 11, 3, tz="UTC")
#: The ``start_date`` of DAGs built by :func:`run_dag`.
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: ``logical_date`` not given: :data:`LOGICAL_DATE` for a DAG :func:`run_dag` builds, ``dag.test()``'s
#: own default (now) for a DAG passed in.
DEFAULT: Any = _Default()


@dataclass
class Run:
    """One ``dag.test()``: its DAG run, and by task (``task_id``, or ``task_id[map_index]`` for a
    mapped task instance) the state, the XCom return value and every exception the task failed with."""

    dag_run: Any
    states: dict[str, str]
    results: dict[str, Any]
    errors: dict[str, list[BaseException]] = field(default_factory=dict)

    @property
    def state(self) -> Any:
        """The DAG run's state."""
        return self.dag_run.state

    @property
    def error_messages(self) -> dict[str, list[str]]:
        """:attr:`errors` as ``str(exception)``."""
        return {task_id: [str(error) for error in errors] for task_id, errors in self.errors.items()}


def serialize_dag(dag: DAG) -> None:
    """Store ``dag`` the way the DAG processor would, so ``dag.test()`` can create a run of it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def run_dag(
    dag_or_build: DAG | Callable[[], None],
    *,
    dag_id: str,
    logical_date: Any = DEFAULT,
    **dag_kwargs: Any,
) -> Run:
    """
    Run a DAG with ``dag.test()`` after storing it with :func:`serialize_dag`.

    :param dag_or_build: a DAG, or a function creating tasks: it is called inside a new DAG
        ``dag_id`` (``schedule=None``, ``catchup=False``, no retries unless given).
    :param dag_id: the id of a DAG built from a function (a DAG passed in keeps its own).
    :param logical_date: passed to ``dag.test()``; ``None`` is a run without a logical date. Default:
        :data:`LOGICAL_DATE` for a built DAG, the current time (``dag.test()``'s default) for a DAG passed in.
    :param dag_kwargs: more ``DAG`` arguments for a built DAG (e.g. ``schedule``).
    :return: the run; every failing task's exception is in :attr:`Run.errors` (through an
        ``on_failure_callback`` added to every task, after any the task has).
    """
    errors: dict[str, list[BaseException]] = {}

    def record_failure(context: Any) -> None:
        errors.setdefault(context["task_instance"].task_id, []).append(context["exception"])

    if isinstance(dag_or_build, DAG):
        if dag_kwargs:
            raise TypeError(f"DAG arguments {sorted(dag_kwargs)} are for a built DAG, not one passed in")
        dag = dag_or_build
        for task in dag.tasks:
            task.on_failure_callback = [*_callbacks(task.on_failure_callback), record_failure]
        test_kwargs = {} if logical_date is DEFAULT else {"logical_date": logical_date}
    else:
        dag_kwargs.setdefault("schedule", None)
        dag_kwargs.setdefault("catchup", False)
        with DAG(
            dag_id,
            start_date=START_DATE,
            default_args={"on_failure_callback": record_failure, "retries": 0},
            **dag_kwargs,
        ) as dag:
            dag_or_build()
        test_kwargs = {"logical_date": LOGICAL_DATE if logical_date is DEFAULT else logical_date}
    serialize_dag(dag)
    dag_run = dag.test(**test_kwargs)
    tis = dag_run.get_task_instances()
    return Run(
        dag_run=dag_run,
        states={_ti_key(ti): str(ti.state) for ti in tis},
        results={_ti_key(ti): ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index) for ti in tis},
        errors=errors,
    )


def _callbacks(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks]


def _ti_key(ti: Any) -> str:
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
