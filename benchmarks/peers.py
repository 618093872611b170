"""Ours against dlt, the peer data engineers weigh: a latency sweep, two shapes, plots.

``python -m benchmarks.peers`` (``make bench-peers``) runs, against the emulator on 127.0.0.1, each
variant in a fresh process, one after the other:

- **O** our ``VoiceTrackingOperator`` under ``dag.test()``, writing JSON Lines;
- **F** dlt's ``rest_api`` source, as dlt's docs show it, to dlt's filesystem destination (jsonl);
- **G** the leanest dlt pipeline: a resource of one's own yielding whole pages, nesting off;
- **A** the raw sequential ``requests`` loop, for reference (it writes nothing).

F and G run in a virtualenv of their own (``.venv-dlt``, created on first use with ``dlt`` and
nothing of Airflow), so that neither side's dependencies can clash with the other's.

Shapes: one day of 200,000 messages, and seven days of 100,000 (our hook searches that in seven
24-hour windows). Latencies 0, 50 and 150 ms per request. Then, at 0 ms, the peak RSS of O, F and
G for 10,000 to 1,000,000 messages. Every figure is split into **start-up** (the process's whole
life minus the extraction: interpreter, imports, and for O ``dag.test()``'s task start) and
**extraction** (O: the operator's summary ``seconds``; F and G: ``pipeline.run``; A: its loop).

Every writer's output is read back and its message ids compared with the emulator's truth (same
set, no duplicates) before a figure counts. ``--write-results`` puts the tables between the
``PEERS`` markers of ``benchmarks/RESULTS.md`` and the plots in ``docs/benchmarks/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil

from airflow_voicetrack.emulator.process import EmulatorProcess
from benchmarks.run import (
    EMULATOR_STARTUP_TIMEOUT,
    EMULATOR_WARM_UP_TIMEOUT,
    REPO,
    RESULTS_FILE,
    child_env,
    machine_info,
    migrate_airflow_home,
    run_child,
    wait_until_idle,
    write_results,
)

DLT_VENV = REPO / ".venv-dlt"
DLT_REQUIREMENTS = ("dlt==1.31.*", "psutil>=5.9")
PLOTS_DIR = REPO / "docs" / "benchmarks"
BEGIN_MARKER = "<!-- BEGIN GENERATED: python -m benchmarks.peers --write-results -->"
END_MARKER = "<!-- END GENERATED PEERS -->"

#: Variant letter -> (module, runs in the dlt virtualenv, what it is).
VARIANTS: dict[str, tuple[str, bool, str]] = {
    "O": ("benchmarks.variant_operator", False, "ours: VoiceTrackingOperator under dag.test(), jsonl"),
    "F": ("benchmarks.variant_f", True, "dlt rest_api source -> filesystem jsonl"),
    "G": ("benchmarks.variant_g", True, "dlt, lean resource yielding pages, nesting off -> filesystem jsonl"),
    "A": ("benchmarks.variant_a", False, "raw sequential requests loop (writes nothing)"),
}
DATA_START = datetime(2026, 11, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Shape:
    """A data set: how many messages over how many days, searched as one range."""

    name: str
    messages: int
    days: int

    @property
    def dates(self) -> tuple[str, str]:
        """The search range, ``[start, end)``, as the API's UTC strings."""
        end = DATA_START + timedelta(days=self.days)
        return DATA_START.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


SHAPES = {"day": Shape("1 day", 200_000, 1), "week": Shape("7 days", 100_000, 7)}
RSS_SIZES = (10_000, 200_000, 1_000_000)


