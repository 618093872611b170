"""Smoke test of the benchmark harness: a tiny run of variants A, B, D, E and O against the emulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# Slow tier (`make test-all`): a tiny run of the benchmark harness in a subprocess.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
VARIANTS = ("A", "B", "D", "E", "O")
MESSAGES = 2000
#: A row of the figures table: messages, latency, variant, records, wall s, records/s, ...
ROW = re.compile(
    r"^\| 2,000 \| 0 ms \| (?P<variant>[A-EO]) \| (?P<records>[\d,]+) \| [\d.]+ \| (?P<rate>[\d,]+) \|",
    re.MULTILINE,
)


@pytest.mark.timeout(240)
def test_quick_run_reports_a_positive_rate_for_every_variant(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            *("--sizes", str(MESSAGES), "--latencies", "0", "--variants", ",".join(VARIANTS)),
            *(
                "--page-size",
                "500",
                "--no-sensor",
                "--timeout",
                "60",
                "--quiet-wait",
                "0",
                "--out-dir",
                str(tmp_path),
            ),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    rows = {match["variant"]: match for match in ROW.finditer(completed.stdout)}
    assert sorted(rows) == list(VARIANTS), completed.stdout
    for variant, row in rows.items():
        assert row["records"] == f"{MESSAGES:,}", variant
        assert int(row["rate"].replace(",", "")) > 0, variant
