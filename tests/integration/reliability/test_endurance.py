"""
Endurance: an extraction of 1,000,000 messages through the operator (``dag.test()``, local JSON-lines
file) while about 5% of API calls fail (429 without Retry-After, 5xx, dropped connections) completes
with exactly the emulator's truth.

Marked ``slow``: run it with ``pytest -m slow tests/integration/reliability/test_endurance.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pendulum
import pytest
from support.dags import Run
from support.emulator import END, START

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator
from airflow_voicetrack.output import default_file_name
from airflow_voicetrack.protocol import format_datetime, parse_datetime

MESSAGES = 1_000_000
FILE_NAME = default_file_name(parse_datetime(START, "start"), parse_datetime(END, "end"), "jsonl")
#: About 5% of API calls fail: 2% 429, 2% 5xx (every 50th call), 1% dropped connections.
FAULTS = {
    "rate_limit_rate": 0.02,
    "retry_after_mode": "none",
    "error_burst": 1,
    "error_every": 50,
    "drop_rate": 0.01,
}


@pytest.fixture(scope="module")
def million() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=MESSAGES, seed=31, startup_timeout=180) as emu:
        yield emu


def digests(documents: Iterable[dict]) -> list[bytes]:
    """One SHA-256 per document (canonical JSON), sorted: equal lists mean equal multisets."""
    return sorted(hashlib.sha256(json.dumps(d, sort_keys=True).encode()).digest() for d in documents)


def truth_digests(emu: EmulatorProcess) -> list[bytes]:
    """The truth, fetched a day at a time to bound memory."""
    result: list[bytes] = []
    day = pendulum.parse(START)
    while day < pendulum.parse(END):
        result += digests(emu.truth(format_datetime(day), format_datetime(day.add(days=1))))
        day = day.add(days=1)
    return sorted(result)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_million_messages_under_faults_arrive_exactly(
    million: EmulatorProcess,
    run_dag: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    million.reset()
    monkeypatch.setenv(
        "AIRFLOW_CONN_VOICETRACK_DEFAULT",
        million.connection_json(max_retry_wait=0.05, max_retries=8, page_size=2000, read_timeout=60),
    )
    million.set_faults(**FAULTS)
    began = time.monotonic()
    run = run_dag(
        lambda: VoiceTrackingOperator(
            task_id="extract", date_start=START, date_end=END, output_path=f"file://{tmp_path}/"
        )
    )
    seconds = time.monotonic() - began
    assert run.states == {"extract": "success"}, run.errors
    stats = million.stats()
    summary = run.results["extract"]
    print(f"endurance: {summary['records']} records, {summary['pages']} pages in {seconds:.0f} s; {stats}")
    # The faults fired: more requests than pages and tokens.
    assert stats["total"] > summary["pages"] + stats["tokens_issued"]
    million.clear_faults()
    with (tmp_path / FILE_NAME).open("rb") as written:
        got = digests(json.loads(line) for line in written)
    assert len(got) == summary["records"] == MESSAGES
    assert got == truth_digests(million)