@dataclass
class Outcome:
    """One variant's run: its figures, or why it does not count."""

    shape: str
    messages: int
    latency_ms: int
    variant: str
    status: str = "ok"
    whole_s: float = 0.0
    extraction_s: float = 0.0
    peak_rss_mb: float = 0.0
    requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    spans: list[tuple[float, float]] = field(default_factory=list)
    content: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the variant finished and wrote exactly the emulator's messages."""
        return self.status == "ok"

    @property
    def startup_s(self) -> float:
        """The process's life outside the extraction."""
        return self.whole_s - self.extraction_s

    @property
    def rate(self) -> float:
        """Messages per second of extraction."""
        return self.messages / self.extraction_s if self.ok and self.extraction_s else 0.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="day,week", help="comma-separated of: day, week")
    parser.add_argument("--latencies", default="0,50,150", help="injected ms per request")
    parser.add_argument("--variants", default="O,F,G,A", help="comma-separated letters of O, F, G, A")
    parser.add_argument("--rss-sizes", default=",".join(map(str, RSS_SIZES)), help="'' skips the RSS sweep")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every message count (smoke runs)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a variant is killed")
    parser.add_argument("--memory-limit-mb", type=float, default=8192)
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "out" / "peers")
    parser.add_argument(
        "--write-results", action="store_true", help=f"update {RESULTS_FILE.name} and the plots"
    )
    parser.add_argument("--plots-dir", type=Path, default=PLOTS_DIR)
    args = parser.parse_args(argv)
    args.shapes = [SHAPES[name.strip()] for name in args.shapes.split(",") if name.strip()]
    args.latencies = [int(x) for x in args.latencies.split(",") if x.strip()]
    args.variants = [x.strip().upper() for x in args.variants.split(",") if x.strip()]
    args.rss_sizes = [int(x) for x in args.rss_sizes.split(",") if x.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; use letters of {', '.join(VARIANTS)}")
    return args


def ensure_dlt_venv() -> Path:
    """Create ``.venv-dlt`` with dlt (no Airflow) on first use; return its interpreter."""
    python = DLT_VENV / "bin" / "python"
    marker = DLT_VENV / (".installed-" + "-".join(DLT_REQUIREMENTS).replace("*", "x").replace("=", ""))
    if not marker.exists():
        print(f"creating {DLT_VENV.name} with {', '.join(DLT_REQUIREMENTS)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DLT_VENV)], check=True)
        uv = Path(sys.executable).parent / "uv"
        installer = (
            [str(uv), "pip", "install", "--python", str(python)]
            if uv.exists()
            else [str(python), "-m", "pip", "install"]
        )
        subprocess.run([*installer, "--quiet", *DLT_REQUIREMENTS], check=True)
        marker.touch()
    return python


#: Written records compared in full with the API's, per variant run (ids are checked for all).
FIDELITY_SAMPLE = 1000


def written_records(variant: str, out_dir: Path) -> Iterator[dict[str, Any]] | None:
    """The records a writing variant wrote, read back from its files (None for A, which writes none)."""
    if variant == "O":
        files = [out_dir / "o.jsonl"]
    elif variant in ("F", "G"):
        files = sorted((out_dir / variant.lower() / "data").rglob("voice_messages/*.jsonl"))
    else:
        return None
    return (json.loads(line) for path in files for line in path.open("rb"))


def check_output(
    records: Iterator[dict[str, Any]] | None, count: int, truth: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """
    Compare what a variant wrote with the emulator's truth.

    :returns: ``ok`` or what is wrong with the ids (same set, no duplicates), and the content
        figures: how many of the first :data:`FIDELITY_SAMPLE` records equal the API's record as sent,
        and the keys of the first record.
    """
    if records is None:
        status = "ok" if count == len(truth) else f"wrong count: {count} of {len(truth)}"
        return status, {}
    seen: set[str] = set()
    duplicates = same = 0
    keys: list[str] = []
    for index, record in enumerate(records):
        message_id = record.get("messageId") or record.get("message_id")
        duplicates += message_id in seen
        seen.add(message_id)
        if index < FIDELITY_SAMPLE:
            same += record == truth.get(message_id)
            keys = keys or sorted(record)
    missing, unexpected = len(truth.keys() - seen), len(seen - truth.keys())
    content = {"same_as_api": same, "compared": min(len(seen), FIDELITY_SAMPLE), "keys": keys}
    if duplicates or missing or unexpected:
        return f"wrong ids: {duplicates} duplicates, {missing} missing, {unexpected} unexpected", content
    return "ok", content


def run_shape(
    shape_name: str,
    messages: int,
    days: int,
    latency_ms: int,
    variants: list[str],
    args: argparse.Namespace,
    env: dict[str, str],
    dlt_python: Path | None,
) -> list[Outcome]:
    """Start one emulator and run ``variants`` against it; return their outcomes."""
    shape = Shape(shape_name, messages, days)
    date_start, date_end = shape.dates
    print(f"\n## {shape_name}: {messages:,} messages over {days} d, {latency_ms} ms", flush=True)
    outcomes = []
    with EmulatorProcess(
        messages=messages,
        start=date_start,
        end=date_end,
        extra_args=["--latency-ms", str(latency_ms)],
        startup_timeout=EMULATOR_STARTUP_TIMEOUT,
    ) as emu:
        wait_until_idle(psutil.Process(emu.pid), EMULATOR_WARM_UP_TIMEOUT)
        truth = {m["messageId"]: m for m in emu.truth(date_start, date_end)}
        for letter in variants:
            module, in_dlt_venv, _ = VARIANTS[letter]
            python = str(dlt_python) if in_dlt_venv and dlt_python else sys.executable
            command = [
                python, "-m", module,
                *("--url", emu.url, "--client-id", emu.client_id, "--client-secret", emu.client_secret),
                *("--date-start", date_start, "--date-end", date_end, "--out-dir", str(args.out_dir)),
            ]  # fmt: skip
            log_path = args.out_dir / f"{letter}-{messages}-{days}d-{latency_ms}ms.log"
            emu.reset_stats()
            status, result, observed_peak, elapsed = run_child(
                command, env, log_path, args.timeout, args.memory_limit_mb
            )
            outcome = Outcome(shape_name, messages, latency_ms, letter, status, whole_s=elapsed)
            if outcome.ok:
                extra = result.get("extra", {})
                outcome.extra = extra
                outcome.extraction_s = float(extra.get("extraction_s", result["wall_s"]))
                outcome.peak_rss_mb = max(float(result["peak_rss_mb"]), observed_peak)
                outcome.status, outcome.content = check_output(
                    written_records(letter, args.out_dir), result["records"], truth
                )
            stats = emu.stats()
            outcome.requests = stats["requests"].get("POST /voice/tracking", 0)
            outcome.spans = [tuple(span) for span in emu.search_spans()]
            outcomes.append(outcome)
            print(f"   {letter}: {progress_line(outcome)}", flush=True)
    return outcomes


def progress_line(outcome: Outcome) -> str:
    """One line of progress for a finished variant."""
    if not outcome.ok:
        return outcome.status
    return (
        f"whole {outcome.whole_s:.1f} s = start-up {outcome.startup_s:.1f} s + extraction "
        f"{outcome.extraction_s:.2f} s ({outcome.rate:,.0f} msg/s), peak RSS {outcome.peak_rss_mb:.0f} MB, "
        f"{outcome.requests} search requests"
    )


def figures_table(outcomes: list[Outcome]) -> str:
    """The markdown table of every run."""
    lines = [
        "| shape | latency | variant | whole s | start-up s | extraction s | msg/s (extraction) "
        "| peak RSS MB | search requests | ids vs truth |",
        "|:--|---:|:--|---:|---:|---:|---:|---:|---:|:--|",
    ]
    for o in outcomes:
        head = f"| {o.shape} | {o.latency_ms} ms | {o.variant} "
        if not o.ok:
            lines.append(head + f"| | | | | | {o.requests} | {o.status} |")
            continue
        check = "n/a (count only)" if o.variant == "A" else "same set, no duplicates"
        lines.append(
            head + f"| {o.whole_s:.1f} | {o.startup_s:.1f} | {o.extraction_s:.2f} | {o.rate:,.0f} "
            f"| {o.peak_rss_mb:.0f} | {o.requests} | {check} |"
        )
    return "\n".join(lines)


def ratio_table(outcomes: list[Outcome]) -> str:
    """Our extraction against dlt's ``pipeline.run`` (target: F/O at least 5), and whole processes."""
    by_key = {(o.shape, o.latency_ms, o.variant): o for o in outcomes if o.ok}
    lines = [
        "| shape | latency | F extraction / O extraction (≥ 5) | G / O extraction | F / O whole process "
        "| G / O whole process |",
        "|:--|---:|---:|---:|---:|---:|",
    ]
    for shape, latency in sorted({(o.shape, o.latency_ms) for o in outcomes}):
        ours = by_key.get((shape, latency, "O"))
        f, g = by_key.get((shape, latency, "F")), by_key.get((shape, latency, "G"))
        lines.append(
            f"| {shape} | {latency} ms | {_times(ours, f, 'extraction_s', 5)} "
            f"| {_times(ours, g, 'extraction_s')} | {_times(ours, f, 'whole_s')} "
            f"| {_times(ours, g, 'whole_s')} |"
        )
    return "\n".join(lines)


def _times(ours: Outcome | None, peer: Outcome | None, attr: str, target: float | None = None) -> str:
    """How many times longer the peer took than ours, with the verdict against ``target``."""
    if not (ours and peer):
        return "n/a"
    value = getattr(peer, attr) / getattr(ours, attr)
    return f"{value:.1f}x" + ("" if target is None else (" ✅" if value >= target else " ❌"))


def dlt_steps_table(outcomes: list[Outcome]) -> str:
    """dlt's own split of ``pipeline.run``: extract, normalize, load."""
    lines = [
        "| shape | latency | variant | extract s | normalize s | load s |",
        "|:--|---:|:--|---:|---:|---:|",
    ]
    for o in outcomes:
        if o.ok and o.variant in ("F", "G"):
            e = o.extra
            lines.append(
                f"| {o.shape} | {o.latency_ms} ms | {o.variant} | {e['extract_s']:.2f} "
                f"| {e['normalize_s']:.2f} | {e['load_s']:.2f} |"
            )
    return "\n".join(lines)


def content_table(outcomes: list[Outcome]) -> str:
    """What each writer made of the API's records: equal to them as sent, and the keys of one."""
    lines = [
        f"| variant | records equal to the API's, of the first {FIDELITY_SAMPLE:,} "
        "| keys of a written record |",
        "|:--|---:|:--|",
    ]
    shown: set[str] = set()
    for o in outcomes:
        if o.ok and o.content and o.variant not in shown:
            shown.add(o.variant)
            keys = ", ".join(f"`{key}`" for key in o.content["keys"])
            lines.append(
                f"| {o.variant} | {o.content['same_as_api']:,} of {o.content['compared']:,} | {keys} |"
            )
    return "\n".join(lines)


def plot_throughput(outcomes: list[Outcome], path: Path) -> None:
    """Messages per second of extraction against latency, one panel per shape."""
    import matplotlib.pyplot as plt

    shapes = list(dict.fromkeys(o.shape for o in outcomes))
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.6 * len(shapes), 3.6), sharey=True, squeeze=False)
    for ax, shape in zip(axes[0], shapes, strict=True):
        for letter in VARIANTS:
            points = sorted(
                (o.latency_ms, o.rate) for o in outcomes if o.shape == shape and o.variant == letter and o.ok
            )
            if points:
                ax.plot(
                    *zip(*points, strict=True),
                    marker="o",
                    color=COLORS[letter],
                    label=f"{letter}: {LABELS[letter]}",
                )
        ax.set_title(f"{shape} messages")
        ax.set_xlabel("latency per request (ms)")
        ax.set_xticks(sorted({o.latency_ms for o in outcomes}))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("messages per second (extraction)")
    axes[0][0].set_yscale("log")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rss(outcomes: list[Outcome], path: Path) -> None:
    """Peak RSS against the number of messages (0 ms, one day)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for letter in VARIANTS:
        points = sorted((o.messages, o.peak_rss_mb) for o in outcomes if o.variant == letter and o.ok)
        if points:
            ax.plot(
                *zip(*points, strict=True),
                marker="o",
                color=COLORS[letter],
                label=f"{letter}: {LABELS[letter]}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("messages in one day (log scale)")
    ax.set_ylabel("peak RSS of the process (MB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def in_flight(spans: list[tuple[float, float]], step: float = 0.01) -> tuple[list[float], list[int]]:
    """Search requests in flight over time (seconds from the first request), sampled every ``step``."""
    if not spans:
        return [], []
    t0 = min(start for start, _ in spans)
    end = max(stop for _, stop in spans)
    times, counts = [], []
    t = t0
    while t <= end:
        times.append(t - t0)
        counts.append(sum(1 for start, stop in spans if start <= t < stop))
        t += step
    return times, counts


def plot_in_flight(outcomes: list[Outcome], path: Path) -> None:
    """Requests in flight over time for O and A, on the multi-window shape at the highest latency."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    week = [
        o for o in outcomes if o.shape.startswith(SHAPES["week"].name) and o.variant in ("O", "A") and o.spans
    ]
    if not week:
        return
    latency = max(o.latency_ms for o in week)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for o in sorted((o for o in week if o.latency_ms == latency), key=lambda o: o.variant):
        times, counts = in_flight(o.spans)
        ax.step(
            times, counts, where="post", color=COLORS[o.variant], label=f"{o.variant}: {LABELS[o.variant]}"
        )
    ax.set_title(f"{week[0].shape} messages, {latency} ms per request: search requests in flight")
    ax.set_xlabel("seconds since the first search request")
    ax.set_ylabel("requests in flight")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


