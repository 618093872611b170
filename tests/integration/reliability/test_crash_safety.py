"""
``kill -9`` of the task process in the middle of a large extraction: nothing at the final path; the
retry then writes the complete, exact output.

The extraction (50,000 messages, 100 ms per request) runs through ``dag.test()`` in a child process
(``crash_driver.py``); the test kills it with SIGKILL once the temporary object has data in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.emulator import END, START

from airflow_voicetrack.emulator.process import EmulatorProcess
from airflow_voicetrack.output import default_file_name
from airflow_voicetrack.protocol import parse_datetime
from airflow_voicetrack.writers import TEMP_MARKER

# Slow tier (`make test-all`): kills a writer mid-write and reruns it, about a minute.
pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("crash_driver.py")
MESSAGES = 50_000
FILE_NAME = default_file_name(parse_datetime(START, "start"), parse_datetime(END, "end"), "jsonl")


@pytest.fixture(scope="module")
def large_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(messages=MESSAGES, seed=11, startup_timeout=60) as emu:
        yield emu


def fingerprint(lines: list[bytes]) -> tuple[int, str]:
    """Count and order-independent digest of JSON documents (compared as parsed objects)."""
    digests = sorted(
        hashlib.sha256(json.dumps(json.loads(line), sort_keys=True).encode()).digest() for line in lines
    )
    return len(digests), hashlib.sha256(b"".join(digests)).hexdigest()


def driver(dag_id: str, output: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), dag_id, f"file://{output}/", START, END],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_killed_extraction_leaves_no_object_and_the_retry_writes_the_exact_output(
    large_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    emu = large_emulator
    emu.reset()
    emu.set_faults(latency_ms=100)
    env = {
        **os.environ,
        "AIRFLOW_CONN_VOICETRACK_DEFAULT": emu.connection_json(page_size=500, max_retry_wait=0.1),
    }
    output = tmp_path / "out"
    output.mkdir()

    process = driver("reliability_crash_safety", output, env)
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in output.glob(f"*{TEMP_MARKER}*")):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the extraction never started writing"
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the write: it takes ~10 s at 100 ms per page
        assert process.poll() is None, "the extraction finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert not (output / FILE_NAME).exists()
    [stray] = list(output.iterdir())  # SIGKILL leaves the temporary file, hidden by its leading "_"
    assert stray.name.startswith(f"_{FILE_NAME}{TEMP_MARKER}") and stray.stat().st_size > 0

    emu.set_faults(latency_ms=0)
    retry = driver("reliability_crash_safety", output, env)
    _, errors = retry.communicate(timeout=300)
    assert retry.returncode == 0, errors.decode(errors="replace")[-3000:]
    written = (output / FILE_NAME).read_bytes().splitlines()
    truth = [json.dumps(m).encode() for m in emu.truth(START, END)]
    assert len(truth) == MESSAGES
    assert fingerprint(written) == fingerprint(truth)
