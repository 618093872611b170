"""
The late-calls case of issue 11, at full size: what waiting for the interval's calls costs.

800 calls created over the 4 minutes before "now", each reaching its final status 60-120 s after
its creation (the emulator's ``--settle-lag 60:120``). The interval ``[now - 4 min, now)`` is
extracted twice with ``VoiceTrackingOperator`` on this process (not deferred): first as a snapshot
(``wait_for_terminal=False``), then with the default wait (``poke_interval`` 10 s). Printed: the
snapshot's non-final lines, then for the wait how long it waited, the requests it spent while
waiting (every search request but the first count and the extraction's pages), and the non-final
lines it wrote (0 expected), checked against the emulator's final truth.

Run: ``.venv/bin/python -m benchmarks.late_calls`` (about 2-3 minutes, most of it waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.process import EmulatorProcess

SEARCH = "POST /voice/tracking"


def non_final(lines: list[dict[str, Any]]) -> int:
    return sum(1 for m in lines if m["status"]["status"] not in DEFAULT_TERMINAL_STATUSES)


def extract(emu: EmulatorProcess, start: str, end: str, path: Path, **kwargs: Any) -> dict[str, Any]:
    """One extraction on this process; returns its summary plus the search requests it sent."""
    from airflow_voicetrack.operators.voicetrack import VoiceTrackingOperator

    emu.reset_stats()
    task = VoiceTrackingOperator(
        task_id="extract", date_start=start, date_end=end, output_path=path.as_uri(), **kwargs
    )
    summary = task.execute({"outlet_events": defaultdict(SimpleNamespace)})  # type: ignore[arg-type]
    assert isinstance(summary, dict)
    summary["searches"] = int(emu.stats()["requests"].get(SEARCH, 0))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=800)
    parser.add_argument("--span", type=float, default=240, help="seconds of creation times before now")
    parser.add_argument("--lag", default="60:120", help="MIN:MAX seconds after creation")
    parser.add_argument("--poke-interval", type=float, default=10)
    args = parser.parse_args()
    low, high = (float(x) for x in args.lag.split(":"))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = (now - timedelta(seconds=args.span)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    with EmulatorProcess(messages=args.messages, start=start, end=end, settle_lag=(low, high)) as emu:
        os.environ["AIRFLOW_CONN_VOICETRACK_DEFAULT"] = emu.connection_json()
        out = Path(tempfile.mkdtemp(prefix="late-calls-"))
        snapshot = extract(emu, start, end, out / "snapshot.jsonl", wait_for_terminal=False)
        snapshot_lines = [json.loads(line) for line in (out / "snapshot.jsonl").read_text().splitlines()]
        waited = extract(emu, start, end, out / "waited.jsonl", poke_interval=args.poke_interval)
        lines = [json.loads(line) for line in (out / "waited.jsonl").read_text().splitlines()]
        truth = emu.truth(date_start=start, date_end=end)
    by_id = sorted(lines, key=lambda m: m["messageId"])
    result = {
        "calls": args.messages,
        "span_s": args.span,
        "lag_s": [low, high],
        "poke_interval_s": args.poke_interval,
        "snapshot_non_final_lines": non_final(snapshot_lines),
        "snapshot_summary_non_terminal": snapshot["non_terminal"],
        "waited_seconds": waited["waited_seconds"],
        "requests_while_waiting": waited["searches"] - 1 - waited["pages"],
        "extraction_pages": waited["pages"],
        "non_final_lines_written": non_final(lines),
        "summary_non_terminal": waited["non_terminal"],
        "lines_written": len(lines),
        "equals_final_truth": by_id == truth and non_final(truth) == 0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
