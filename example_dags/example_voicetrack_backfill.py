"""
Backfill a long range in parallel: one mapped extraction task per window.

``plan_windows`` splits ``[date_start, date_end)`` into windows of ``window_hours`` with
``split_interval``; ``extract_window`` is mapped over them with ``.partial(...).expand_kwargs(...)``,
so with a distributed executor (Celery, Kubernetes) the windows run on many workers at once.
Each window keeps at most 2 requests in flight (``max_concurrency=2``) and so takes 2 slots of the
pool named by ``$VOICETRACK_API_POOL`` (default ``default_pool``): a pool such as ``routee_api``
with N slots caps the requests in flight across every worker at N (see the guide "Pools as an API budget",
docs/guides/pools.md). Each window writes its own
object, ``<base>/voicetrack/backfill/voicetrack_<start>_<end>.jsonl`` (see
``example_voicetrack_extract`` for the base), and ``total_records`` sums what they wrote.

Trigger it with a config for another range, e.g.
``airflow dags trigger example_voicetrack_backfill -c '{"date_start": "2026-10-01T00:00:00Z",
"date_end": "2026-11-01T00:00:00Z"}'``; the defaults cover the local emulator's week of data.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator, split_interval

OUTPUT_BASE = os.environ.get(
    "VOICETRACK_OUTPUT_BASE", (Path(__file__).resolve().parent.parent / ".demo-output").as_uri()
).rstrip("/")
OUTPUT_CONN_ID = os.environ.get("VOICETRACK_OUTPUT_CONN_ID") or None
#: The pool every call to the API takes its slots from, e.g. ``routee_api``.
API_POOL = os.environ.get("VOICETRACK_API_POOL") or "default_pool"


@task
def plan_windows(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """
    Split the run's range into windows: ``[{"date_start": ..., "date_end": ...}, ...]``.

    :param params: the run's params (Airflow passes them): ``date_start``, ``date_end``, ``window_hours``.
    """
    assert params is not None
    return split_interval(params["date_start"], params["date_end"], timedelta(hours=params["window_hours"]))


@task
def total_records(summaries: list[dict[str, Any]]) -> int:
    """
    Sum the records every window wrote.

    :param summaries: the summaries of the mapped extraction tasks.
    """
    return sum(summary["records"] for summary in summaries)


with DAG(
    dag_id="example_voicetrack_backfill",
    description="Backfill a long range with one mapped extraction task per window",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    params={
        "date_start": Param("2026-11-01T00:00:00Z", type="string", description="Range start (inclusive)"),
        "date_end": Param("2026-11-08T00:00:00Z", type="string", description="Range end (exclusive)"),
        "window_hours": Param(24, type="integer", minimum=1, description="Window length in hours"),
    },
    tags=["voicetrack", "example"],
    doc_md=__doc__,
):
    extract_window = VoiceTrackingOperator.partial(
        task_id="extract_window",
        output_path=f"{OUTPUT_BASE}/voicetrack/backfill/",
        output_conn_id=OUTPUT_CONN_ID,
        max_active_tis_per_dagrun=4,
        max_concurrency=2,
        pool=API_POOL,
    ).expand_kwargs(plan_windows())
    total_records(extract_window.output)  # type: ignore[arg-type]  # the summaries, at run time
