"""What the dlt variants (F and G) share: the pipeline and the figures of its run.

They run in a virtualenv of their own (``dlt`` without Airflow), so this module imports only
``dlt`` and the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dlt


def make_pipeline(name: str, out: Path) -> Any:
    """
    Return a pipeline writing uncompressed JSON Lines under ``out`` (dlt's filesystem destination).

    Its working directory (``pipelines_dir``) lies under ``out`` too, so a run starts clean.

    :param name: The pipeline name.
    :param out: The folder of this variant's output.
    """
    # Uncompressed, so that the runner reads the files as they are and the figures compare with ours.
    os.environ["DATA_WRITER__DISABLE_COMPRESSION"] = "true"
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(out / "_pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=(out / "data").as_uri()),
        dataset_name="voicetrack",
        progress="log" if os.environ.get("BENCH_DLT_PROGRESS") else None,
    )


def dlt_rows_and_timings(pipeline: Any, info: Any) -> tuple[int, dict[str, Any]]:
    """
    Return the rows the pipeline loaded into ``voice_messages`` and the step timings dlt recorded.

    :param pipeline: The pipeline after ``run``.
    :param info: What ``pipeline.run`` returned (checked for failed jobs).
    """
    info.raise_on_failed_jobs()
    trace = pipeline.last_trace
    steps = {step.step: (step.finished_at - step.started_at).total_seconds() for step in trace.steps}
    rows = trace.last_normalize_info.row_counts.get("voice_messages", 0)
    return rows, {
        "extract_s": steps.get("extract"),
        "normalize_s": steps.get("normalize"),
        "load_s": steps.get("load"),
    }
