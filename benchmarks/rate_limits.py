"""The adaptive limiter against today's fixed concurrency, under a rate limit and without one.

``python -m benchmarks.rate_limits`` (part of ``make bench``) runs, each in a fresh process against
an emulator on 127.0.0.1 (100,000 messages over one day, pages of 500: 200 pages):

- **rate limit**: the emulator at 50 ms per request and ``--rate-limit 20`` (requests per second,
  429 with ``Retry-After`` past it): the engine before the limiter at ``max_concurrency`` 4 and 16
  (``baseline``), ours at ``max_concurrency=16``, and dlt's ``rest_api`` source
  (``benchmarks.variant_f`` in ``.venv-dlt``, made on first use; its time is dlt's extract step, the
  requests). Each run's requests per second and requests in flight, as the server saw them, are
  plotted with the limit drawn (``docs/benchmarks/rate_limits.png``).
- **no rate limit**: the engine before the limiter with its defaults against ours with its
  defaults at 0, 50 and 150 ms (target: ours at least 0.95x).
- **multi-day**: seven days of 100,000 messages at 150 ms, ours against a raw sequential
  ``requests`` loop (target: at least 3x).

``baseline`` is the package as it was before the limiter (the newest commit on the first-parent
history without ``protocol/limits.py``, or ``--baseline-ref``), exported with ``git archive`` and
put first on the child's ``PYTHONPATH``; it must speak the emulator's parameter names. See
``benchmarks/peers.py`` for dlt at the same latencies without a rate limit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_voicetrack.emulator.process import EmulatorProcess

# The children import the package before the limiter: nothing here may need names added since.
REPO = Path(__file__).resolve().parent.parent
PLOT = REPO / "docs" / "benchmarks" / "rate_limits.png"
DAY = ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
WEEK = ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")
RESULT = "RATE_LIMITS_RESULT "


@dataclass
class Run:
    """One variant's run: what the client reported and what the server saw."""

    name: str
    seconds: float
    records: int
    pages: int
    statuses: dict[str, int]
    spans: list[tuple[float, float]] = field(default_factory=list)
    client: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def share_429(self) -> float:
        return self.statuses.get("429", 0) / self.requests if self.requests else 0.0

    @property
    def retries(self) -> int:
        return self.requests - self.pages

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0


# --- the child: one search in a fresh process ------------------------------------------------------


def child(argv: Sequence[str]) -> None:
    """Run one search and print its figures (``--child``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["hook", "raw"], default="hook")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--date-start", default=DAY[0])
    parser.add_argument("--date-end", default=DAY[1])
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--url", default="")
    parser.add_argument("--client-id", default="")
    parser.add_argument("--client-secret", default="")
    args = parser.parse_args(argv)
    import airflow_voicetrack
    from airflow_voicetrack.hooks.voicetrack import VoiceTrackHook

    # Imports and the connection are start-up, not the search: the timer starts after them.
    hook = VoiceTrackHook(page_size=args.page_size, max_concurrency=args.concurrency)
    hook.settings  # noqa: B018 - read the connection now
    started = time.perf_counter()
    stats: dict[str, Any] = {}
    if args.mode == "raw":
        records = _raw_loop(args)
    else:
        records = sum(1 for _ in hook.search_messages(args.date_start, args.date_end, raw=True))
        stats = hook.last_search_stats or {}
    seconds = time.perf_counter() - started
    figures = {"seconds": seconds, "records": records, "stats": stats, "package": airflow_voicetrack.__file__}
    sys.stdout.write(RESULT + json.dumps(figures) + "\n")


def _raw_loop(args: argparse.Namespace) -> int:
    """The sequential ``requests`` loop a user writes first: one page after the other."""
    import requests

    from benchmarks.common import fetch_token, search_url

    records = 0
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {fetch_token(session, args)}"
        page = 0
        while True:
            body = session.post(search_url(args, page), json=[], timeout=60).json()
            records += len(body["content"])
            if body.get("last", True):
                return records
            page += 1


# --- the parent -----------------------------------------------------------------------------------


def baseline_source(ref: str | None, into: Path) -> str:
    """
    Export the package before the limiter into ``into``; return the commit exported.

    :param ref: the commit; default: the newest commit on the first-parent history of ``HEAD``
        without ``protocol/limits.py`` (on ``main``, the state before the limiter was merged).
    """
    if ref is None:
        history = subprocess.run(
            ["git", "rev-list", "--first-parent", "HEAD"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        ref = next(
            (
                commit
                for commit in history
                if subprocess.run(
                    ["git", "cat-file", "-e", f"{commit}:airflow_voicetrack/protocol/limits.py"],
                    cwd=REPO,
                    capture_output=True,
                    check=False,
                ).returncode
            ),
            None,
        )
        if ref is None:
            raise SystemExit("no commit before the limiter on this history: pass --baseline-ref")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "airflow_voicetrack"], cwd=REPO, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def run_one(
    name: str, emu: EmulatorProcess, env: dict[str, str], *args: str, pages: int, timeout: float
) -> Run:
    """Run one child against ``emu``; return its figures and the server's view of it."""
    emu.reset_stats()
    command = [sys.executable, "-m", "benchmarks.rate_limits", "--child", *args]
    command += ["--url", emu.url, "--client-id", emu.client_id, "--client-secret", emu.client_secret]
    # python -m puts the working directory first on the path: the first PYTHONPATH entry's package
    # (the baseline's, or this checkout's) must be the one imported.
    cwd = env["PYTHONPATH"].split(os.pathsep)[0]
    figures = child_figures(name, command, env, cwd, RESULT, timeout)
    return server_view(
        name, emu, figures["seconds"], figures["records"], pages, figures["stats"], figures["package"]
    )


