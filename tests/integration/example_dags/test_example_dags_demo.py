"""``make demo`` (``python -m example_dags.demo``) runs end to end and reports the right count."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_voicetrack.emulator.process import EmulatorProcess

# Slow tier (`make test-all`): `make demo` end to end in a subprocess, about 2 min.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def test_demo_prints_the_output_path_and_the_emulators_record_count(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    # The session emulator serves the same default data set as the demo's own emulator.
    expected = len(
        emulator.truth(
            date_start=datetime(2026, 11, 2, tzinfo=timezone.utc),
            date_end=datetime(2026, 11, 3, tzinfo=timezone.utc),
        )
    )

    result = subprocess.run(
        [sys.executable, "-m", "example_dags.demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        # A home per test worker (migrated once, kept) and a private output folder: parallel
        # workers, and a `make demo` running meanwhile, do not share them.
        env={
            **os.environ,
            "VOICETRACK_DEMO_HOME": str(
                REPO / ".airflow" / f"demo-home-test{os.environ.get('PYTEST_XDIST_WORKER', '')}"
            ),
            "VOICETRACK_DEMO_OUTPUT": str(tmp_path),
        },
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    path = tmp_path / "voicetrack/daily/voicetrack_20261102T000000Z_20261103T000000Z.jsonl"
    assert f"Output: {path.as_uri()}" in result.stdout
    printed = re.search(r"([\d,]+) records", result.stdout)
    assert printed is not None, result.stdout
    assert int(printed.group(1).replace(",", "")) == expected
    assert "match" in result.stdout
    assert len(path.read_bytes().splitlines()) == expected
