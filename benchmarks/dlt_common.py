"""What the dlt variants (F and G) share: the pipeline and the read-back of what they wrote.

They run in a virtualenv of their own (``dlt`` without Airflow), so this module imports only
``dlt`` and the standard library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dlt

from benchmarks.common import IDS_FILE


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


def dlt_ids_and_timings(pipeline: Any, info: Any, out: Path) -> tuple[int, dict[str, Any]]:
    """
    Read back the message ids the pipeline wrote, list them in ``out/ids.txt``, and return the
    number of rows with the step timings that dlt recorded.

    :param pipeline: The pipeline after ``run``.
    :param info: What ``pipeline.run`` returned (checked for failed jobs).
    :param out: The variant's output folder.
    """
    info.raise_on_failed_jobs()
    files = sorted((out / "data").rglob("voice_messages/*.jsonl"))
    ids: list[str] = []
    sample: dict[str, Any] = {}
    for path in files:
        with path.open("rb") as handle:
            for line in handle:
                row = json.loads(line)
                ids.append(row["message_id"])
                sample = sample or row
    (out / IDS_FILE).write_text("\n".join(ids) + "\n")
    trace = pipeline.last_trace
    steps = {step.step: (step.finished_at - step.started_at).total_seconds() for step in trace.steps}
    return len(ids), {
        "files": len(files),
        "bytes": sum(path.stat().st_size for path in files),
        "extract_s": steps.get("extract"),
        "normalize_s": steps.get("normalize"),
        "load_s": steps.get("load"),
        "sample_keys": sorted(sample),
    }
