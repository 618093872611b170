"""
Daily extraction of every voice message to object storage, one object per data interval.

The schedule is ``CronDataIntervalTimetable``: the run for 2026-11-02 has the data interval
``[2026-11-02T00:00Z, 2026-11-03T00:00Z)`` and runs right after it ends. (Airflow 3's default for
``"@daily"``, ``CronTriggerTimetable``, gives zero-width intervals, which the operator refuses.)

Each run writes ``<base>/voicetrack/daily/voicetrack_<start>_<end>.jsonl``; a rerun replaces the
object of its interval. The name comes from the interval itself. To put a date in a path yourself,
use the interval's own, ``{{ data_interval_start | ds }}``, not ``{{ ds }}``: that is the run's logical
date, which for a run started by hand (``airflow dags test example_voicetrack_extract 2026-11-03``)
is the moment given, the day after the one extracted.

The extraction keeps the operator's default ``wait_for_terminal=True``: a run starts right after
midnight, when the day's last calls are still queued, ringing or in progress, and nothing would ever
rewrite the day's object, so every count by status downstream would stay wrong. It first counts
those calls (one request); on a past day there are none and it extracts at once. Otherwise it waits,
deferred to the triggerer so that it holds no worker slot, checking every minute for up to an hour,
and writes the day once every call has its final status.

The base comes from the ``VOICETRACK_OUTPUT_BASE`` environment variable, default ``.demo-output/``
in this repository; set it to ``s3://my-bucket/some/prefix`` (and ``VOICETRACK_OUTPUT_CONN_ID`` to
an AWS connection id) to write to S3 instead.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

OUTPUT_BASE = os.environ.get(
    "VOICETRACK_OUTPUT_BASE", (Path(__file__).resolve().parent.parent / ".demo-output").as_uri()
).rstrip("/")
OUTPUT_CONN_ID = os.environ.get("VOICETRACK_OUTPUT_CONN_ID") or None

with DAG(
    dag_id="example_voicetrack_extract",
    description="Daily extraction of voice messages to object storage",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["voicetrack", "example"],
    doc_md=__doc__,
):
    VoiceTrackingOperator(
        task_id="extract_voice_messages",
        # date_start / date_end default to the run's data interval.
        output_path=f"{OUTPUT_BASE}/voicetrack/daily/",
        output_conn_id=OUTPUT_CONN_ID,
        output_format="jsonl",
        # wait_for_terminal=True (the default): see the module docstring.
        deferrable=True,
    )