def run_dlt(emu: EmulatorProcess, env: dict[str, str], *, pages: int, timeout: float, out: Path) -> Run:
    """Run dlt's ``rest_api`` source (variant F) against ``emu``; its time is dlt's extract step."""
    from benchmarks.common import RESULT_PREFIX
    from benchmarks.peers import ensure_dlt_venv

    python = ensure_dlt_venv()
    emu.reset_stats()
    command = [
        str(python), "-m", "benchmarks.variant_f",
        *("--url", emu.url, "--client-id", emu.client_id, "--client-secret", emu.client_secret),
        *("--date-start", DAY[0], "--date-end", DAY[1], "--page-size", "500", "--out-dir", str(out)),
    ]  # fmt: skip
    figures = child_figures("dlt", command, env, str(REPO), RESULT_PREFIX, timeout)
    seconds = figures["extra"].get("extract_s") or figures["wall_s"]
    return server_view("dlt rest_api (extract)", emu, seconds, figures["records"], pages, {}, str(python))


def child_figures(
    name: str, command: list[str], env: dict[str, str], cwd: str, prefix: str, timeout: float
) -> dict[str, Any]:
    """Run a child process; return the JSON of its stdout line starting with ``prefix``."""
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith(prefix)), None)
    if line is None:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(line[len(prefix) :])
    return figures


def server_view(
    name: str,
    emu: EmulatorProcess,
    seconds: float,
    records: int,
    pages: int,
    client: dict[str, Any],
    package: str,
) -> Run:
    """:return: a run's figures with what the server saw of it (its statuses, its requests' spans)."""
    stats = emu.stats()
    run = Run(
        name,
        seconds,
        records,
        pages,
        stats.get("search_statuses", {}),
        [tuple(span) for span in emu.search_spans()],
        client,
    )
    limits = (
        f", concurrency {client['concurrency_min']}..{client['concurrency_max']} "
        f"(mean {client['concurrency_mean']}), paused {client['paused_seconds']} s"
        if "concurrency_min" in client
        else ""
    )
    print(
        f"   {name}: {run.seconds:.2f} s, {run.records} records, {run.requests} requests "
        f"({run.statuses}){limits}  [{package}]",
        flush=True,
    )
    return run


def rate_table(runs: list[Run], limit: float) -> str:
    """The markdown table of the rate-limited runs."""
    lines = [
        "| variant | time to done s | pages/s | vs the limit | requests | met a 429 | retries |",
        "|:--|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.name} | {r.seconds:.2f} | {r.pages_per_second:.1f} | {r.pages_per_second / limit:.2f}x "
            f"| {r.requests} | {r.share_429:.1%} | {r.retries} |"
        )
    return "\n".join(lines)


