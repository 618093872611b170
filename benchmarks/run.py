"""Run the extraction benchmarks side by side and print (optionally write) the results table.

``python -m benchmarks.run`` (``make bench``; ``BENCH_ARGS="--quick"`` for a smoke run) starts one
emulator process per (size, latency) on 127.0.0.1, runs each variant in a fresh process against it,
one after the other, and prints a markdown table of wall time, records per second, CPU time and peak
RSS, with the emulator's CPU use during each variant (near 100 % of one core means the emulator, not
the client, set the pace). Then the ratios of the issue's targets, and the sensor's requests per poke.

Variants (see their modules): A raw sequential ``requests`` loop, B raw concurrent fetch, C Airflow's
``HttpOperator`` with a ``pagination_function``, D our extraction with concurrency 1, E our extraction
with its defaults; all of them request pages of ``--page-size``, and a ratio of two variants that
report different page sizes is not printed. The files D and E write are checked against the
emulator's truth (every id once, none missing, none extra) before they are deleted. A variant that
exceeds ``--timeout`` or ``--memory-limit-mb`` is killed and reported as not finished.

``--write-results`` replaces the generated part of ``benchmarks/RESULTS.md`` (between the
``BEGIN GENERATED`` / ``END GENERATED`` markers) and keeps the text around it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import msgspec
import psutil
import requests

from airflow_voicetrack.constants import DATE_END_PARAM, DATE_START_PARAM, MAX_PAGE_SIZE, SEARCH_PATH
from airflow_voicetrack.emulator.process import EmulatorProcess
from benchmarks.common import RESULT_PREFIX

REPO = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO / "benchmarks" / "RESULTS.md"
BEGIN_MARKER = "<!-- BEGIN GENERATED: python -m benchmarks.run --write-results -->"
END_MARKER = "<!-- END GENERATED -->"

#: Variant letter -> (module, extra arguments, what it is).
VARIANTS: dict[str, tuple[str, list[str], str]] = {
    "A": ("benchmarks.variant_a", [], "raw sequential requests loop, JSON decoded"),
    "B": ("benchmarks.variant_b", [], "raw concurrent fetch (4 threads), bodies discarded"),
    "C": ("benchmarks.variant_c", [], "HttpOperator + pagination_function"),
    "D": ("benchmarks.variant_ours", ["--concurrency", "1", "--name", "d"], "ours, concurrency 1"),
    "E": ("benchmarks.variant_ours", ["--name", "e"], "ours, defaults"),
    "F": ("benchmarks.variant_ours", ["--name", "f", "--format", "csv"], "ours, defaults, csv"),
    "O": (
        "benchmarks.variant_operator",
        [],
        "ours, the operator under `dag.test()` writing `jsonl`, timed by its summary's `seconds`",
    ),
}
DATA_START = datetime(2026, 11, 1, tzinfo=timezone.utc)
SIZES = (10_000, 200_000, 1_000_000)
QUICK_SIZE = 10_000
SENSOR_SIZES = (100, 10_000, 100_000)
#: Seconds the emulator may take to generate its data set and serve (1M messages take longest).
EMULATOR_STARTUP_TIMEOUT = 180.0
#: Seconds to wait at most for the emulator's background warm-up to finish.
EMULATOR_WARM_UP_TIMEOUT = 300.0


@dataclass
class Outcome:
    """One variant's run: the child's own figures, or why it did not finish."""

    size: int
    latency_ms: int
    variant: str
    status: str = "ok"
    expected: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    emulator_cpu_s: float = 0.0
    others_percent: float = 0.0
    observed_peak_rss_mb: float = 0.0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the variant finished and received exactly the expected records."""
        return self.status == "ok"

    @property
    def page_size(self) -> int | None:
        """The page size the variant reported it requested."""
        return self.result.get("extra", {}).get("page_size")

    @property
    def seconds(self) -> float:
        """The extraction's seconds: the operator's own ``seconds`` for O, the measured wall time else."""
        return float(self.result.get("extra", {}).get("extraction_s") or self.result.get("wall_s") or 0.0)

    @property
    def rate(self) -> float:
        """Records per second (0 when not finished)."""
        return self.result["records"] / self.seconds if self.ok and self.seconds else 0.0


