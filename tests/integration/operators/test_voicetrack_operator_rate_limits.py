"""The operator under a rate limit and token revocations (dag.test(): Airflow 3.3 only, so not in the
hooks folder that `make test-compat` runs on 3.2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.dags import Run
from support.emulator import truth_ids

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

DAY = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")


def test_the_operator_rides_out_a_rate_limit_and_revocations_and_reports_the_limits(
    patient: EmulatorProcess, run_dag: Callable[..., Run], tmp_path: Path
) -> None:
    patient.set_faults(rate_limit=10, revoke_every=20, token_lifetime=2)

    def build() -> None:
        VoiceTrackingOperator(
            task_id="extract",
            date_start=DAY[0],
            date_end=DAY[1],
            output_path=f"file://{tmp_path}/day.jsonl",
            page_size=100,
            max_concurrency=8,
        )

    run = run_dag(build)
    assert run.states == {"extract": "success"}
    summary = run.results["extract"]
    assert summary["records"] == len(truth_ids(patient, date_start=DAY[0], date_end=DAY[1]))
    limits = summary["limits"]
    assert limits["responses_429"] == len(patient.refused_at()) >= 1
    assert limits["paused_seconds"] >= 0.9
    assert limits["retries"] >= limits["responses_429"]
    assert 0 < limits["concurrency_min"] <= limits["concurrency_mean"] <= limits["concurrency_max"] <= 8