def plot(runs: list[Run], limit: float, path: Path) -> None:
    """Requests per second and requests in flight over time, per run, with the limit drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, flight_ax) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for r in runs:
        if not r.spans:
            continue
        t0 = min(start for start, _ in r.spans)
        end = max(stop for _, stop in r.spans) - t0
        bins = [i * 0.5 for i in range(int(end / 0.5) + 2)]
        counts = [0] * len(bins)
        for start, _ in r.spans:
            counts[int((start - t0) / 0.5)] += 1
        rate_ax.step(bins, [c / 0.5 for c in counts], where="post", label=r.name)
        times = [i * 0.02 for i in range(int(end / 0.02) + 1)]
        flight = [sum(1 for s, e in r.spans if s - t0 <= t < e - t0) for t in times]
        flight_ax.plot(times, flight, label=r.name, linewidth=1)
    rate_ax.axhline(limit, color="black", linestyle="--", label=f"rate limit ({limit:g}/s)")
    rate_ax.set_ylabel("requests/s (0.5 s bins)")
    rate_ax.set_title(
        f"200 pages of 500 at 50 ms per request, the server limited to {limit:g} requests/s "
        "(as the server saw them)"
    )
    rate_ax.legend()
    flight_ax.set_ylabel("requests in flight")
    flight_ax.set_xlabel("seconds since the first search request")
    flight_ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparisons; print the tables and the targets."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rate-limit", type=float, default=20)
    parser.add_argument("--latencies", default="0,50,150", help="ms, for the runs without a rate limit")
    parser.add_argument("--baseline-ref", default=None)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--skip", default="", help="comma-separated: rate, dlt, plain, multiday")
    parser.add_argument("--plot", type=Path, default=PLOT, help="where the rate-limit plot goes")
    args = parser.parse_args(argv)
    from airflow_voicetrack.emulator.process import EmulatorProcess
    from benchmarks.run import child_env

    skip = set(filter(None, args.skip.split(",")))
    pages = -(-args.messages // 500)
    with tempfile.TemporaryDirectory() as tmp:
        commit = baseline_source(args.baseline_ref, Path(tmp))
        ours = child_env(Path(tmp))
        baseline = {**ours, "PYTHONPATH": os.pathsep.join([tmp, ours["PYTHONPATH"]])}
        print(f"baseline: the package at {commit}; {pages} pages of 500 per run", flush=True)
        results: list[str] = []
        with EmulatorProcess(messages=args.messages, start=DAY[0], end=DAY[1]) as emu:
            for env in (ours, baseline):
                env["AIRFLOW_CONN_VOICETRACK_DEFAULT"] = emu.connection_json()
            if "rate" not in skip:
                emu.set_faults(latency_ms=50, rate_limit=args.rate_limit)
                print(f"rate limit {args.rate_limit:g}/s at 50 ms:", flush=True)
                runs = [
                    run_one(f"before the limiter, concurrency {n}", emu, baseline,
                            "--concurrency", str(n), pages=pages, timeout=args.timeout)
                    for n in (4, 16)
                ]  # fmt: skip
                adaptive = run_one("adaptive, max_concurrency=16", emu, ours, "--concurrency", "16",
                                   pages=pages, timeout=args.timeout)  # fmt: skip
                runs.append(adaptive)
                if "dlt" not in skip:
                    runs.append(run_dlt(emu, ours, pages=pages, timeout=args.timeout, out=Path(tmp) / "dlt"))
                table = rate_table(runs, args.rate_limit)
                target = (
                    "Target: adaptive >= 0.9x the limit with <= 5 % of requests meeting a 429: "
                    f"{adaptive.pages_per_second / args.rate_limit:.2f}x, {adaptive.share_429:.1%}."
                )
                heading = f"### Under a rate limit of {args.rate_limit:g} requests/s (50 ms per request)"
                results += [heading, "", table, "", target, ""]
                plot(runs, args.rate_limit, args.plot)
                results.append(f"Plot: `{args.plot}`.\n")
            if "plain" not in skip:
                lines = [
                    "### No rate limit: before the limiter against ours",
                    "",
                    "| latency | before, defaults (4) s | ours, defaults (8) s | ratio | before at 4 s "
                    "| ours at max 4 s | ratio |",
                    "|---:|---:|---:|---:|---:|---:|---:|",
                ]
                for latency in [int(x) for x in args.latencies.split(",")]:
                    emu.clear_faults()
                    emu.set_faults(latency_ms=latency)
                    print(f"no rate limit, {latency} ms:", flush=True)
                    cells = [f"{latency} ms"]
                    for concurrency in ((), ("--concurrency", "4")):
                        label = "defaults" if not concurrency else "max_concurrency 4"
                        before = run_one(
                            f"before, {label}", emu, baseline, *concurrency, pages=pages, timeout=args.timeout
                        )
                        after = run_one(
                            f"adaptive, {label}", emu, ours, *concurrency, pages=pages, timeout=args.timeout
                        )
                        ratio = before.seconds / after.seconds
                        cells += [f"{before.seconds:.2f}", f"{after.seconds:.2f}", f"{ratio:.2f}x"]
                    lines.append("| " + " | ".join(cells) + " |")
                lines += ["", "Ratio: ours' throughput over the engine before the limiter (target >= 0.95x)."]
                results += [*lines, ""]
        if "multiday" not in skip:
            with EmulatorProcess(messages=args.messages, start=WEEK[0], end=WEEK[1]) as emu:
                ours["AIRFLOW_CONN_VOICETRACK_DEFAULT"] = emu.connection_json()
                emu.set_faults(latency_ms=150)
                print("seven days at 150 ms:", flush=True)
                week = ("--date-start", WEEK[0], "--date-end", WEEK[1])
                raw = run_one("raw sequential loop", emu, ours, "--mode", "raw", *week, "--page-size", "500",
                              pages=pages, timeout=args.timeout)  # fmt: skip
                after = run_one("adaptive, defaults", emu, ours, *week, pages=pages, timeout=args.timeout)
                results += [
                    "### Seven days at 150 ms", "",
                    f"Raw sequential loop {raw.seconds:.2f} s, ours {after.seconds:.2f} s: "
                    f"{raw.seconds / after.seconds:.1f}x (target >= 3x).", "",
                ]  # fmt: skip
    print("\n" + "\n".join(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
