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


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rate_limit_benchmark_runs_both_engines_and_dlt_and_draws_its_plot(tmp_path: Path) -> None:
    plot = tmp_path / "rate_limits.png"
    completed = subprocess.run(
        [
            sys.executable,
            *("-m", "benchmarks.rate_limits", "--messages", "2000", "--latencies", "0"),
            *("--skip", "multiday", "--plot", str(plot)),
            # The harness is under test, not the engines: this commit's package stands in for the one
            # before the limiter, exported and imported the same way.
            *("--baseline-ref", "HEAD"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    # The baseline ran from its own export, ours from this checkout.
    packages = set(re.findall(r"\[(.*)/airflow_voicetrack/__init__.py\]$", out, re.MULTILINE))
    assert str(REPO) in packages and len(packages) == 2, packages
    assert re.search(r"^\| adaptive, max_concurrency=16 \| [\d.]+ \| [\d.]+ \|", out, re.MULTILINE), out
    # dlt's rest_api source, in its own virtualenv (made on first use), fetched every page.
    assert re.search(
        r"^\| dlt rest_api \(extract\) \| [\d.]+ \| [\d.]+ \| [\d.]+x \| 4 \|", out, re.MULTILINE
    ), out
    assert "Target: adaptive >= 0.9x the limit" in out
    assert re.search(r"^\| 0 ms \| [\d.]+ \| [\d.]+ \| [\d.]+x \|", out, re.MULTILINE), out
    assert plot.stat().st_size > 10_000