LABELS = {"O": "ours (operator)", "F": "dlt rest_api", "G": "dlt lean", "A": "raw requests loop"}
COLORS = {"O": "tab:blue", "F": "tab:orange", "G": "tab:green", "A": "tab:gray"}


def render(args: argparse.Namespace, sweep: list[Outcome], rss: list[Outcome], seconds: float) -> str:
    """The generated markdown."""
    info = machine_info()
    dlt_python = DLT_VENV / "bin" / "python"
    dlt_version = "not installed"
    if dlt_python.exists():
        dlt_version = subprocess.run(
            [str(dlt_python), "-c", "import dlt; print(dlt.__version__)"],
            capture_output=True, text=True, check=False,
        ).stdout.strip() or dlt_version  # fmt: skip
    command = " ".join(["python -m benchmarks.peers", *sys.argv[1:]])
    rel = os.path.relpath(args.plots_dir, RESULTS_FILE.parent)
    parts = [
        f"Run on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min: `{command}`",
        "",
        *(f"- {name}: {value}" for name, value in info.items()),
        f"- dlt {dlt_version} in its own virtualenv; load average before the run: {args.load_before}",
        "",
        "Variants: " + "; ".join(f"**{k}** {v[2]}" for k, v in VARIANTS.items() if k in args.variants) + ".",
        "",
        f"![messages per second against latency]({rel}/throughput.png)",
        "",
        "### Extraction time, ours against dlt",
        "",
        ratio_table(sweep),
        "",
        "### Figures",
        "",
        figures_table(sweep),
        "",
        "Whole = the process from start to exit, as the runner saw it; extraction = O: the operator's "
        "summary `seconds`, F and G: `pipeline.run`, A: its loop; start-up = whole minus extraction "
        "(interpreter, imports, and for O `dag.test()`'s task start and end). Ids vs truth: the written "
        "files were read back and their message ids compared with the emulator's.",
        "",
        "### What lands in the files",
        "",
        content_table(sweep),
        "",
        "dlt's own split of `pipeline.run`:",
        "",
        dlt_steps_table(sweep),
    ]
    if rss:
        parts += [
            "",
            "### Peak RSS against the number of messages (one day, 0 ms)",
            "",
            f"![peak RSS against messages]({rel}/rss.png)",
            "",
            figures_table(rss),
        ]
    if any(o.spans for o in sweep if o.shape.startswith(SHAPES["week"].name)):
        parts += [
            "",
            "### Requests in flight, multi-window shape",
            "",
            f"![requests in flight]({rel}/in_flight.png)",
        ]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; return 1 when a variant failed or wrote the wrong messages."""
    args = parse_args(argv)
    if args.write_results:
        try:  # before the runs, not after them: the plots need it
            import matplotlib  # noqa: F401
        except ImportError:
            print("--write-results draws plots with matplotlib: pip install -e '.[bench]'", file=sys.stderr)
            return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    args.load_before = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    env = child_env(args.out_dir)
    migrate_airflow_home(env)
    dlt_python = ensure_dlt_venv() if {"F", "G"} & set(args.variants) else None
    started = time.perf_counter()
    sweep: list[Outcome] = []
    for shape in args.shapes:
        for latency in args.latencies:
            messages = int(shape.messages * args.scale)
            name = f"{shape.name}, {messages:,}"
            sweep += run_shape(name, messages, shape.days, latency, args.variants, args, env, dlt_python)
    rss: list[Outcome] = []
    for size in args.rss_sizes:
        messages = int(size * args.scale)
        writers = [v for v in args.variants if v != "A"]
        rss += run_shape(
            f"{SHAPES['day'].name}, {messages:,}", messages, 1, 0, writers, args, env, dlt_python
        )
    generated = render(args, sweep, rss, time.perf_counter() - started)
    print("\n" + generated)
    if args.write_results:
        args.plots_dir.mkdir(parents=True, exist_ok=True)
        plot_throughput(sweep, args.plots_dir / "throughput.png")
        if rss:
            plot_rss(rss, args.plots_dir / "rss.png")
        plot_in_flight(sweep, args.plots_dir / "in_flight.png")
        write_results(RESULTS_FILE, generated, BEGIN_MARKER, END_MARKER)
        print(f"Wrote {RESULTS_FILE} and the plots in {args.plots_dir}")
    failed = [o for o in sweep + rss if not o.ok]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
