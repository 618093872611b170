"""Variant O: ``VoiceTrackingOperator`` run by ``dag.test()``, writing JSON Lines to the local disk.

What a user's task does, end to end in one process: Airflow's imports, a DAG with the operator,
``dag.test()`` (task start, template rendering, the extraction, XCom, the asset event). The
extraction figure is the operator's own summary ``seconds``; the rest of the process's life is
start-up (see :mod:`benchmarks.peers`). The Airflow home must be migrated before (the runner does).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common import initialize_airflow, run_variant, set_voicetrack_connection, variant_parser

CONN_ID = "voicetrack_bench"


def extract(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Run the operator into ``{out_dir}/o.jsonl``; return the records and the task's summary."""
    from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
    from tests.support.dags import run_dag

    set_voicetrack_connection(CONN_ID, args)
    out = Path(args.out_dir).resolve() / "o.jsonl"
    out.unlink(missing_ok=True)

    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract",
            voicetrack_conn_id=CONN_ID,
            date_start=args.date_start,
            date_end=args.date_end,
            output_path=out.as_uri(),
            output_format="jsonl",
            page_size=args.page_size,
            max_concurrency=args.concurrency,
        )

    run = run_dag(build, dag_id="bench_voicetrack_operator")
    if run.states.get("extract") != "success":
        raise RuntimeError(f"the task did not succeed: {run.states} {run.error_messages}")
    summary = run.results["extract"]
    return int(summary["records"]), {
        "summary": summary,
        "extraction_s": summary["seconds"],
        "page_size": args.page_size,
        "output": str(out),  # the runners read it back to check the ids
    }


if __name__ == "__main__":
    run_variant(__doc__ or "", extract, variant_parser(__doc__ or ""), setup=initialize_airflow)
