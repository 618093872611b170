"""Many deferred sensors in one triggerer: ``VoiceMessageStatusTrigger``s in one event loop.

``python -m benchmarks.triggerer`` starts the emulator on 127.0.0.1 (a small data set whose messages
stay pending, and a short token lifetime), then for each ``--triggers`` count runs a fresh process
that starts that many search-mode triggers for one connection in one event loop, each polling every
``--poke-interval`` seconds, for ``--seconds``. It prints one table row per count:

- token requests per token lifetime (the emulator's token requests over the run, divided by the
  lifetimes the run spans; target 1 per connection);
- pokes (evaluations the triggers completed) and search requests per poke (the emulator's search
  requests over those pokes; 1 is the sensor's budget while it waits);
- event-loop lag, p50 / p99 / max: how late a 50 ms ``asyncio.sleep`` of a probe task wakes up,
  over the whole run and after the start-up burst (two poke intervals);
- RSS of the process before the triggers start and at the end;
- secrets the masker holds (``len(patterns)``), lowest and highest after the first token lifetime
  began, and at the end.

``--write-results`` puts the table in ``benchmarks/RESULTS.md`` between the ``BEGIN/END TRIGGERER``
markers. This is a benchmark, not a test: the figures depend on the machine and its load (the load
average is printed with them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import requests

from airflow_voicetrack.constants import DEFAULT_TERMINAL_STATUSES
from airflow_voicetrack.emulator.process import EmulatorProcess
from benchmarks.common import RESULT_PREFIX, set_voicetrack_connection

CONN_ID = "voicetrack_triggerer_bench"
START, END = "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"
RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN_MARKER = "<!-- BEGIN TRIGGERER: python -m benchmarks.triggerer --write-results -->"
END_MARKER = "<!-- END TRIGGERER -->"
#: The probe's sleep, in seconds: its lateness is the loop's lag.
PROBE_INTERVAL = 0.05


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.child`` triggers in one event loop for ``args.seconds``; return the figures."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from airflow_voicetrack.hooks.voicetrack import VoiceTrackAsyncHook
    from airflow_voicetrack.triggers.voicetrack import VoiceMessageStatusTrigger

    set_voicetrack_connection(
        CONN_ID, argparse.Namespace(url=args.url, client_id="demo-app-id", client_secret="demo-app-secret")
    )
    pokes = 0

    class CountingTrigger(VoiceMessageStatusTrigger):
        """The real trigger, counting its completed pokes (each is followed by one poke-interval sleep)."""

        async def _sleep(self, seconds: float, *, minimum: float = 0.0) -> bool:
            nonlocal pokes
            if seconds == self.poke_interval and not minimum:  # not an error's back-off
                pokes += 1
            return await super()._sleep(seconds, minimum=minimum)

    triggers = [
        CountingTrigger(
            voicetrack_conn_id=CONN_ID,
            message_ids=None,
            date_start=START,
            date_end=END,
            filters=[],
            campaign_tracking_id=None,
            terminal_statuses=sorted(DEFAULT_TERMINAL_STATUSES),
            failure_statuses=[],
            failure_threshold=None,
            missing="fail",
            wait_for_messages=False,
            poke_interval=args.poke_interval,
            timeout_at=None,
        )
        for _ in range(args.child)
    ]
    masker = _secrets_masker()
    process = psutil.Process()
    lags: list[float] = []
    steady_lags: list[float] = []
    masked: list[int] = []

    async def probe(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(PROBE_INTERVAL)
            lags.append(loop.time() - before - PROBE_INTERVAL)
            if loop.time() - started_at > 2 * args.poke_interval:  # past the start-up burst
                steady_lags.append(lags[-1])

            masked.append(len(masker.patterns))

    async def warm_up() -> None:
        """What a running triggerer has long loaded (modules, the TLS context) is loaded here first."""
        hook = VoiceTrackAsyncHook(CONN_ID)
        try:
            await hook.count_messages(START, END)
        finally:
            await hook.close()

    started_at = 0.0

    async def main() -> None:
        nonlocal started_at
        started_at = asyncio.get_running_loop().time()
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(stop))
        tasks = [asyncio.create_task(anext(trigger.run())) for trigger in triggers]
        await asyncio.sleep(args.seconds)
        stop.set()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await prober
        fired = [r for r in results if not isinstance(r, BaseException)]
        if fired:
            raise RuntimeError(f"{len(fired)} triggers fired during the run, e.g. {fired[0].payload}")

    asyncio.run(warm_up())
    admin = requests.Session()
    admin.post(f"{args.url}/_emulator/stats/reset", timeout=30).raise_for_status()
    rss_before = process.memory_info().rss / 2**20
    masked_before = len(masker.patterns)
    started = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - started
    stats = admin.get(f"{args.url}/_emulator/stats", timeout=30).json()
    searches = sum(n for route, n in stats["requests"].items() if " /voice/" in route)
    tokens = sum(n for route, n in stats["requests"].items() if "/oauth/token" in route)
    lags_ms = sorted(lag * 1000 for lag in lags)
    steady_ms = sorted(lag * 1000 for lag in steady_lags) or [0.0]
    # After the first token lifetime began, i.e. once the first pokes fetched their tokens.
    steady = masked[len(masked) // 10 :] or masked
    return {
        "triggers": args.child,
        "seconds": round(elapsed, 1),
        "token_lifetime": args.token_lifetime,
        "token_requests": tokens,
        "token_requests_per_lifetime": round(tokens / max(1.0, elapsed / args.token_lifetime), 1),
        "search_requests": searches,
        "pokes": pokes,
        "search_requests_per_poke": round(searches / pokes, 2) if pokes else None,
        "lag_p50_ms": round(statistics.median(lags_ms), 1),
        "lag_p99_ms": round(lags_ms[int(len(lags_ms) * 0.99) - 1], 1),
        "lag_max_ms": round(lags_ms[-1], 1),
        "steady_lag_p50_ms": round(statistics.median(steady_ms), 1),
        "steady_lag_p99_ms": round(steady_ms[max(0, int(len(steady_ms) * 0.99) - 1)], 1),
        "rss_before_mb": round(rss_before),
        "rss_end_mb": round(process.memory_info().rss / 2**20),
        "masked_before": masked_before,
        "masked_min": min(steady),
        "masked_max": max(steady),
        "masked_end": masked[-1],
    }


def _table(rows: list[dict[str, Any]], args: argparse.Namespace, load: tuple[float, float, float]) -> str:
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, `python -m benchmarks.triggerer "
        f"--triggers {args.triggers} --poke-interval {args.poke_interval:g} --seconds {args.seconds:g} "
        f"--token-lifetime {args.token_lifetime:g}`; {psutil.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the start (others' work included).",
        "",
        "| triggers | pokes | token requests | per token lifetime | search requests per poke "
        "| loop lag p50 / p99 / max ms | after start-up p50 / p99 ms | RSS before → end MB "
        "| masker secrets before / min-max / end |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['triggers']:,} | {r['pokes']:,} | {r['token_requests']:,} | "
            f"{r['token_requests_per_lifetime']:g} | {r['search_requests_per_poke']} | "
            f"{r['lag_p50_ms']:g} / {r['lag_p99_ms']:g} / {r['lag_max_ms']:g} | "
            f"{r['steady_lag_p50_ms']:g} / {r['steady_lag_p99_ms']:g} | "
            f"{r['rss_before_mb']} → {r['rss_end_mb']} | "
            f"{r['masked_before']} / {r['masked_min']}-{r['masked_max']} / {r['masked_end']} |"
        )
    return "\n".join(lines)


def _write_results(table: str) -> None:
    text = RESULTS_FILE.read_text()
    block = f"{BEGIN_MARKER}\n{table}\n{END_MARKER}"
    if BEGIN_MARKER in text:
        head, _, rest = text.partition(BEGIN_MARKER)
        text = head + block + rest.partition(END_MARKER)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS_FILE.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--triggers", default="500,1000", help="comma-separated trigger counts")
    parser.add_argument("--poke-interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each count runs")
    parser.add_argument("--token-lifetime", type=float, default=30.0, help="the emulator's, in seconds")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(RESULT_PREFIX + json.dumps(_child(args)) + "\n")
        return
    load = os.getloadavg()
    rows = []
    # Messages that never settle: every trigger keeps waiting for the whole run.
    with EmulatorProcess(messages=args.messages, settle_seconds=10 * 365 * 86400) as emu:
        emu.set_faults(token_lifetime=args.token_lifetime)
        for count in (int(n) for n in args.triggers.split(",")):
            command = [
                sys.executable, "-m", "benchmarks.triggerer", "--child", str(count), "--url", emu.url,
                "--poke-interval", str(args.poke_interval), "--seconds", str(args.seconds),
                "--token-lifetime", str(args.token_lifetime),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds * 5 + 300)
            lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
            if done.returncode or not lines:
                raise RuntimeError(f"{count} triggers failed (rc {done.returncode}): {done.stderr[-3000:]}")
            rows.append(json.loads(lines[-1][len(RESULT_PREFIX) :]))
            print(json.dumps(rows[-1]), flush=True)
    table = _table(rows, args, load)
    print(table)
    if args.write_results:
        _write_results(table)


if __name__ == "__main__":
    main()