def _csv_ints(text: str) -> list[int]:
    return [int(item.replace("_", "")) for item in text.split(",") if item.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """
    Parse the command line.

    :param argv: The arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=_csv_ints, default=None, help="messages (default 10000,200000,1000000; --quick 10000)"
    )
    parser.add_argument("--latencies", type=_csv_ints, default=[0, 50], help="injected ms per request")
    parser.add_argument("--variants", default="A,B,C,D,E,O", help="comma-separated letters of A..F and O")
    parser.add_argument("--quick", action="store_true", help="10k messages only (a smoke run, about 2 min)")
    parser.add_argument("--page-size", type=int, default=MAX_PAGE_SIZE, help="page size of A, B and C")
    parser.add_argument("--span-hours", type=float, default=24, help="the messages' creation time range")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a variant is killed")
    parser.add_argument(
        "--memory-limit-mb", type=float, default=6144, help="resident set size at which a variant is killed"
    )
    parser.add_argument(
        "--quiet-percent",
        type=float,
        default=25,
        help="before each variant, wait until the machine's CPUs are less busy than this (percent)",
    )
    parser.add_argument("--quiet-wait", type=float, default=30, help="seconds to wait for quiet at most")
    parser.add_argument("--sensor-sizes", type=_csv_ints, default=None, help="default 100,10000,100000")
    parser.add_argument("--no-sensor", action="store_true", help="skip the sensor's requests per poke")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument(
        "--write-results",
        nargs="?",
        const=RESULTS_FILE,
        type=Path,
        default=None,
        help=f"write the tables into this file (default {RESULTS_FILE.relative_to(REPO)})",
    )
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [QUICK_SIZE] if args.quick else list(SIZES)
    if args.sensor_sizes is None:
        args.sensor_sizes = (
            [size for size in SENSOR_SIZES if size <= QUICK_SIZE] if args.quick else list(SENSOR_SIZES)
        )
    args.variants = [letter.strip().upper() for letter in args.variants.split(",") if letter.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; use letters of {', '.join(VARIANTS)}")
    return args


def child_env(out_dir: Path) -> dict[str, str]:
    """The environment of variant processes: a throw-away Airflow home, the repo on the path."""
    env = os.environ.copy()
    env.setdefault("AIRFLOW_HOME", str(REPO / ".airflow" / "bench-home"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _own_and_children_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class OthersMeter:
    """
    The share of the machine's CPUs that other processes used while a variant ran.

    Machine-wide busy CPU time minus this process's, its finished children's (the variant) and the
    emulator's, over the elapsed time times the number of CPUs. Other workers' tests on a shared
    machine make the wall times noisy; this column says how much.

    :param emulator: The emulator process (still running, so not among the finished children).
    """

    def __init__(self, emulator: psutil.Process) -> None:
        self.emulator = emulator
        self.started = time.perf_counter()
        self.busy0, self.ours0, self.emulator0 = _machine_busy_s(), _own_and_children_cpu_s(), _cpu(emulator)

    def percent(self) -> float:
        """Others' share in percent of all CPUs since this meter was created."""
        elapsed = time.perf_counter() - self.started
        others = (
            _machine_busy_s()
            - self.busy0
            - (_own_and_children_cpu_s() - self.ours0)
            - (_cpu(self.emulator) - self.emulator0)
        )
        return max(0.0, 100 * others / (elapsed * (os.cpu_count() or 1)))


def wait_for_quiet(max_busy_percent: float, max_wait: float) -> float:
    """
    Wait until the machine's CPUs are less than ``max_busy_percent`` busy over a second (other
    workers share this machine); return the seconds waited (at most about ``max_wait``).

    :param max_busy_percent: Machine-wide CPU use, in percent of all CPUs, considered quiet.
    :param max_wait: Seconds after which to go on anyway.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < max_wait:
        if psutil.cpu_percent(interval=1.0) < max_busy_percent:
            break
    return time.perf_counter() - started


def wait_until_idle(process: psutil.Process, timeout: float) -> float:
    """
    Wait until ``process`` uses less than 5 % of a core over a second; return the seconds waited.

    The emulator builds and encodes its messages in a background task after it starts serving; a
    variant measured meanwhile would share the CPU with that warm-up.

    :param process: The emulator process.
    :param timeout: Seconds after which to go on anyway.
    """
    started = time.perf_counter()
    previous = _cpu(process)
    while time.perf_counter() - started < timeout:
        time.sleep(1.0)
        current = _cpu(process)
        if current - previous < 0.05:
            break
        previous = current
    return time.perf_counter() - started


def expected_total(emu: EmulatorProcess, date_start: str, date_end: str) -> int:
    """
    Count the search's messages with one size=1 request (``totalElements``).

    :param emu: The running emulator.
    :param date_start: Start of the range, ISO-8601 UTC.
    :param date_end: End of the range, exclusive.
    """
    with requests.Session() as session:
        token = session.post(
            emu.token_url,
            data={"grant_type": "client_credentials"},
            auth=(emu.client_id, emu.client_secret),
            timeout=30,
        ).json()["access_token"]
        response = session.post(
            f"{emu.url}{SEARCH_PATH}",
            params={DATE_START_PARAM: date_start, DATE_END_PARAM: date_end, "page": 0, "size": 1},
            json=[],
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        response.raise_for_status()
        return int(response.json()["totalElements"])


class _MessageId(msgspec.Struct):
    messageId: str  # the API's field name


def verify_written_ids(path: Path, truth: list[str]) -> str | None:
    """
    Check a JSON-lines file a variant wrote against the emulator's truth.

    :param path: The file.
    :param truth: Every messageId the search matches, from the emulator (``EmulatorProcess.truth_ids``).
    :return: What is wrong (missing file, duplicates, missing or unexpected ids), or None.
    """
    if not path.is_file():
        return f"wrong output: {path.name} was not written"
    decoder = msgspec.json.Decoder(_MessageId)
    with path.open("rb") as lines:
        written = [decoder.decode(line).messageId for line in lines if line.strip()]
    unique = set(written)
    expected = set(truth)
    problems = []
    if len(unique) != len(written):
        problems.append(f"{len(written) - len(unique)} duplicates")
    if expected - unique:
        problems.append(f"{len(expected - unique)} missing")
    if unique - expected:
        problems.append(f"{len(unique - expected)} unexpected")
    if problems:
        return f"wrong ids in {path.name}: {len(written)} written, " + ", ".join(problems)
    return None


def run_child(
    command: list[str], env: dict[str, str], log_path: Path, timeout: float, memory_limit_mb: float
) -> tuple[str, dict[str, Any], float, float]:
    """
    Run one benchmark process, guarding time and memory; return (status, result, peak RSS, elapsed).

    The peak RSS returned is the parent's own observation (polled), a cross-check of the child's.

    :param command: The command line.
    :param env: Its environment.
    :param log_path: Where its stderr (then its stdout) goes.
    :param timeout: Seconds before it is killed.
    :param memory_limit_mb: Resident set size at which it is killed.
    """
    started = time.perf_counter()
    observed_peak = 0.0
    status = "ok"
    with (
        log_path.open("wb") as log,
        subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log) as proc,
    ):
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                observed_peak = max(observed_peak, watched.memory_info().rss / 2**20)
            elapsed = time.perf_counter() - started
            if observed_peak > memory_limit_mb:
                status = f"killed: RSS above {memory_limit_mb:.0f} MB after {elapsed:.0f} s"
            elif elapsed > timeout:
                status = f"killed: not finished within {timeout:.0f} s"
            if status != "ok":
                proc.kill()
                break
            time.sleep(0.2)
        stdout = proc.communicate()[0].decode(errors="replace")
        log.write(b"\n--- stdout ---\n" + stdout.encode())
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    if status == "ok" and not result:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        status = f"failed (exit {proc.returncode}): {' | '.join(tail)[-300:]}"
    return status, result, observed_peak, elapsed


def run_configuration(
    size: int, latency_ms: int, args: argparse.Namespace, env: dict[str, str]
) -> list[Outcome]:
    """
    Start one emulator with ``size`` messages and ``latency_ms`` and run every variant against it.

    :param size: Messages in the emulator.
    :param latency_ms: Injected latency per request.
    :param args: The parsed command line.
    :param env: The variants' environment.
    """
    date_start = DATA_START.strftime("%Y-%m-%dT%H:%M:%SZ")
    date_end = (DATA_START + timedelta(hours=args.span_hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    outcomes = []
    print(f"\n## {size:,} messages, {latency_ms} ms latency: starting the emulator", flush=True)
    with EmulatorProcess(
        messages=size,
        start=date_start,
        end=date_end,
        extra_args=["--latency-ms", str(latency_ms)],
        startup_timeout=EMULATOR_STARTUP_TIMEOUT,
    ) as emu:
        emulator = psutil.Process(emu.pid)
        idle_after = wait_until_idle(emulator, EMULATOR_WARM_UP_TIMEOUT)
        print(
            f"   emulator serving after {emu.startup_seconds:.1f} s, warm and idle after {idle_after:.1f} s",
            flush=True,
        )
        expected = expected_total(emu, date_start, date_end)
        truth = emu.truth_ids(date_start, date_end)
        if len(truth) != expected:
            raise RuntimeError(f"the emulator's truth has {len(truth)} ids, its search {expected}")
        for letter in args.variants:
            module, variant_args, _ = VARIANTS[letter]
            command = [
                sys.executable,
                "-m",
                module,
                *("--url", emu.url, "--client-id", emu.client_id, "--client-secret", emu.client_secret),
                *("--date-start", date_start, "--date-end", date_end),
                *("--page-size", str(args.page_size), "--out-dir", str(args.out_dir)),
                *variant_args,
            ]
            log_path = args.out_dir / f"{letter}-{size}-{latency_ms}ms.log"
            wait_for_quiet(args.quiet_percent, args.quiet_wait)
            meter = OthersMeter(emulator)
            status, result, observed, elapsed = run_child(
                command, env, log_path, args.timeout, args.memory_limit_mb
            )
            outcome = Outcome(
                size, latency_ms, letter, status, expected, result, _cpu(emulator) - meter.emulator0
            )
            outcome.others_percent = meter.percent()
            outcome.observed_peak_rss_mb, outcome.elapsed_s = observed, elapsed
            if outcome.ok and result["records"] != expected:
                outcome.status = f"wrong count: {result['records']} of {expected}"
            output = result.get("extra", {}).get("output")
            if outcome.ok and output:
                outcome.status = verify_written_ids(Path(output), truth) or "ok"
            for leftover in [
                *args.out_dir.glob("*.jsonl"),
                *args.out_dir.glob("*.csv"),
                *args.out_dir.glob("_*.voicetrack-tmp-*"),
            ]:
                leftover.unlink()
            outcomes.append(outcome)
            print(f"   {letter}: {summary_line(outcome)}", flush=True)
    return outcomes


def summary_line(outcome: Outcome) -> str:
    """One line of progress for a finished variant."""
    if not outcome.ok:
        return outcome.status
    result = outcome.result
    return (
        f"{result['records']:,} records in {outcome.seconds:.2f} s = {outcome.rate:,.0f}/s, "
        f"CPU {result['cpu_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
        f"emulator CPU {outcome.emulator_cpu_s:.2f} s, others {outcome.others_percent:.0f} % of the CPUs"
    )


def measure_sensor(size: int, settle_seconds: float, env: dict[str, str], args: argparse.Namespace) -> dict:
    """
    Count the emulator's requests per poke of the sensor in search mode.

    :param size: Messages in the emulator.
    :param settle_seconds: The emulator's status pace: large keeps every message pending, 0 makes
        every message final from the start.
    :param env: The child's environment.
    :param args: The parsed command line.
    """
    date_end = (DATA_START + timedelta(hours=args.span_hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    date_start = DATA_START.strftime("%Y-%m-%dT%H:%M:%SZ")
    with EmulatorProcess(
        messages=size,
        settle_seconds=settle_seconds,
        start=date_start,
        end=date_end,
        startup_timeout=EMULATOR_STARTUP_TIMEOUT,
    ) as emu:
        command = [
            sys.executable,
            "-m",
            "benchmarks.sensor_requests",
            *("--url", emu.url, "--client-id", emu.client_id, "--client-secret", emu.client_secret),
            *("--date-start", date_start, "--date-end", date_end),
        ]
        log_path = args.out_dir / f"sensor-{size}-{settle_seconds:g}.log"
        status, result, _, _ = run_child(command, env, log_path, 300, args.memory_limit_mb)
    return {"size": size, "pending": settle_seconds > 0, "status": status, **result.get("extra", {})}


def machine_info() -> dict[str, str]:
    """The machine and software versions the run used."""
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def package(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "CPU": f"{cpu_model}, {os.cpu_count()} logical CPUs (nproc {len(os.sched_getaffinity(0))})",
        "Memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "Packages": ", ".join(
            f"{name} {package(name)}"
            for name in (
                "apache-airflow",
                "apache-airflow-providers-http",
                "requests",
                "msgspec",
                "uvicorn",
                "airflow-provider-voicetrack",
            )
        ),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if numerator and denominator else None


def _fmt_ratio(value: float | None, target: float | None = None, at_least: bool = True) -> str:
    if value is None:
        return "n/a"
    if target is None:
        return f"{value:.2f}x"
    met = value >= target if at_least else value <= target
    return f"{value:.2f}x {'✅' if met else '❌'}"


def rate_ratio(numerator: Outcome | None, denominator: Outcome | None, target: float | None = None) -> str:
    """
    The ratio of two variants' records per second, formatted; refused when they read different pages.

    :param numerator: The variant on top.
    :param denominator: The variant below.
    :param target: The smallest ratio that meets the target, if any.
    """
    if numerator is None or denominator is None or not (numerator.ok and denominator.ok):
        return "n/a"
    if numerator.page_size != denominator.page_size:
        return f"n/a: pages of {numerator.page_size} vs {denominator.page_size}"
    return _fmt_ratio(_ratio(numerator.rate, denominator.rate), target)


def results_table(outcomes: list[Outcome]) -> str:
    """The markdown table of every variant's figures."""
    lines = [
        "| messages | latency | variant | records | wall s | records/s | CPU s | peak RSS MB "
        "| RSS before MB | emulator CPU s (% of wall) | others' CPU % |",
        "|---:|---:|:--|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for outcome in outcomes:
        head = f"| {outcome.size:,} | {outcome.latency_ms} ms | {outcome.variant} "
        if not outcome.ok:
            lines.append(head + f"| {outcome.status} | | | | | | | |")
            continue
        result = outcome.result
        share = 100 * outcome.emulator_cpu_s / result["wall_s"] if result["wall_s"] else 0.0
        lines.append(
            head + f"| {result['records']:,} | {outcome.seconds:.2f} | {outcome.rate:,.0f} "
            f"| {result['cpu_s']:.2f} | {result['peak_rss_mb']:.0f} | {result['base_rss_mb']:.0f} "
            f"| {outcome.emulator_cpu_s:.2f} ({share:.0f} %) | {outcome.others_percent:.0f} |"
        )
    return "\n".join(lines)


def ratios_table(outcomes: list[Outcome]) -> str:
    """The markdown table of the targets' ratios, one row per size (and latency where it matters)."""
    by_key = {(o.size, o.latency_ms, o.variant): o for o in outcomes}

    def ratio(size: int, latency: int, top: str, bottom: str, target: float | None = None) -> str:
        return rate_ratio(by_key.get((size, latency, top)), by_key.get((size, latency, bottom)), target)

    def rss(size: int, latency: int, variant: str) -> float:
        outcome = by_key.get((size, latency, variant))
        return float(outcome.result["peak_rss_mb"]) if outcome and outcome.ok else 0.0

    sizes = sorted({o.size for o in outcomes})
    latencies = sorted({o.latency_ms for o in outcomes})
    lines = [
        "| messages | E/B at 50 ms (≥ 0.8) | O/B at 50 ms (≥ 0.8) | E/A at 50 ms (≥ 3) | D/A at 0 ms (≥ 0.8) "
        "| E/A at 0 ms | E/B at 0 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        lines.append(
            f"| {size:,} | {ratio(size, 50, 'E', 'B', 0.8)} | {ratio(size, 50, 'O', 'B', 0.8)} "
            f"| {ratio(size, 50, 'E', 'A', 3)} "
            f"| {ratio(size, 0, 'D', 'A', 0.8)} | {ratio(size, 0, 'E', 'A')} | {ratio(size, 0, 'E', 'B')} |"
        )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        lines += [
            "",
            f"| peak RSS, {large:,} vs {small:,} messages | latency | {small:,} MB | {large:,} MB | ratio |",
            "|:--|---:|---:|---:|---:|",
        ]
        for variant, target in (("E", 1.25), ("D", None), ("C", None)):
            for latency in latencies:
                low, high = rss(small, latency, variant), rss(large, latency, variant)
                shown_high = f"{high:.0f}" if high else _not_finished(by_key.get((large, latency, variant)))
                verdict = _fmt_ratio(_ratio(high, low), target, at_least=False)
                label = f"{variant} (≤ 1.25, flat)" if target else variant
                lines.append(f"| {label} | {latency} ms | {low:.0f} | {shown_high} | {verdict} |")
    return "\n".join(lines)


def _not_finished(outcome: Outcome | None) -> str:
    if outcome is None:
        return "not run"
    return "did not finish" if not outcome.ok else "n/a"


def sensor_table(rows: list[dict]) -> str:
    """The markdown table of the sensor's requests per poke."""
    lines = [
        "| messages | statuses | pokes | API requests per poke | token requests | poke results |",
        "|---:|:--|---:|:--|---:|:--|",
    ]
    for row in rows:
        state = "pending (settle 3600 s)" if row["pending"] else "all final"
        if row["status"] != "ok":
            lines.append(f"| {row['size']:,} | {state} | | {row['status']} | | |")
            continue
        lines.append(
            f"| {row['size']:,} | {state} | {len(row['api_requests'])} "
            f"| {', '.join(map(str, row['api_requests']))} | {row['token_requests']} "
            f"| {', '.join(map(str, row['returns']))} |"
        )
    return "\n".join(lines)


def render(args: argparse.Namespace, outcomes: list[Outcome], sensor_rows: list[dict], seconds: float) -> str:
    """The generated markdown: machine, command, tables."""
    info = machine_info()
    command = " ".join(["python -m benchmarks.run", *sys.argv[1:]])
    parts = [
        f"Run on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min: `{command}`",
        "",
        *(f"- {name}: {value}" for name, value in info.items()),
        f"- Load average before the run: {args.load_before}",
        f"- Page size {args.page_size} for every variant; D's and E's files checked id by id against the "
        "emulator's truth; messages created "
        f"over {args.span_hours:g} h from {DATA_START:%Y-%m-%d}, one search over that range; one emulator "
        "process per (messages, latency), every variant a fresh process, one after the other.",
        "",
        "Variants: " + "; ".join(f"**{k}** {v[2]}" for k, v in VARIANTS.items() if k in args.variants) + ".",
        "",
        "### Figures",
        "",
        results_table(outcomes),
        "",
        "Wall and CPU time cover the extraction only (not the interpreter start and imports); for O the "
        "wall time is the operator's summary `seconds` (from the first search request to the file in "
        "place; its count request before is not in it) and CPU covers the whole `dag.test()`; CPU is "
        "user + system of the variant's process; peak RSS is the process's own `VmHWM`, imports "
        "included, and RSS before is its resident set just before the extraction; emulator CPU is the "
        "emulator process's CPU time during the variant (100 % = one core busy); others' CPU is the share "
        "of all CPUs that other processes on this shared machine used meanwhile (a measure of noise).",
    ]
    if outcomes:
        parts += ["", "### Ratios (records per second; ✅ target met, ❌ missed)", "", ratios_table(outcomes)]
    if sensor_rows:
        parts += [
            "",
            "### Sensor: emulator requests per poke in search mode",
            "",
            sensor_table(sensor_rows),
        ]
    return "\n".join(parts) + "\n"


def write_results(path: Path, generated: str, begin: str = BEGIN_MARKER, end: str = END_MARKER) -> None:
    """
    Put ``generated`` between the markers of ``path``, keeping the text around them.

    :param path: The results file (created with a title when missing).
    :param generated: The markdown to put there.
    :param begin: The line that opens the generated part (appended with ``end`` when missing).
    :param end: The line that closes it.
    """
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin not in text or end not in text:
        text = text.rstrip("\n") + "\n\n" + begin + "\n" + end + "\n"
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{begin}\n{generated}{end}{after}")


def migrate_airflow_home(env: dict[str, str]) -> None:
    """``airflow db migrate`` the variants' Airflow home once (O runs ``dag.test()`` there)."""
    marker = Path(env["AIRFLOW_HOME"]) / ".migrated-peers"
    if not marker.exists():
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env, stdout=subprocess.DEVNULL
        )
        marker.touch()


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the benchmark; return the exit status (1 when a variant failed for another reason than a guard).

    :param argv: The arguments (default: ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    args.load_before = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    env = child_env(args.out_dir)
    if "O" in args.variants:
        migrate_airflow_home(env)
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    for size in args.sizes:
        for latency in args.latencies:
            outcomes += run_configuration(size, latency, args, env)
    sensor_rows: list[dict] = []
    if not args.no_sensor:
        print("\n## Sensor requests per poke (search mode)", flush=True)
        for size in args.sensor_sizes:
            for settle in (3600.0, 0.0):
                sensor_rows.append(measure_sensor(size, settle, env, args))
                print(f"   {sensor_rows[-1]}", flush=True)
    generated = render(args, outcomes, sensor_rows, time.perf_counter() - started)
    print("\n" + generated)
    if args.write_results:
        write_results(args.write_results, generated)
        print(f"Wrote {args.write_results}")
    failed = [o for o in outcomes if not o.ok and not o.status.startswith("killed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
